"""PaymentIntents, Charges, Refunds and Disputes: creation, settlement and their events."""

from __future__ import annotations

import copy
from typing import Any

from .endpoints import AccountSetupOps
from .errors import FakeUsageError, invalid
from .objects import fresh, list_object
from .state import StripeObject, validate_metadata

REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
DISPUTE_WINDOW_SECONDS = 7 * 24 * 3600


def format_money(amount: int, currency: str) -> str:
    """Format minor units the way Stripe's error messages do (`$10.00`, `10.00 EUR`)."""
    value = f"{amount / 100:.2f}"
    return f"${value}" if currency == "usd" else f"{value} {currency.upper()}"


class PaymentOps(AccountSetupOps):
    """One-off payments (a PaymentIntent with one Charge) and what happens to them later."""

    def _new_charge(self, intent: StripeObject) -> StripeObject:
        """A pending Charge for `intent`, carrying its amount, customer and metadata."""
        charge_id = self.ids.new("ch")
        charge = fresh(
            "charge",
            id=charge_id,
            amount=intent["amount"],
            amount_captured=0,
            amount_refunded=0,
            balance_transaction=None,
            captured=False,
            created=self.now(),
            currency=intent["currency"],
            customer=intent["customer"],
            description=intent["description"],
            metadata=dict(intent["metadata"]),
            paid=False,
            payment_intent=intent["id"],
            payment_method=intent["payment_method"],
            receipt_email=intent["receipt_email"],
            receipt_url=f"https://pay.stripe.com/receipts/payment/{self.ids.token(40)}",
            refunded=False,
            refunds=list_object([], f"/v1/charges/{charge_id}/refunds"),
            status="pending",
        )
        charge["billing_details"]["email"] = intent["receipt_email"]
        card = charge["payment_method_details"]["card"]
        card["overcapture"]["maximum_amount_capturable"] = intent["amount"]
        self.charges[charge_id] = charge
        intent["latest_charge"] = charge_id
        return charge

    def _settle(self, intent: StripeObject, charge: StripeObject, succeeded: bool) -> None:
        """Move a pending charge (and its intent) to succeeded or failed, with their events."""
        if succeeded:
            intent.update(status="succeeded", amount_received=intent["amount"])
            intent["last_payment_error"] = None
            charge.update(
                status="succeeded",
                paid=True,
                captured=True,
                amount_captured=charge["amount"],
                balance_transaction=self.ids.new("txn"),
            )
            self.make_event("charge.succeeded", charge)
            self.make_event("payment_intent.succeeded", intent)
            return
        error = {
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
            "type": "card_error",
        }
        intent.update(status="requires_payment_method", last_payment_error=error)
        charge.update(
            status="failed",
            failure_code="card_declined",
            failure_message="Your card has insufficient funds.",
        )
        charge["outcome"].update(
            network_status="declined_by_network",
            reason="insufficient_funds",
            seller_message="The bank returned the decline code `insufficient_funds`.",
            type="issuer_declined",
        )
        self.make_event("charge.failed", charge)
        self.make_event("payment_intent.payment_failed", intent)

    def create_payment(
        self,
        amount: int,
        currency: str,
        *,
        customer: str | None,
        metadata: dict[str, str],
        description: str | None = None,
        email: str | None = None,
        outcome: str = "succeeded",
    ) -> tuple[StripeObject, StripeObject]:
        """Create a PaymentIntent with one Charge; `outcome` is succeeded, processing or failed.

        The Charge copies the PaymentIntent's metadata, as Stripe does at charge time.
        """
        pi_id = self.ids.new("pi")
        intent = fresh(
            "payment_intent",
            id=pi_id,
            amount=amount,
            amount_received=0,
            automatic_payment_methods=None,
            client_secret=f"{pi_id}_secret_{self.ids.token(25)}",
            created=self.now(),
            currency=currency,
            customer=customer,
            description=description,
            metadata=dict(metadata),
            payment_method=self.ids.new("pm"),
            receipt_email=email,
            status="processing",
        )
        self.payment_intents[pi_id] = intent
        charge = self._new_charge(intent)
        if outcome == "processing":
            self.make_event("charge.pending", charge)
            self.make_event("payment_intent.processing", intent)
        else:
            self._settle(intent, charge, outcome == "succeeded")
        return intent, charge

    def settle_payment(self, payment_intent_id: str, succeeded: bool) -> StripeObject:
        """Finish a processing payment (bank debits): succeed or fail it; return the intent."""
        intent = self.require(self.payment_intents, payment_intent_id)
        if intent["status"] != "processing":
            raise FakeUsageError(f"{payment_intent_id} is {intent['status']}, not processing")
        self._settle(intent, self.charges[intent["latest_charge"]], succeeded)
        return intent

    def retry_payment(self, payment_intent_id: str, succeeded: bool) -> StripeObject:
        """Attempt a failed payment again with a new Charge (invoice retries); return the intent."""
        intent = self.require(self.payment_intents, payment_intent_id)
        if intent["status"] != "requires_payment_method":
            raise FakeUsageError(f"{payment_intent_id} is {intent['status']}, cannot retry")
        self._settle(intent, self._new_charge(intent), succeeded)
        return intent

    def _refundable_charge(self, params: dict[str, Any]) -> StripeObject:
        """The Charge a refund request points at, by `payment_intent` or `charge`."""
        if params.get("payment_intent"):
            pi_id = params["payment_intent"]
            intent = self.lookup(self.payment_intents, "payment_intent", pi_id, "payment_intent")
            if intent["status"] != "succeeded":
                raise invalid(
                    f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                    param="payment_intent",
                )
            return self.charges[intent["latest_charge"]]
        if params.get("charge"):
            return self.lookup(self.charges, "charge", params["charge"], "charge")
        raise invalid(
            "One of the following params should be provided for this request: "
            "payment_intent or charge.",
            param="payment_intent",
        )

    def create_refund(self, params: dict[str, Any]) -> tuple[StripeObject, StripeObject]:
        """`POST /v1/refunds`: validate, refund the charge, emit `charge.refunded` and
        `refund.created`; return the Refund and the `charge.refunded` event."""
        charge = self._refundable_charge(params)
        remaining = charge["amount"] - charge["amount_refunded"]
        if charge["status"] != "succeeded" or remaining <= 0:
            raise invalid(
                f"Charge {charge['id']} has already been refunded.",
                param="charge",
                code="charge_already_refunded",
            )
        amount = params.get("amount", remaining)
        if not isinstance(amount, int) or amount <= 0:
            raise invalid("Invalid positive integer", param="amount")
        if amount > remaining:
            currency = charge["currency"]
            raise invalid(
                f"Refund amount ({format_money(amount, currency)}) is greater than unrefunded "
                f"amount on charge ({format_money(remaining, currency)})",
                param="amount",
            )
        reason = params.get("reason") or None
        if reason is not None and reason not in REFUND_REASONS:
            raise invalid(
                "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
                param="reason",
            )
        refund = fresh(
            "refund",
            id=self.ids.new("re"),
            amount=amount,
            balance_transaction=self.ids.new("txn"),
            charge=charge["id"],
            created=self.now(),
            currency=charge["currency"],
            customer=charge["customer"],
            metadata=validate_metadata(params.get("metadata")),
            payment_intent=charge["payment_intent"],
            payment_method=charge["payment_method"],
            reason=reason,
            status="succeeded",
        )
        self.refunds[refund["id"]] = refund
        previous: dict[str, Any] = {
            "amount_refunded": charge["amount_refunded"],
            "refunds": copy.deepcopy(charge["refunds"]),
        }
        charge["amount_refunded"] += amount
        charge["refunds"]["data"].insert(0, copy.deepcopy(refund))
        if charge["amount_refunded"] == charge["amount"]:
            previous["refunded"] = False
            charge["refunded"] = True
        event = self.make_event("charge.refunded", charge, previous)
        self.make_event("refund.created", refund)
        return refund, event

    def refund(
        self,
        payment_intent_id: str,
        amount: int | None = None,
        *,
        reason: str | None = "requested_by_customer",
        metadata: dict[str, str] | None = None,
    ) -> StripeObject:
        """Refund all (or `amount`) of a payment; return the `charge.refunded` event."""
        params: dict[str, Any] = {"payment_intent": payment_intent_id, "reason": reason}
        if amount is not None:
            params["amount"] = amount
        if metadata:
            params["metadata"] = metadata
        return self.create_refund(params)[1]

    def dispute(
        self, payment_intent_id: str, amount: int | None = None, reason: str = "fraudulent"
    ) -> StripeObject:
        """Open a dispute (chargeback) on a payment; return the `charge.dispute.created` event."""
        intent = self.require(self.payment_intents, payment_intent_id)
        charge = self.charges[intent["latest_charge"]]
        if charge["status"] != "succeeded":
            raise FakeUsageError(f"{payment_intent_id} has no successful charge to dispute")
        dispute = fresh(
            "dispute",
            id=self.ids.new("dp"),
            amount=charge["amount"] if amount is None else amount,
            charge=charge["id"],
            created=self.now(),
            currency=charge["currency"],
            is_charge_refundable=False,
            metadata={},
            payment_intent=intent["id"],
            reason=reason,
            status="needs_response",
        )
        dispute["evidence_details"].update(due_by=self.now() + DISPUTE_WINDOW_SECONDS)
        self.disputes[dispute["id"]] = dispute
        charge["disputed"] = True
        return self.make_event("charge.dispute.created", dispute)

    def close_dispute(self, dispute_id: str, won: bool = False) -> StripeObject:
        """Close a dispute as won or lost; return the `charge.dispute.closed` event."""
        dispute = self.require(self.disputes, dispute_id)
        previous = {"status": dispute["status"]}
        dispute["status"] = "won" if won else "lost"
        return self.make_event("charge.dispute.closed", dispute, previous)
