"""Product actions: what a product does at each stage (ActionService), and its license keys."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.errors import InvalidInput, NotFound
from bot.i18n import N_
from bot.models import REVOKE_STAGES, Action, ActionType, Stage
from bot.shop import ShopService
from bot.store import Store

MAX_MESSAGE = 1800
MAX_KEY = 200
MAX_KEYS = 5000
MAX_ACTIONS = 25
PURCHASE_ONLY = {ActionType.GRANT_ROLE, ActionType.DELIVER_LICENSE}


class ActionService:
    """Validates and stores actions (PayNow model) and license keys; no discord imports."""

    def __init__(self, store: Store, shop: ShopService) -> None:
        self.store = store
        self.shop = shop

    async def add(
        self,
        guild_id: int,
        actor_id: int,
        ref: str,
        *,
        type: str,
        stage: str,
        role_id: int | None = None,
        channel_id: int | None = None,
        message: str | None = None,
        revoke_on: str | None = None,
    ) -> Action:
        product = await self.shop.resolve_product(guild_id, ref)
        spec = check_action(
            ActionSpec(type, stage, role_id, channel_id, message, revoke_on), role_problem=None
        )
        async with self.store.transaction() as tx:
            action = await tx.products.add_action(product.id, **spec.columns())
            await tx.audit.add(
                "action.add",
                guild_id=guild_id,
                actor_id=actor_id,
                product_id=product.id,
                action_id=action.id,
                type=type,
                stage=stage,
            )
            await self.shop.planner.refresh_panels(tx, product.id)  # the role, the stock
        return action

    async def replace(
        self,
        guild_id: int,
        actor_id: int,
        ref: str,
        specs: Sequence[ActionSpec],
        role_problem: Callable[[int], str | None] | None = None,
    ) -> list[Action]:
        """Replace the product's whole action list in one transaction: every item is checked
        first (`role_problem`: why the bot cannot give a role, or None) and one bad item
        refuses the whole list, naming it; nothing changes then."""
        product = await self.shop.resolve_product(guild_id, ref)
        if len(specs) > MAX_ACTIONS:
            raise InvalidInput(N_("A product can have at most {most} actions."), most=MAX_ACTIONS)
        checked = []
        for index, spec in enumerate(specs):
            try:
                checked.append(check_action(spec, role_problem=role_problem))
            except InvalidInput as exc:
                raise InvalidInput(
                    N_("Action {number}: {reason}"), number=index + 1, reason=exc.text
                ) from None
        async with self.store.transaction() as tx:
            for action in await tx.products.actions(product.id):
                await tx.products.remove_action(action.id)
            added = [await tx.products.add_action(product.id, **c.columns()) for c in checked]
            await tx.audit.add(
                "action.replace",
                guild_id=guild_id,
                actor_id=actor_id,
                product_id=product.id,
                count=len(added),
            )
            await self.shop.planner.refresh_panels(tx, product.id)
        return added

    async def list(self, guild_id: int, ref: str) -> list[Action]:
        product = await self.shop.resolve_product(guild_id, ref)
        async with self.store.reading() as tx:
            return await tx.products.actions(product.id)

    async def remove(self, guild_id: int, actor_id: int, action_id: int) -> Action:
        async with self.store.transaction() as tx:
            action = await tx.products.action_in_guild(action_id, guild_id)
            if action is None:
                raise NotFound(N_("There is no action #{action_id} here."), action_id=action_id)
            await tx.products.remove_action(action_id)
            await tx.audit.add(
                "action.remove", guild_id=guild_id, actor_id=actor_id, action_id=action_id
            )
            await self.shop.planner.refresh_panels(tx, action.product_id)
        return action

    async def add_licenses(
        self, guild_id: int, actor_id: int, ref: str, text: str
    ) -> tuple[int, int]:
        """Add one key per non-empty line; returns (added, already known)."""
        product = await self.shop.resolve_product(guild_id, ref)
        keys = list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
        if not keys:
            raise InvalidInput(N_("No keys found: put one key on each line."))
        if len(keys) > MAX_KEYS:
            raise InvalidInput(N_("At most {most} keys at a time."), most=MAX_KEYS)
        if any(len(key) > MAX_KEY for key in keys):
            raise InvalidInput(N_("Keys can be at most {most} characters."), most=MAX_KEY)
        added = 0
        async with self.store.transaction() as tx:
            for key in keys:
                added += await tx.products.add_license_key(product.id, key)
            await tx.audit.add(
                "license.add",
                guild_id=guild_id,
                actor_id=actor_id,
                product_id=product.id,
                added=added,
            )
            if added:
                await self.shop.planner.refresh_panels(tx, product.id)  # sold out no more
        return added, len(keys) - added


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action as a caller gives it, before it is checked."""

    type: str
    stage: str
    role_id: int | None = None
    channel_id: int | None = None
    message: str | None = None
    revoke_on: str | None = None  # comma-separated; None or empty: every revoke stage

    def columns(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "stage": self.stage,
            "role_id": self.role_id,
            "channel_id": self.channel_id,
            "message": self.message,
            "revoke_on": self.revoke_on or "",
        }


def check_action(
    spec: ActionSpec, *, role_problem: Callable[[int], str | None] | None
) -> ActionSpec:
    """The action as it is stored (message trimmed, revoke stages listed), or InvalidInput
    saying what is wrong with it."""
    type, stage, role_id, channel_id, message = (
        spec.type,
        spec.stage,
        spec.role_id,
        spec.channel_id,
        spec.message,
    )
    if type not in set(ActionType) or stage not in set(Stage):
        raise InvalidInput(N_("Unknown action type or stage."))
    if type in PURCHASE_ONLY and stage != Stage.ON_PURCHASE:
        raise InvalidInput(N_("`{type}` only runs `on_purchase`."), type=type)
    if type == ActionType.GRANT_ROLE and role_id is None:
        raise InvalidInput(N_("`grant_role` needs a `role`."))
    if type == ActionType.SEND_MESSAGE and not (message or "").strip():
        raise InvalidInput(N_("`send_message` needs a `message`."))
    if type == ActionType.CREATE_INVITE and channel_id is None:
        raise InvalidInput(N_("`create_invite` needs a `channel`."))
    if message is not None and len(message) > MAX_MESSAGE:
        raise InvalidInput(N_("Messages can be at most {most} characters."), most=MAX_MESSAGE)
    if type == ActionType.GRANT_ROLE and role_id is not None and role_problem is not None:
        problem = role_problem(role_id)
        if problem is not None:
            raise InvalidInput(problem)
    stages = _revoke_stages(spec.revoke_on)
    return ActionSpec(
        type,
        stage,
        role_id,
        channel_id,
        (message or "").strip() or None,
        ",".join(stages),
    )


def _revoke_stages(text: str | None) -> list[str]:
    if text is None or not text.strip():
        return [stage.value for stage in REVOKE_STAGES]
    stages = [part.strip() for part in text.replace(" ", ",").split(",") if part.strip()]
    allowed = {stage.value for stage in REVOKE_STAGES}
    unknown = [stage for stage in stages if stage not in allowed]
    if unknown:
        raise InvalidInput(
            N_("`revoke_on` takes on_expire, on_refund, on_chargeback; not {unknown}."),
            unknown=", ".join(unknown)[:60],
        )
    return list(dict.fromkeys(stages))
