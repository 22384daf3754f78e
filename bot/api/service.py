"""ApiService: what the integration API's routes do, over the same services as the slash
commands (catalog, actions, fulfilment, access); answers are the models of bot/api/schemas.py."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bot.access import Access
from bot.admin_ops import MANUAL
from bot.api import schemas as s
from bot.api.directory import GuildDirectory
from bot.config import Settings
from bot.errors import Conflict, InvalidInput, NotFound
from bot.fulfilment import Fulfilment
from bot.models import NO_BUYER, Action, Entitlement, Job, Order, OrderSource, Product
from bot.money import decimals, normalize_currency
from bot.product_actions import ActionService, ActionSpec
from bot.shop import ProductDraft, ShopService, reserve_stock
from bot.store import Duplicate, Store, Tx
from bot.store.api import ApiKey, JobAttempt

#: The actor id in audit rows of changes made through the API (no Discord user).
API_ACTOR = 0
MAX_IDEMPOTENCY_KEY = 200


def _sf(value: int | None) -> str | None:
    return None if value is None else str(value)


def price_text(amount: int, currency: str) -> str:
    """499, usd → "4.99" (what ShopService parses)."""
    return format(Decimal(amount).scaleb(-decimals(currency)), "f")


def product_out(product: Product, units_left: int | None) -> s.ProductOut:
    return s.ProductOut(
        id=product.id,
        guild_id=str(product.guild_id),
        name=product.name,
        description=product.description,
        price_amount=product.price_amount,
        currency=product.currency,
        kind=product.kind,  # type: ignore[arg-type]
        interval=product.interval,  # type: ignore[arg-type]
        duration_days=product.duration_days,
        trial_days=product.trial_days,
        stock=product.stock,
        units_left=units_left,
        allow_promotion_codes=product.allow_promotion_codes,
        active=product.active,
        image_url=product.image_url,
        created_at=product.created_at,
        updated_at=product.updated_at,
    )


def action_out(action: Action) -> s.ActionOut:
    revokes = [stage for stage in action.revoke_on.split(",") if stage]
    return s.ActionOut(
        id=action.id,
        action_type=action.type,  # type: ignore[arg-type]
        execution_stage=action.stage,  # type: ignore[arg-type]
        revocation_stages=revokes if action.type == "grant_role" else [],  # type: ignore[arg-type]
        role_id=_sf(action.role_id),
        channel_id=_sf(action.channel_id),
        message=action.message,
    )


def order_out(order: Order, reference: str | None) -> s.OrderOut:
    return s.OrderOut(
        id=order.id,
        guild_id=str(order.guild_id),
        product_id=order.product_id,
        buyer_id=None if order.buyer_id == NO_BUYER else str(order.buyer_id),
        user_id=_sf(order.recipient_id),
        amount=order.amount,
        currency=order.currency,
        status=order.status,  # type: ignore[arg-type]
        source=order.source,
        reference=reference,
        claim_code=order.claim_code if order.recipient_id is None else None,
        created_at=order.created_at,
        paid_at=order.paid_at,
    )


def entitlement_out(entitlement: Entitlement, product_name: str) -> s.EntitlementOut:
    return s.EntitlementOut(
        id=entitlement.id,
        product_id=entitlement.product_id,
        product_name=product_name,
        order_id=entitlement.order_id,
        status=entitlement.status,  # type: ignore[arg-type]
        starts_at=entitlement.starts_at,
        ends_at=entitlement.ends_at,
        end_reason=entitlement.end_reason,
    )


def delivery_out(job: Job, attempts: list[JobAttempt]) -> s.DeliveryOut:
    return s.DeliveryOut(
        id=job.id,
        kind=job.kind,
        status=job.status,  # type: ignore[arg-type]
        user_id=str(job.user_id),
        stage=job.payload.get("stage"),
        action_id=job.action_id,
        waiting_for_member=job.waiting_for_member,
        attempts=job.attempts,
        last_error=job.last_error,
        next_attempt_at=job.next_attempt_at,
        created_at=job.created_at,
        updated_at=job.updated_at,
        history=[
            s.AttemptOut(
                started_at=a.started_at, finished_at=a.finished_at, outcome=a.outcome, error=a.error
            )
            for a in attempts
            if a.job_id == job.id
        ],
    )


def request_hash(body: s.OrderCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"POST /orders {canonical}".encode()).hexdigest()


class ApiService:
    """Products, actions, orders, deliveries and entitlements for the integration API."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        shop: ShopService,
        actions: ActionService,
        fulfilment: Fulfilment,
        access: Access,
        directory: GuildDirectory,
    ) -> None:
        self.store = store
        self.settings = settings
        self.shop = shop
        self.actions = actions
        self.fulfilment = fulfilment
        self.access = access
        self.directory = directory

    # products ------------------------------------------------------------------------

    async def products(self, guild_id: int, page: s.Page) -> s.ProductList:
        async with self.store.reading() as tx:
            found = await tx.api.products(guild_id, page.after, page.limit + 1)
            items = [
                product_out(p, await tx.products.units_left(p.id)) for p in found[: page.limit]
            ]
        more = len(found) > page.limit
        return s.ProductList(data=items, next_after=items[-1].id if more else None)

    async def product(self, product_id: int) -> s.ProductOut:
        product = await self._product(product_id)
        return product_out(product, await self.shop.units_left(product.id))

    async def create_product(self, guild_id: int, body: s.ProductCreate) -> s.ProductOut:
        if body.role_id is not None:
            self._check_role(guild_id, body.role_id)
        currency = normalize_currency(body.currency or self.settings.shop.default_currency)
        draft = ProductDraft(
            name=body.name,
            price=price_text(body.price_amount, currency),
            currency=currency,
            role_id=body.role_id,
            kind=body.kind,
            interval=body.interval,
            duration_days=body.duration_days,
            trial_days=body.trial_days,
            description=body.description,
            stock=body.stock,
            allow_promotion_codes=body.allow_promotion_codes,
            image_url=body.image_url,
        )
        product = await self.shop.add_product(guild_id, API_ACTOR, draft)
        return product_out(product, await self.shop.units_left(product.id))

    async def edit_product(self, product_id: int, body: s.ProductPatch) -> s.ProductOut:
        product = await self._product(product_id)
        changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude_none=True)
        if "price_amount" in changes:
            changes["price"] = price_text(changes.pop("price_amount"), product.currency)
        if changes.get("role_id") is not None:
            self._check_role(product.guild_id, changes["role_id"])
        edited = await self.shop.edit_product(
            product.guild_id, API_ACTOR, str(product.id), **changes
        )
        return product_out(edited, await self.shop.units_left(edited.id))

    async def remove_product(self, product_id: int) -> s.ProductOut:
        product = await self._product(product_id)
        await self.shop.remove_product(product.guild_id, API_ACTOR, str(product.id))
        async with self.store.reading() as tx:
            archived = await tx.products.get(product.id)
        assert archived is not None
        return product_out(archived, None)

    async def _product(self, product_id: int) -> Product:
        async with self.store.reading() as tx:
            product = await tx.products.get(product_id)
        if product is None or product.archived:
            raise NotFound(f"There is no product {product_id}.")
        return product

    # actions -------------------------------------------------------------------------

    async def product_actions(self, product_id: int) -> s.ActionList:
        product = await self._product(product_id)
        found = await self.actions.list(product.guild_id, str(product.id))
        return s.ActionList(data=[action_out(a) for a in found])

    async def replace_actions(self, product_id: int, body: s.ActionsPut) -> s.ActionList:
        """The whole list, in one transaction; one bad item refuses all of it."""
        product = await self._product(product_id)
        specs = [
            ActionSpec(
                type=item.action_type,
                stage=item.execution_stage,
                role_id=item.role_id,
                channel_id=item.channel_id,
                message=item.message,
                revoke_on=",".join(item.revocation_stages or []) or None,
            )
            for item in body.root
        ]
        if any(item.revocation_stages == [] for item in body.root):
            raise InvalidInput("`revocation_stages` cannot be empty; omit it for all three.")
        added = await self.actions.replace(
            product.guild_id,
            API_ACTOR,
            str(product.id),
            specs,
            role_problem=self._role_checker(product.guild_id),
        )
        return s.ActionList(data=[action_out(a) for a in added])

    def _role_checker(self, guild_id: int) -> Callable[[int], str | None]:
        roles = self.directory.guild_roles(guild_id)

        def problem(role_id: int) -> str | None:
            if roles is None:
                return f"The bot is not in server {guild_id}."
            role = next((r for r in roles if r.id == role_id), None)
            if role is None:
                return f"There is no role {role_id} in this server."
            return role.problem

        return problem

    def _check_role(self, guild_id: int, role_id: int) -> None:
        problem = self._role_checker(guild_id)(role_id)
        if problem is not None:
            raise InvalidInput(problem)

    # orders --------------------------------------------------------------------------

    async def orders(self, query: s.OrderFilter) -> s.OrderList:
        async with self.store.reading() as tx:
            found = await tx.api.orders(
                guild_id=query.guild_id,
                user_id=query.user_id,
                status=query.status,
                after=query.after,
                limit=query.limit + 1,
            )
            page = found[: query.limit]
            refs = await tx.api.references([o.id for o in page])
        items = [order_out(o, refs.get(o.id)) for o in page]
        more = len(found) > query.limit
        return s.OrderList(data=items, next_after=items[-1].id if more else None)

    async def order(self, order_id: int) -> s.OrderDetail:
        async with self.store.reading() as tx:
            return await self._detail(tx, order_id)

    async def _detail(self, tx: Tx, order_id: int) -> s.OrderDetail:
        order = await tx.orders.get(order_id)
        if order is None:
            raise NotFound(f"There is no order {order_id}.")
        refs = await tx.api.references([order.id])
        entitlement = await tx.entitlements.by_order(order.id)
        product = await tx.products.get(order.product_id)
        jobs = await tx.api.jobs_of_order(order.id)
        attempts = await tx.api.attempts([j.id for j in jobs])
        base = order_out(order, refs.get(order.id))
        return s.OrderDetail(
            **base.model_dump(),
            entitlement=(
                entitlement_out(entitlement, product.name if product else "")
                if entitlement
                else None
            ),
            deliveries=[delivery_out(job, attempts) for job in jobs],
        )

    async def create_order(
        self, key: ApiKey, idempotency_key: str, body: s.OrderCreate
    ) -> tuple[int, str]:
        """Record a purchase made elsewhere: a paid order (source `api`) delivered through
        the same planner and queue as a Stripe payment. The answer is kept under the
        Idempotency-Key: the same key and body answer it again, another body is a 409.
        Returns (status, JSON body)."""
        idempotency_key = idempotency_key.strip()
        if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise InvalidInput(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters.")
        wanted = request_hash(body)
        replay = await self._replay(key, idempotency_key, wanted)
        if replay is not None:
            return replay
        try:
            async with self.store.transaction() as tx:
                answer = await self._record_order(tx, key, idempotency_key, body)
                await tx.api.keep_answer(key.id, idempotency_key, wanted, 201, answer)
        except Duplicate:  # a concurrent request with the same key got there first
            replay = await self._replay(key, idempotency_key, wanted)
            if replay is None:
                raise
            return replay
        return 201, answer

    async def _replay(
        self, key: ApiKey, idempotency_key: str, wanted: str
    ) -> tuple[int, str] | None:
        async with self.store.reading() as tx:
            stored = await tx.api.answer(key.id, idempotency_key)
        if stored is None:
            return None
        if stored.request_hash != wanted:
            raise Conflict(
                "This Idempotency-Key was already used with a different request body; "
                "use a new key for a new purchase."
            )
        return stored.status, stored.body

    async def _record_order(
        self, tx: Tx, key: ApiKey, idempotency_key: str, body: s.OrderCreate
    ) -> str:
        product = await tx.products.get(body.product_id)
        if product is None or product.archived or product.guild_id != body.guild_id:
            raise NotFound(f"There is no product {body.product_id} in server {body.guild_id}.")
        if not product.active:
            raise Conflict(f"{product.name} is not for sale right now.")
        order = await tx.orders.create(
            guild_id=body.guild_id,
            buyer_id=NO_BUYER if body.user_id is None else body.user_id,
            recipient_id=body.user_id,
            product_id=product.id,
            amount=product.price_amount,
            currency=product.currency,
            source=OrderSource.API,
        )
        if await reserve_stock(tx, order) is not None:
            raise Conflict(f"{product.name} is sold out.")  # rolls the order back
        await tx.api.record_order(order.id, key.id, body.reference)
        await self.fulfilment.order_paid(
            tx, order, f"api:{key.id}:{idempotency_key}", source="the integration API"
        )
        await tx.audit.add(
            "order.api",
            guild_id=order.guild_id,
            user_id=body.user_id,
            order_id=order.id,
            key_id=key.id,
            reference=body.reference,
        )
        detail = await self._detail(tx, order.id)
        return detail.model_dump_json()

    async def revoke_order(self, order_id: int) -> s.OrderDetail:
        """End the order's access by the same rules as `/shop revoke` (roles the bot gave
        are taken back unless another active entitlement holds them). Access already ended
        is left as it is."""
        async with self.store.transaction() as tx:
            order = await tx.orders.get(order_id)
            if order is None:
                raise NotFound(f"There is no order {order_id}.")
            entitlement = await tx.entitlements.by_order(order.id)
            if entitlement is None:
                raise Conflict(
                    f"Order {order_id} gives no access to end: it is {order.status}"
                    + (" and its claim code was not used yet." if order.claim_code else ".")
                )
            changed = await self.access.end(tx, order, entitlement, MANUAL)
            if changed:
                await tx.audit.add(
                    "order.api_revoke",
                    guild_id=order.guild_id,
                    user_id=entitlement.user_id,
                    order_id=order.id,
                    entitlement_id=entitlement.id,
                )
            return await self._detail(tx, order.id)

    async def retry_delivery(self, job_id: int) -> s.DeliveryOut:
        async with self.store.transaction() as tx:
            job = await tx.jobs.get(job_id)
            if job is None:
                raise NotFound(f"There is no delivery {job_id}.")
            if not await tx.jobs.retry(job.id):
                raise Conflict(
                    f"Delivery {job_id} is {job.status}; only failed or expired deliveries "
                    "can be retried."
                )
            await tx.audit.add("job.retry", guild_id=job.guild_id, actor_id=API_ACTOR, job=job.id)
            job = await tx.jobs.get(job_id)
            assert job is not None
            attempts = await tx.api.attempts([job.id])
        return delivery_out(job, attempts)

    # members and guilds --------------------------------------------------------------

    async def entitlements(self, guild_id: int, user_id: int) -> s.EntitlementList:
        async with self.store.reading() as tx:
            found = await tx.api.entitlements_of_member(guild_id, user_id)
        return s.EntitlementList(data=[entitlement_out(e, name) for e, name in found])

    def roles(self, guild_id: int) -> s.RoleList:
        roles = self.directory.guild_roles(guild_id)
        if roles is None:
            raise NotFound(f"The bot is not in server {guild_id}.")
        return s.RoleList(
            data=[
                s.RoleOut(
                    id=str(r.id),
                    name=r.name,
                    position=r.position,
                    managed=r.managed,
                    assignable=r.problem is None,
                    problem=r.problem,
                )
                for r in roles
            ]
        )

    def channels(self, guild_id: int) -> s.ChannelList:
        channels = self.directory.text_channels(guild_id)
        if channels is None:
            raise NotFound(f"The bot is not in server {guild_id}.")
        return s.ChannelList(
            data=[
                s.ChannelOut(
                    id=str(c.id), name=c.name, position=c.position, parent_id=_sf(c.parent_id)
                )
                for c in channels
            ]
        )
