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
