"""The `shopbot` command line: run, check, stripe setup-webhook, migrate, backup, export, events."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bot.config import (
    LocalSettings,
    Settings,
    WebhookSetupSettings,
    config_path,
    load_settings,
)
from bot.errors import ConfigError
from bot.log import setup_logging
from bot.store import DatabaseTooNew, Store
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

    verb("run", "run the bot")
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
            return asyncio.run(_local(local, args))
        if args.verb == "stripe":
            setup = load_settings(path, WebhookSetupSettings)
            setup_logging(setup.log.level, setup.log.json_format, setup.secrets())
            _quiet_stripe_sdk()
            return asyncio.run(_setup_webhook(setup, path))
        settings = load_settings(path)
        setup_logging(settings.log.level, settings.log.json_format, settings.secrets())
        if args.verb == "run":
            return asyncio.run(_run(settings))
        if args.verb == "check":
            _quiet_stripe_sdk()
            return asyncio.run(_check(settings))
        return asyncio.run(_events(settings, args))
    except ConfigError as exc:
        return _fail(f"config error: {exc}")
    except KeyboardInterrupt:
        return 130


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
    except (StartupError, DatabaseTooNew) as exc:
        return _fail(str(exc))
    log.info("stopped")
    return 0


async def _check(settings: Settings) -> int:
    from bot.preflight import run_check

    print(f"config: ok (database {settings.database.path}, public url {settings.http.public_url})")
    problems = await run_check(settings, lambda line: print(line, flush=True))
    return 1 if problems else 0


async def _setup_webhook(settings: WebhookSetupSettings, path: Path) -> int:
    from bot.services import build_domain
    from bot.stripe_setup import setup_webhook

    # The dispatcher's table is the one list of events shopbot acts on.
    events = build_domain(settings).dispatcher.event_types  # type: ignore[arg-type]
    problem = await setup_webhook(settings, events, path, print)
    return _fail(problem) if problem else 0


async def _migrate(settings: LocalSettings) -> int:
    from bot.clock import SystemClock

    store = Store(settings.database.path, SystemClock())
    try:
        await store.open()
        version = await store.db.migrate()
    except DatabaseTooNew as exc:
        return _fail(str(exc))
    finally:
        await store.close()
    print(f"database {settings.database.path} is at schema version {version}")
    return 0


async def _local(settings: LocalSettings, args: argparse.Namespace) -> int:
    """backup / export: open the store, do the one thing, close."""
    from bot import maintenance
    from bot.clock import SystemClock

    store = Store(settings.database.path, SystemClock())
    try:
        await store.open()
        if args.verb == "webhook":
            try:
                return await _webhook(WebhookService(store), args)
            except WebhookInputError as exc:
                return _fail(str(exc))
        if args.verb == "backup":
            await maintenance.backup(store, Path(args.path))
            print(f"backed up {settings.database.path} to {args.path}")
        else:
            sys.stdout.write(await maintenance.export_orders(store, args.format))
    except (DatabaseTooNew, FileExistsError) as exc:
        return _fail(str(exc))
    except Exception as exc:
        return _fail(f"{args.verb} failed: {type(exc).__name__}: {exc}")
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
    from bot.clock import SystemClock

    if args.action == "replay":
        if args.since is None:
            return _fail("events replay needs --since ISO8601, e.g. --since 2026-11-01")
        try:
            since = maintenance.since_from(args.since)
        except ValueError:
            return _fail(f"--since: {args.since!r} is not an ISO 8601 date or time")
    store = Store(settings.database.path, SystemClock())
    try:
        await store.open()
        if args.action == "retry":
            retried, outcome = await maintenance.retry_failed_events(store, settings)
            print(f"{retried} failed events retried: {outcome}")
        else:
            fetched, fresh = await maintenance.replay_events(store, settings, since)
            print(f"fetched {fetched} events from Stripe; {fresh} were new and processed")
    except DatabaseTooNew as exc:
        return _fail(str(exc))
    except Exception as exc:
        return _fail(f"{args.verb} failed: {type(exc).__name__}: {exc}")
    finally:
        await store.close()
    return 0
