"""The `shopbot` command line: run, check, stripe setup-webhook, migrate, backup, export, events,
api-key, webhook, sku test-entitlement."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from bot.config import (
    DatabaseSettings,
    LocalSettings,
    Settings,
    WebhookSetupSettings,
    config_path,
    load_settings,
)
from bot.errors import ConfigError
from bot.log import setup_logging
from bot.store import DatabaseInUse, DatabaseTooNew, DatabaseUnreachable, Store
from bot.webhooks_out import WebhookInputError, WebhookService

log = logging.getLogger("shopbot")

#: Verbs that only touch the database: they need no Discord or Stripe keys.
LOCAL_VERBS = frozenset({"migrate", "backup", "export", "api-key", "webhook"})


def _parser() -> argparse.ArgumentParser:
    config_help = "config file (default $SHOPBOT_CONFIG or ./config.toml)"
    # --config is accepted before or after the verb; after the verb it wins. SUPPRESS keeps a
    # verb's unset option from overwriting one given before the verb.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=config_help)
    parser = argparse.ArgumentParser(prog="shopbot", description="Discord shop bot with Stripe.")
    parser.add_argument("--config", help=config_help)
    verbs = parser.add_subparsers(dest="verb", required=True)

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        return verbs.add_parser(name, help=help_text, parents=[common])

    run = verb("run", "run the bot")
    run.add_argument(
        "--shard-count",
        type=int,
        help="shards in all (overrides discord.shard_count; several processes share them)",
    )
    run.add_argument(
        "--shard-ids",
        help='the shards this process runs, e.g. "0-3" or "0,2,5-7" (overrides '
        "discord.shard_ids; needs a shard count)",
    )
    verb("check", "validate config and reach Discord and Stripe; print the invite URL")
    stripe_verb = verb("stripe", "set up Stripe")
    stripe_actions = stripe_verb.add_subparsers(dest="stripe_action", required=True)
    stripe_actions.add_parser(
        "setup-webhook",
        help="create or update the webhook endpoint for {http.public_url}/webhooks/stripe "
        "and print its signing secret",
        parents=[common],
    )
    verb("migrate", "apply database migrations")
    backup = verb("backup", "online copy of the database to PATH")
    backup.add_argument("path")
    export = verb("export", "export data")
    export.add_argument("what", choices=["orders"])
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    events = verb("events", "Stripe events")
    events.add_argument("action", choices=["replay", "retry"])
    events.add_argument("--since", help="replay: ISO 8601, e.g. 2026-11-01T00:00:00Z")
    api_key = verb("api-key", "integration API keys")
    key_actions = api_key.add_subparsers(dest="key_action", required=True)
    create = key_actions.add_parser("create", help="create a key (shown once)", parents=[common])
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", required=True, help="comma-separated: read,write,licenses")
    key_actions.add_parser("list", help="list keys (their prefix, never the key)", parents=[common])
    revoke = key_actions.add_parser("revoke", help="revoke a key by its id", parents=[common])
    revoke.add_argument("id", type=int)
    sku = verb("sku", "Discord store SKUs")
    sku_actions = sku.add_subparsers(dest="sku_action", required=True)
    test = sku_actions.add_parser(
        "test-entitlement", help="Discord test entitlements (try a linked SKU without paying)"
    )
    test_actions = test.add_subparsers(dest="test_action", required=True)
    create = test_actions.add_parser(
        "create", help="give a user or a server a test entitlement", parents=[common]
    )
    create.add_argument("--sku", required=True, type=int, help="the SKU's id")
    owner = create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--user", type=int, help="the user's id")
    owner.add_argument("--guild", type=int, help="the server's id")
    delete = test_actions.add_parser("delete", help="delete a test entitlement", parents=[common])
    delete.add_argument("id", type=int, help="the entitlement's id")
    webhook = verb("webhook", "outbound webhook endpoints (integration API events)")
    hooks = webhook.add_subparsers(dest="webhook_action", required=True)
    create = hooks.add_parser(
        "create", help="add an endpoint; prints its signing secret once", parents=[common]
    )
    create.add_argument("--url", required=True, help="http(s) URL that receives the POSTs")
    create.add_argument(
        "--events", required=True, help="comma-separated, e.g. order.paid,access.ended"
    )
    hooks.add_parser("list", help="endpoints and whether they are enabled", parents=[common])
    delete = hooks.add_parser("delete", help="remove an endpoint", parents=[common])
    delete.add_argument("id", type=int)
    deliveries = hooks.add_parser(
        "deliveries", help="an endpoint's latest delivery attempts", parents=[common]
    )
    deliveries.add_argument("id", type=int)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = config_path(args.config)
    try:
        if args.verb in LOCAL_VERBS:
            local = load_settings(path, LocalSettings)
            setup_logging(local.log.level, local.log.json_format, local.secrets())
            if args.verb == "migrate":
                return asyncio.run(_migrate(local))
            if args.verb == "api-key":
                return asyncio.run(_api_key(local, args))
            return asyncio.run(_local(local, args))
        if args.verb == "stripe":
            setup = load_settings(path, WebhookSetupSettings)
            setup_logging(setup.log.level, setup.log.json_format, setup.secrets())
            _quiet_stripe_sdk()
            return asyncio.run(_setup_webhook(setup, path))
        settings = load_settings(path, overrides=_run_overrides(args))
        setup_logging(settings.log.level, settings.log.json_format, settings.secrets())
        if args.verb == "run":
            return asyncio.run(_run(settings))
        if args.verb == "check":
            _quiet_stripe_sdk()
            return asyncio.run(_check(settings))
        if args.verb == "sku":
            return asyncio.run(_sku(settings, args))
        return asyncio.run(_events(settings, args))
    except ConfigError as exc:
        return _fail(f"config error: {exc}")
    except KeyboardInterrupt:
        return 130


def _run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """`run --shard-count N --shard-ids 0-3` as settings that win over the file and env."""
    discord: dict[str, Any] = {}
    if getattr(args, "shard_count", None) is not None:
        discord["shard_count"] = args.shard_count
    if getattr(args, "shard_ids", None) is not None:
        discord["shard_ids"] = args.shard_ids
    return {"discord": discord} if discord else {}


def _fail(line: str) -> int:
    print(f"shopbot: {line}", file=sys.stderr)
    return 2


def _quiet_stripe_sdk() -> None:
    """The SDK logs every request at INFO; in a report printed line by line that is noise."""
    logging.getLogger("stripe").setLevel(logging.WARNING)


async def _run(settings: Settings) -> int:
    from bot.app import StartupError, run_bot  # discord-heavy import only for `run`

    try:
        await run_bot(settings)
    except (StartupError, DatabaseTooNew, DatabaseInUse) as exc:
        return _fail(str(exc))
    log.info("stopped")
    return 0


async def _check(settings: Settings) -> int:
    from bot.preflight import run_check

    where, url = settings.database.where(), settings.http.public_url
    print(f"config: ok (database {where}, public url {url})")
    problems = await run_check(settings, lambda line: print(line, flush=True))
    return 1 if problems else 0


async def _setup_webhook(settings: WebhookSetupSettings, path: Path) -> int:
    from bot.services import build_domain
    from bot.stripe_setup import setup_webhook

    # The dispatcher's table is the one list of events shopbot acts on.
    events = build_domain(settings).dispatcher.event_types  # type: ignore[arg-type]
    problem = await setup_webhook(settings, events, path, print)
    return _fail(problem) if problem else 0


async def _sku(settings: Settings, args: argparse.Namespace) -> int:
    """sku test-entitlement create|delete: one REST call to Discord, one line printed."""
    from bot.sku_cli import SkuCliError, create_test_entitlement, delete_test_entitlement

    try:
        if args.test_action == "create":
            made = await create_test_entitlement(
                settings, args.sku, user_id=args.user, guild_id=args.guild
            )
            owner = f"user {args.user}" if args.user is not None else f"server {args.guild}"
            print(f"test entitlement {made['id']} to SKU {args.sku} created for {owner}")
        else:
            await delete_test_entitlement(settings, args.id)
            print(f"test entitlement {args.id} deleted")
    except SkuCliError as exc:
        return _fail(str(exc))
    return 0


def _store(database: DatabaseSettings) -> Store:
    """SQLite at database.path, or PostgreSQL when database.url is set."""
    from bot.clock import SystemClock

    return Store(database.path, SystemClock(), url=database.url_value)


async def _migrate(settings: LocalSettings) -> int:
    """Apply pending migrations: SQLite's (its user_version) or PostgreSQL's
    (bot/store/migrations_pg, the `schema_version` table)."""
    store = _store(settings.database)
    try:
        await store.open()
        version = await store.db.migrate()
    except DatabaseTooNew as exc:
        return _fail(str(exc))
    except DatabaseUnreachable as exc:
        return _fail(f"migrate: {exc}")
    finally:
        await store.close()
    print(f"database {settings.database.where()} is at schema version {version}")
    return 0


async def _local(settings: LocalSettings, args: argparse.Namespace) -> int:
    """backup / export: open the store, do the one thing, close."""
    from bot import maintenance

    if args.verb == "backup" and settings.database.url_value:
        return _fail(
            "backup copies the SQLite file; database.url is PostgreSQL "
            f"({settings.database.where()}): use pg_dump, e.g. "
            f"pg_dump --format=custom --file={args.path} <database.url>"
        )
    store = _store(settings.database)
    try:
        await store.open()
        if args.verb == "webhook":
            try:
                return await _webhook(WebhookService(store), args)
            except WebhookInputError as exc:
                return _fail(str(exc))
        if args.verb == "backup":
            await maintenance.backup(store, Path(args.path))
            print(f"backed up {settings.database.where()} to {args.path}")
        else:
            sys.stdout.write(await maintenance.export_orders(store, args.format))
    except (DatabaseTooNew, DatabaseUnreachable, FileExistsError) as exc:
        return _fail(str(exc))
    except Exception as exc:
        return _fail(f"{args.verb} failed: {type(exc).__name__}: {exc}")
    finally:
        await store.close()
    return 0


async def _api_key(settings: LocalSettings, args: argparse.Namespace) -> int:
    """api-key create|list|revoke: only the database is touched."""
    from bot.api.keys import ApiKeys, parse_scopes
    from bot.clock import SystemClock
    from bot.errors import ShopError

    clock = SystemClock()
    store = _store(settings.database)
    try:
        await store.open()
        keys = ApiKeys(store, clock)
        if args.key_action == "create":
            record, key = await keys.create(args.name, parse_scopes(args.scopes))
            scopes = ",".join(sorted(record.scopes))
            print(f"created API key {record.id} ({record.name}, scopes {scopes})")
            print(f"key: {key}")
            print("This is the only time the key is shown; store it now.")
        elif args.key_action == "list":
            found = await keys.list()
            if not found:
                print("no API keys yet; create one with `shopbot api-key create`")
            for item in found:
                state = f"revoked {item.revoked_at:%Y-%m-%d}" if item.revoked_at else "live"
                used = f"{item.last_used_at:%Y-%m-%d %H:%M}" if item.last_used_at else "never"
                scopes = ",".join(s for s in ("read", "write", "licenses") if s in item.scopes)
                print(
                    f"{item.id}\t{item.prefix}…\t{item.name}\t{scopes}\t{state}\t"
                    f"created {item.created_at:%Y-%m-%d}\tlast used {used}"
                )
        else:
            record = await keys.revoke(args.id)
            print(f"revoked API key {record.id} ({record.name})")
    except (DatabaseTooNew, DatabaseUnreachable) as exc:
        return _fail(str(exc))
    except ShopError as exc:
        return _fail(exc.user_message)
    finally:
        await store.close()
    return 0


async def _webhook(service: WebhookService, args: argparse.Namespace) -> int:
    """webhook create|list|delete|deliveries (database only, no tokens needed)."""
    action = args.webhook_action
    if action == "create":
        endpoint, secret = await service.create(args.url, args.events)
        print(f"endpoint {endpoint.id}: {endpoint.url} ({', '.join(endpoint.events)})")
        print(f"signing secret (shown only now): {secret}")
        return 0
    if action == "list":
        endpoints = await service.list()
        for e in endpoints:
            state = "enabled" if e.enabled else f"disabled ({e.disabled_reason or 'by hand'})"
            print(f"{e.id}\t{e.url}\t{','.join(e.events)}\t{state}\t{e.created_at.isoformat()}")
        if not endpoints:
            print("no webhook endpoints")
        return 0
    if action == "delete":
        if not await service.delete(args.id):
            return _fail(f"no webhook endpoint {args.id}")
        print(f"deleted webhook endpoint {args.id}")
        return 0
    attempts = await service.deliveries(args.id)
    if attempts is None:
        return _fail(f"no webhook endpoint {args.id}")
    for a in attempts:
        result = str(a.status_code) if a.status_code is not None else "-"
        when = a.attempted_at.isoformat()
        print(f"{when}\t{a.event_type}\t{a.event_id}\t{result}\t{a.error or 'ok'}")
    if not attempts:
        print("no deliveries yet")
    return 0


async def _events(settings: Settings, args: argparse.Namespace) -> int:
    """events replay|retry: open the store, fetch or re-apply Stripe events, close."""
    from bot import maintenance

    if args.action == "replay":
        if args.since is None:
            return _fail("events replay needs --since ISO8601, e.g. --since 2026-11-01")
        try:
            since = maintenance.since_from(args.since)
        except ValueError:
            return _fail(f"--since: {args.since!r} is not an ISO 8601 date or time")
    store = _store(settings.database)
    try:
        await store.open()
        if args.action == "retry":
            retried, outcome = await maintenance.retry_failed_events(store, settings)
            print(f"{retried} failed events retried: {outcome}")
        else:
            fetched, fresh = await maintenance.replay_events(store, settings, since)
            print(f"fetched {fetched} events from Stripe; {fresh} were new and processed")
    except (DatabaseTooNew, DatabaseUnreachable) as exc:
        return _fail(str(exc))
    except Exception as exc:
        return _fail(f"{args.verb} failed: {type(exc).__name__}: {exc}")
    finally:
        await store.close()
    return 0
