"""Subscription invoices and the payment intents that paid them (Stripe's InvoicePayments)."""

from __future__ import annotations

from datetime import datetime

from bot.clock import iso
from bot.models import PaidInvoice
from bot.store.base import Repo


class InvoiceRepo(Repo):
    """Facts kept by Stripe's ids; recording the same fact again changes nothing."""

    async def record_paid(
        self, invoice_id: str, subscription_id: str, amount_paid: int, paid_at: datetime
    ) -> None:
        """Note a paid invoice of a subscription (ignored if already noted)."""
        await self._changed(
            "INSERT INTO invoices (stripe_invoice_id, stripe_subscription_id, amount_paid,"
            " paid_at, recorded_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (stripe_invoice_id) DO NOTHING",
            (invoice_id, subscription_id, amount_paid, iso(paid_at), self.now_iso),
        )

    async def latest_charged(self, subscription_id: str) -> PaidInvoice | None:
        """The newest paid invoice of the subscription that took money (trials take none)."""
        row = await self._one(
            "SELECT * FROM invoices WHERE stripe_subscription_id=? AND amount_paid > 0"
            " ORDER BY paid_at DESC, recorded_at DESC, stripe_invoice_id DESC LIMIT 1",
            (subscription_id,),
        )
        return None if row is None else PaidInvoice.from_row(row)

    async def link_payment(
        self, payment_intent_id: str, invoice_id: str, subscription_id: str | None
    ) -> None:
        """Note that the payment intent paid the invoice (of that subscription, if any)."""
        await self._changed(
            "INSERT INTO invoice_payments (stripe_payment_intent_id, stripe_invoice_id,"
            " stripe_subscription_id, recorded_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (stripe_payment_intent_id, stripe_invoice_id) DO NOTHING",
            (payment_intent_id, invoice_id, subscription_id, self.now_iso),
        )

    async def payment_known(self, payment_intent_id: str) -> bool:
        """Whether any invoice this payment intent paid is on record."""
        row = await self._one(
            "SELECT 1 FROM invoice_payments WHERE stripe_payment_intent_id=? LIMIT 1",
            (payment_intent_id,),
        )
        return row is not None

    async def subscription_of_payment(self, payment_intent_id: str) -> str | None:
        """The subscription whose invoice the payment intent paid (None: none on record)."""
        row = await self._one(
            "SELECT stripe_subscription_id FROM invoice_payments"
            " WHERE stripe_payment_intent_id=? AND stripe_subscription_id IS NOT NULL"
            " ORDER BY recorded_at, stripe_invoice_id LIMIT 1",
            (payment_intent_id,),
        )
        return None if row is None else str(row[0])

    async def payments_of_subscription(self, subscription_id: str) -> list[str]:
        """Every payment intent on record that paid an invoice of the subscription."""
        rows = await self._all(
            "SELECT DISTINCT stripe_payment_intent_id FROM invoice_payments"
            " WHERE stripe_subscription_id=? ORDER BY stripe_payment_intent_id",
            (subscription_id,),
        )
        return [str(row[0]) for row in rows]
