"""Texts the bot sends to members (DMs, receipts), kept apart from Discord code."""

from __future__ import annotations

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


def access_ended_text(product_name: str, reason: str) -> str:
    """The DM a member gets when their access ends (expiry, lapse, cancellation)."""
    why = {
        "lapsed": "the renewal payment did not go through. It comes back as soon as the "
        "payment succeeds; update your card with `/manage`",
        "canceled": "the subscription was canceled",
    }.get(reason, "its time ran out")
    return f"Your access to **{product_name}** has ended: {why}. `/buy` to get it again."


def payment_failed_text(product_name: str, keep_until: str) -> str:
    """The DM a buyer gets when a subscription renewal payment fails."""
    return (
        f"The payment for your **{product_name}** subscription failed. Stripe will retry it; "
        f"you can update your card with `/manage`. You keep access until {keep_until}."
    )
