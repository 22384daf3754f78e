"""Subscription Invoices: billing a period, recording payment attempts, invoice events."""

from __future__ import annotations

from .errors import FakeUsageError
from .objects import fresh, list_object
from .payments import PaymentOps, format_money
from .state import StripeObject

RETRY_DELAY = 3 * 24 * 3600
_PAYMENT_DESCRIPTIONS = {
    "subscription_create": "Subscription creation",
    "subscription_cycle": "Subscription update",
}


class InvoiceOps(PaymentOps):
    """One invoice per subscription period, each paid by its own PaymentIntent."""

    def _bill(
        self,
        sub: StripeObject,
        reason: str,
        invoice_period: tuple[int, int],
        *,
        outcome: str = "succeeded",
        zero: bool = False,
    ) -> StripeObject:
        """Create and try to pay the invoice for the item's current period.

        The line's `period` is the service period just started; the invoice's own
        `period_start`/`period_end` are the period that just ended, as Stripe does.
        """
        now, invoice_id = self.now(), self.ids.new("in")
        item, customer = sub["items"]["data"][0], self.customers[sub["customer"]]
        price, quantity = item["price"], item["quantity"]
        amount = 0 if zero else price["unit_amount"] * quantity
        product = self.products.get(price["product"], {}).get("name", "Subscription")
        unit_price = format_money(price["unit_amount"], price["currency"])
        unit = f"{unit_price} / {price['recurring']['interval']}"
        line = fresh(
            "line_item",
            id=self.ids.new("il"),
            amount=amount,
            currency=price["currency"],
            description=f"{quantity} × {product} (at {unit})",
            invoice=invoice_id,
            metadata=dict(sub["metadata"]),
            parent={
                "type": "subscription_item_details",
                "invoice_item_details": None,
                "subscription_item_details": {
                    "invoice_item": None,
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": sub["id"],
                    "subscription_item": item["id"],
                },
            },
            period={"start": item["current_period_start"], "end": item["current_period_end"]},
            pricing={
                "type": "price_details",
                "price_details": {"price": price["id"], "product": price["product"]},
                "unit_amount_decimal": price["unit_amount_decimal"],
            },
            quantity=quantity,
            subscription=sub["id"],
            subtotal=amount,
        )
        customer["next_invoice_sequence"] += 1
        invoice = fresh(
            "invoice",
            id=invoice_id,
            amount_due=amount,
            amount_paid=0,
            amount_remaining=amount,
            auto_advance=True,
            billing_reason=reason,
            created=now,
            currency=price["currency"],
            customer=customer["id"],
            customer_email=customer["email"],
            customer_name=customer["name"],
            effective_at=now,
            hosted_invoice_url=f"https://invoice.stripe.com/i/{self.account['id']}/test_{self.ids.token(40)}",
            invoice_pdf=f"https://pay.stripe.com/invoice/{self.account['id']}/test_{self.ids.token(40)}/pdf",
            lines=list_object([line], f"/v1/invoices/{invoice_id}/lines"),
            metadata={},
            number=f"{customer['invoice_prefix']}-{customer['next_invoice_sequence'] - 1:04d}",
            parent={
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "metadata": dict(sub["metadata"]),
                    "subscription": sub["id"],
                },
            },
            period_start=invoice_period[0],
            period_end=invoice_period[1],
            status="open",
            status_transitions={
                "finalized_at": now,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },
            subscription=sub["id"],
            subtotal=amount,
            subtotal_excluding_tax=amount,
            total=amount,
            total_excluding_tax=amount,
        )
        self.invoices[invoice_id] = invoice
        sub["latest_invoice"] = invoice_id
        if amount == 0:
            self._mark_invoice(invoice, paid=True)
            return invoice
        intent, _ = self.create_payment(
            amount,
            invoice["currency"],
            customer=customer["id"],
            metadata={},
            description=_PAYMENT_DESCRIPTIONS[reason],
            email=customer["email"],
            outcome=outcome,
        )
        payment = fresh(
            "invoice_payment",
            id=self.ids.new("inpay"),
            amount_paid=None,
            amount_requested=amount,
            created=now,
            currency=invoice["currency"],
            invoice=invoice_id,
            livemode=False,
            payment={"type": "payment_intent", "payment_intent": intent["id"]},
            status="open",
        )
        self.invoice_payments[payment["id"]] = payment
        self._mark_invoice(invoice, paid=outcome == "succeeded")
        return invoice

    def _mark_invoice(self, invoice: StripeObject, *, paid: bool) -> None:
        """Record a payment attempt on an invoice (and on its InvoicePayment)."""
        now = self.now()
        invoice["attempted"] = True
        invoice["attempt_count"] += 1 if invoice["amount_due"] else 0
        for payment in self.invoice_payments.values():
            if payment["invoice"] == invoice["id"] and paid:
                payment.update(amount_paid=payment["amount_requested"], status="paid")
                payment["status_transitions"]["paid_at"] = now
        if paid:
            invoice.update(amount_paid=invoice["amount_due"], amount_remaining=0, status="paid")
            invoice.update(auto_advance=False, next_payment_attempt=None)
            invoice["status_transitions"]["paid_at"] = now
        else:
            invoice["next_payment_attempt"] = now + RETRY_DELAY

    def _invoice_events(self, invoice: StripeObject) -> StripeObject:
        """Emit `invoice.paid` + `invoice.payment_succeeded`, or `invoice.payment_failed`."""
        if invoice["status"] == "paid":
            event = self.make_event("invoice.paid", invoice)
            self.make_event("invoice.payment_succeeded", invoice)
            return event
        return self.make_event("invoice.payment_failed", invoice)

    def invoice_payment_intent(self, invoice_id: str) -> str:
        """For tests: the PaymentIntent paying an invoice (found, as in Stripe, only through
        its InvoicePayment: neither the Invoice nor the Charge names the other)."""
        return self._invoice_intent(invoice_id)

    def _invoice_intent(self, invoice_id: str) -> str:
        """The PaymentIntent id paying an invoice (via its InvoicePayment)."""
        for payment in self.invoice_payments.values():
            if payment["invoice"] == invoice_id:
                return payment["payment"]["payment_intent"]
        raise FakeUsageError(f"{invoice_id} has no payment")
