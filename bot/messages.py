"""Texts the bot sends to members (DMs, receipts), kept apart from Discord code."""

from __future__ import annotations

from datetime import datetime

from bot.models import Job, Order, Product
from bot.money import format_price


def receipt_text(order: Order, product: Product, failed: list[Job]) -> str:
    """The DM a buyer gets once delivery of an order has run."""
    lines = [
        f"Thank you for your purchase of **{product.name}** "
        f"({format_price(order.amount, order.currency)}).",
        f"Order #{order.id} · claim code `{order.claim_code}`",
    ]
    if order.recipient_id and order.recipient_id != order.buyer_id:
        lines.append(f"It was a gift for <@{order.recipient_id}>.")
    if failed:
        lines.append(
            "Part of the delivery could not be completed yet; the server's admins can see why "
            "in `/shop queue` and will retry it. You can also run `/claim` later."
        )
    else:
        lines.append("Everything has been delivered. See `/purchases` any time.")
    return "\n".join(lines)


def gift_text(order: Order, product: Product, failed: list[Job]) -> str:
    """The DM the recipient of a gift gets once delivery of the order has run."""
    lines = [
        f"🎁 <@{order.buyer_id}> bought you **{product.name}** as a gift!",
        f"Order #{order.id}.",
    ]
    if failed:
        lines.append(
            "Part of it could not be delivered yet; the server's admins can see why in "
            "`/shop queue` and will retry it. You can also run `/claim` later."
        )
    else:
        lines.append("It has been delivered to you. See `/purchases` any time.")
    return "\n".join(lines)


#: Why access ended, in the member's words, by `Ending.reason` (bot/access.py).
ENDED_BECAUSE = {
    "expired": "its time ran out. `/buy` to get it again",
    "lapsed": "the renewal payment did not go through. It comes back as soon as the "
    "payment succeeds; update your card with `/manage`",
    "canceled": "the subscription was canceled. `/buy` to subscribe again",
    "refund": "your payment was refunded",
    "chargeback": "the payment was disputed with your bank (a chargeback)",
    "manual": "a server admin removed it. Ask them if you think this is a mistake",
}


def access_ended_text(product_name: str, reason: str) -> str:
    """The DM a member gets when their access ends, with the true reason."""
    why = ENDED_BECAUSE.get(reason, "it was ended")
    return f"Your access to **{product_name}** has ended: {why}."


def refund_text(product_name: str, order_id: int, amount: str) -> str:
    """The DM a buyer gets when an order is fully refunded."""
    return (
        f"Your order #{order_id} for **{product_name}** was refunded ({amount}); the money "
        "goes back to your card, usually within 5–10 days. The access it gave has ended."
    )


def reminder_text(kind: str, product_name: str, ends_at: datetime) -> str:
    """A reminder DM before an end date (`kind`: renewal, trial or expiry)."""
    when = f"<t:{int(ends_at.timestamp())}:R> (<t:{int(ends_at.timestamp())}:f>)"
    if kind == "renewal":
        return (
            f"Reminder: your **{product_name}** subscription renews {when}. Nothing to do if "
            "you want to keep it; to change or cancel it, use `/manage`."
        )
    if kind == "trial":
        return (
            f"Reminder: your free trial of **{product_name}** ends {when}; then the first "
            "payment is taken. To cancel before that, use `/manage`."
        )
    return f"Reminder: your access to **{product_name}** ends {when}. `/buy` to extend it."


def payment_failed_text(product_name: str, keep_until: str) -> str:
    """The DM a buyer gets when a subscription renewal payment fails."""
    return (
        f"The renewal payment for your **{product_name}** subscription failed. Stripe will "
        f"retry it; update your card with `/manage` (or the button below). You keep access "
        f"until {keep_until}."
    )
