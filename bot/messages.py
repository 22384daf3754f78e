"""Texts the bot sends to members (DMs, receipts), kept apart from Discord code."""

from __future__ import annotations

from datetime import datetime

from bot.i18n import N_, _
from bot.models import Job, Order, Product
from bot.money import format_price


def receipt_text(order: Order, product: Product, failed: list[Job]) -> str:
    """The DM a buyer gets once delivery of an order has run."""
    lines = [
        _(
            "Thank you for your purchase of **{product}** ({price}).",
            product=product.name,
            price=format_price(order.amount, order.currency),
        ),
        _("Order #{order} · claim code `{code}`", order=order.id, code=order.claim_code),
    ]
    if order.recipient_id and order.recipient_id != order.buyer_id:
        lines.append(_("It was a gift for <@{member}>.", member=order.recipient_id))
    if failed:
        lines.append(
            _(
                "Part of the delivery could not be completed yet; the server's admins can see "
                "why in `/shop queue` and will retry it. You can also run `/claim` later."
            )
        )
    else:
        lines.append(_("Everything has been delivered. See `/purchases` any time."))
    return "\n".join(lines)


def gift_text(order: Order, product: Product, failed: list[Job]) -> str:
    """The DM the recipient of a gift gets once delivery of the order has run."""
    lines = [
        _(
            "🎁 <@{buyer}> bought you **{product}** as a gift!",
            buyer=order.buyer_id,
            product=product.name,
        ),
        _("Order #{order}.", order=order.id),
    ]
    if failed:
        lines.append(
            _(
                "Part of it could not be delivered yet; the server's admins can see why in "
                "`/shop queue` and will retry it. You can also run `/claim` later."
            )
        )
    else:
        lines.append(_("It has been delivered to you. See `/purchases` any time."))
    return "\n".join(lines)


#: Why access ended, in the member's words, by `Ending.reason` (bot/access.py).
ENDED_BECAUSE = {
    "expired": N_("its time ran out. `/buy` to get it again"),
    "lapsed": N_(
        "the renewal payment did not go through. It comes back as soon as the "
        "payment succeeds; update your card with `/manage`"
    ),
    "canceled": N_("the subscription was canceled. `/buy` to subscribe again"),
    "refund": N_("your payment was refunded"),
    "chargeback": N_("the payment was disputed with your bank (a chargeback)"),
    "manual": N_("a server admin removed it. Ask them if you think this is a mistake"),
}


def access_ended_text(product_name: str, reason: str) -> str:
    """The DM a member gets when their access ends, with the true reason."""
    why = _(ENDED_BECAUSE.get(reason, N_("it was ended")))
    return _("Your access to **{product}** has ended: {why}.", product=product_name, why=why)


def refund_text(product_name: str, order_id: int, amount: str) -> str:
    """The DM a buyer gets when an order is fully refunded."""
    return _(
        "Your order #{order} for **{product}** was refunded ({amount}); the money goes back "
        "to your card, usually within 5–10 days. The access it gave has ended.",
        order=order_id,
        product=product_name,
        amount=amount,
    )


def reminder_text(kind: str, product_name: str, ends_at: datetime) -> str:
    """A reminder DM before an end date (`kind`: renewal, trial or expiry)."""
    when = f"<t:{int(ends_at.timestamp())}:R> (<t:{int(ends_at.timestamp())}:f>)"
    if kind == "renewal":
        return _(
            "Reminder: your **{product}** subscription renews {when}. Nothing to do if you "
            "want to keep it; to change or cancel it, use `/manage`.",
            product=product_name,
            when=when,
        )
    if kind == "trial":
        return _(
            "Reminder: your free trial of **{product}** ends {when}; then the first payment "
            "is taken. To cancel before that, use `/manage`.",
            product=product_name,
            when=when,
        )
    return _(
        "Reminder: your access to **{product}** ends {when}. `/buy` to extend it.",
        product=product_name,
        when=when,
    )


def payment_failed_text(product_name: str, keep_until: str) -> str:
    """The DM a buyer gets when a subscription renewal payment fails."""
    return _(
        "The renewal payment for your **{product}** subscription failed. Stripe will retry "
        "it; update your card with `/manage` (or the button below). You keep access until "
        "{until}.",
        product=product_name,
        until=keep_until,
    )
