"""Which invoice a refunded or disputed payment paid: asked of Stripe before the event is
applied, because in this API version neither the Charge nor the Dispute says (the link is
Stripe's InvoicePayment object, `GET /v1/invoice_payments?payment[payment_intent]=…`)."""

from __future__ import annotations

import logging
from typing import Any

from bot.payments import PaymentGateway
from bot.store import Store
from bot.stripe_facts import REVERSAL_EVENTS, reversed_payment

log = logging.getLogger(__name__)


class InvoicePayments:
    """Keeps Stripe's answer as a fact (`tx.invoices.link_payment`); asks once per payment."""

    def __init__(self, store: Store, payments: PaymentGateway) -> None:
        self.store = store
        self.payments = payments

    async def resolve(self, event: dict[str, Any]) -> None:
        """Before a refund or dispute is applied: learn which invoice its payment intent
        paid, unless the payment is already ours on record. Raises PaymentError while
        Stripe cannot answer (the caller retries the event later)."""
        obj = (event.get("data") or {}).get("object")
        if event.get("type") not in REVERSAL_EVENTS or not isinstance(obj, dict):
            return
        payment_intent = reversed_payment(obj)
        if payment_intent is None:
            return
        async with self.store.reading() as tx:
            if await tx.orders.by_payment_intent(payment_intent) is not None:
                return  # a one-time order's payment
            if await tx.invoices.payment_known(payment_intent):
                return
        links = [
            link
            for link in await self.payments.invoices_paid_by(payment_intent)
            if link.status != "canceled"
        ]
        if not links:
            return  # not an invoice's payment (a one-time order's, before its checkout event)
        async with self.store.transaction() as tx:
            for link in links:
                await tx.invoices.link_payment(
                    payment_intent, link.invoice_id, link.subscription_id
                )
        log.info(
            "payment %s paid invoice %s",
            payment_intent,
            ", ".join(f"{link.invoice_id} ({link.subscription_id})" for link in links),
        )
