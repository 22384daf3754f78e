"""Admin operations on members' access: manual grants and revocations, refunds, the portal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.access import Access, Ending
from bot.config import Settings
from bot.errors import Conflict, InvalidInput, NotFound, PaymentError
from bot.i18n import N_
from bot.models import Entitlement, EntitlementStatus, OrderStatus, PaidInvoice, Stage
from bot.payments import PaymentGateway
from bot.planning import Keys, Planner, entitlement_data
from bot.shop import ShopService
from bot.store import Store

#: An admin took access away by hand: final, like a chargeback (never re-granted on rejoin).
MANUAL = Ending(EntitlementStatus.REVOKED, "manual", Stage.ON_EXPIRE, 5, True, None)


@dataclass(frozen=True, slots=True)
class RefundResult:
    """A refund Stripe accepted; a subscription order's subscription was canceled too."""

    order_id: int
    refund_id: str
    subscription_canceled: bool


class AdminOps:
    """What `/shop grant|revoke|refund` and `/manage` do; every change is audited."""

    def __init__(
        self,
        store: Store,
        payments: PaymentGateway,
        shop: ShopService,
        access: Access,
        planner: Planner,
        settings: Settings,
    ) -> None:
        self.store = store
        self.payments = payments
        self.shop = shop
        self.access = access
        self.planner = planner
        self.settings = settings

    async def grant(
        self, guild_id: int, actor_id: int, user_id: int, ref: str, days: int | None
    ) -> Entitlement:
        """Give access without a payment, with the same on_purchase actions as a purchase."""
        product = await self.shop.resolve_product(guild_id, ref)
        if days is not None and not 1 <= days <= 3650:
            raise InvalidInput(
                N_("`days` must be between 1 and 3650 (leave it empty for forever).")
            )
        async with self.store.transaction() as tx:
            ends_at = tx.now + timedelta(days=days) if days else None
            entitlement = await tx.entitlements.create(
                guild_id=guild_id,
                user_id=user_id,
                product_id=product.id,
                order_id=None,
                ends_at=ends_at,
            )
            await self.planner.stage(tx, None, product, user_id, entitlement.id, Stage.ON_PURCHASE)
            await self.planner.webhook(
                tx,
                "access.granted",
                f"entitlement:{entitlement.id}:granted",
                entitlement_data(entitlement),
            )
            until = f" until {ends_at:%Y-%m-%d}" if ends_at else ""
            await self.access.notify(
                tx,
                entitlement,
                key=Keys.notice(f"entitlement:{entitlement.id}", "granted"),
                text=f"You have been given **{product.name}**{until} by the server's admins.",
            )
            await tx.audit.add(
                "entitlement.manual_grant",
                guild_id=guild_id,
                user_id=user_id,
                actor_id=actor_id,
                entitlement_id=entitlement.id,
                product=product.name,
                ends_at=ends_at,
            )
        return entitlement

    async def revoke(self, guild_id: int, actor_id: int, user_id: int, ref: str) -> int:
        """End every active entitlement of the member to this product; roles follow."""
        product = await self.shop.resolve_product(guild_id, ref)
        async with self.store.transaction() as tx:
            active = [
                e
                for e in await tx.entitlements.active_of_member(guild_id, user_id)
                if e.product_id == product.id
            ]
            if not active:
                raise NotFound(
                    N_("<@{member}> has no active **{product}**."),
                    member=user_id,
                    product=product.name,
                )
            for entitlement in active:
                order = await tx.orders.get(entitlement.order_id) if entitlement.order_id else None
                await self.access.end(tx, order, entitlement, MANUAL)
                await tx.audit.add(
                    "entitlement.manual_revoke",
                    guild_id=guild_id,
                    user_id=user_id,
                    actor_id=actor_id,
                    entitlement_id=entitlement.id,
                    product=product.name,
                )
        return len(active)

    async def refund(
        self, guild_id: int, actor_id: int, order_ref: str, reason: str
    ) -> RefundResult:
        """Ask Stripe to refund an order; the charge.refunded webhook then ends the access.

        A subscription order: the latest paid invoice's payment is refunded and the
        subscription canceled first, so it does not renew (if the refund then fails, running
        this again finishes it). A second refund of one order is refused from our own records
        (or Stripe's answer, if those missed it).
        """
        digits = order_ref.strip().lstrip("#")
        if not digits.isdigit():
            raise InvalidInput(
                N_("Give the order number, like `42` or `#42` (see `/shop orders`).")
            )
        async with self.store.reading() as tx:
            order = await tx.orders.get(int(digits))
            if order is None or order.guild_id != guild_id:
                raise NotFound(N_("There is no order #{order} here."), order=digits)
            requested = await tx.audit.latest_of_order("order.refund_requested", order.id)
            sub_id = order.stripe_subscription_id
            invoice = await tx.invoices.latest_charged(sub_id) if sub_id else None
        if order.status == OrderStatus.REFUNDED:
            raise Conflict(N_("Order #{order} is already refunded."), order=order.id)
        if order.status == OrderStatus.DISPUTED:
            raise Conflict(
                N_("Order #{order} is disputed (a chargeback); it cannot be refunded."),
                order=order.id,
            )
        if requested is not None:
            raise Conflict(
                N_(
                    "A refund of order #{order} was already requested ({refund}); access ends as "
                    "soon as Stripe confirms it."
                ),
                order=order.id,
                refund=requested.detail.get("refund_id"),
            )
        if order.status != OrderStatus.PAID:
            raise Conflict(
                N_("Order #{order} is {status}; only paid orders can be refunded."),
                order=order.id,
                status=order.status,
            )
        payment_intent = order.stripe_payment_intent_id
        if payment_intent is None and sub_id is not None:
            payment_intent = await self._latest_payment(order.id, invoice)
        if payment_intent is None:
            raise InvalidInput(
                N_("Order #{order} has no Stripe payment to refund."), order=order.id
            )
        if sub_id is not None:
            try:
                await self.payments.cancel_subscription(sub_id)
            except PaymentError as exc:
                raise PaymentError(N_("{reason} Nothing was refunded."), reason=exc.text) from None
        try:
            refund_id = await self.payments.refund(
                order.id,
                payment_intent,
                reason or "refunded by an admin",
                install_id=self.store.install_id,
            )
        except PaymentError as exc:
            if sub_id is None:
                raise
            raise PaymentError(
                N_(
                    "The subscription of order #{order} is canceled, but the refund failed: "
                    "{reason} Run `/shop refund` again to finish it."
                ),
                order=order.id,
                reason=exc.text,
            ) from None
        async with self.store.transaction() as tx:
            await tx.audit.add(
                "order.refund_requested",
                guild_id=guild_id,
                user_id=order.recipient_id,
                actor_id=actor_id,
                order_id=order.id,
                refund_id=refund_id,
                payment_intent=payment_intent,
                invoice_id=invoice.stripe_invoice_id if invoice else None,
                canceled_subscription=sub_id,
                reason=reason,
            )
        return RefundResult(order.id, refund_id, subscription_canceled=sub_id is not None)

    async def _latest_payment(self, order_id: int, invoice: PaidInvoice | None) -> str:
        """The payment intent of a subscription's latest paid invoice (our record of it)."""
        if invoice is None:
            raise Conflict(
                N_(
                    "Stripe has not reported a paid invoice for order #{order_id} yet (a trial "
                    "has none); nothing was refunded."
                ),
                order_id=order_id,
            )
        payment_intent = await self.payments.payment_of_invoice(invoice.stripe_invoice_id)
        if payment_intent is None:
            raise Conflict(
                N_(
                    "Stripe shows no payment for invoice {invoice} of order #{order_id}; nothing "
                    "was refunded."
                ),
                invoice=invoice.stripe_invoice_id,
                order_id=order_id,
            )
        return payment_intent

    async def portal(self, guild_id: int, user_id: int) -> str:
        """A Stripe customer portal link for all of the member's subscriptions (their one
        customer of this install)."""
        async with self.store.reading() as tx:
            customer = await tx.customers.of_user(user_id)
        if customer is None:
            raise NotFound(N_("You have no subscriptions here to manage. `/purchases` lists them."))
        return await self.payments.portal_url(customer, f"https://discord.com/channels/{guild_id}")

    async def retry_jobs(self, guild_id: int, actor_id: int, target: str) -> int:
        """Re-queue one failed or expired job (`#12` or `12`) or every failed one (`failed`)."""
        target = target.strip().lstrip("#").lower()
        async with self.store.transaction() as tx:
            if target == "failed":
                failed = await tx.jobs.of_guild(guild_id, "failed", limit=1000)
                count = sum([await tx.jobs.retry(j.id) for j in failed])
            elif target.isdigit():
                found = await tx.jobs.get(int(target))
                if found is None or found.guild_id != guild_id:
                    raise InvalidInput(
                        N_("There is no job #{job} here (see `/shop queue`)."), job=target
                    )
                count = int(await tx.jobs.retry(found.id))
                if not count:
                    raise InvalidInput(
                        N_("Job #{job} is {status}; only failed or expired jobs can be retried."),
                        job=target,
                        status=found.status,
                    )
            else:
                raise InvalidInput(N_("Give a job number from `/shop queue`, or `failed`."))
            if count:
                await tx.audit.add(
                    "job.retry", guild_id=guild_id, actor_id=actor_id, target=target, count=count
                )
        return count
