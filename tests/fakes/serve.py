"""Run the local fakes of Discord and Stripe by hand, to try shopbot without any account.

    pip install -e '.[test]'     # the fakes use the test extras
    python -m tests.fakes.serve --config trial/config.toml

starts both fakes on free ports of 127.0.0.1 with one server ("Corner Shop": the bot, an
owner and a VIP role below the bot's), writes a config file pointing shopbot at them (every
other key as in config.example.toml), and serves until Ctrl-C. Then, in another terminal,
the operator's path of docs/DEPLOY.md works as written:

    shopbot stripe setup-webhook --config trial/config.toml   # prints the signing secret
    shopbot check --config trial/config.toml                  # after pasting it in
    shopbot run --config trial/config.toml
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.fakes.stripe import FakeStripe

PUBLIC_URL = "https://shop.shopbot-trial.dev"  # Stripe refuses localhost webhook URLs


async def serve(config: Path) -> None:
    discord = FakeDiscord(token="trial-bot-token")
    stripe = FakeStripe(secret_key="sk_test_trial")
    await discord.start()
    await stripe.start()
    guild = discord.add_guild(name="Corner Shop", owner_id=discord.owner_user.id)
    vip = discord.add_role(guild.id, "VIP", position=2)
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f"""# written by `python -m tests.fakes.serve`: shopbot against the local fakes
[discord]
token = "{discord.token}"
api_base = "{discord.api_base}"
gateway_url = "{discord.gateway_url}"
command_guild_ids = [{guild.id}]

[stripe]
secret_key = "{stripe.secret_key}"
api_base = "{stripe.api_base}"
webhook_secret = "whsec_..."   # `shopbot stripe setup-webhook` prints the real one

[http]
host = "127.0.0.1"
port = 8080
public_url = "{PUBLIC_URL}"

[database]
path = "{config.parent.resolve() / "shop.db"}"
"""
    )
    print(f"fake Discord at {discord.api_base} (server {guild.id}, VIP role {vip.id})")
    print(f"fake Stripe at {stripe.api_base}")
    print(f"config written to {config}; Ctrl-C stops the fakes", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await stripe.stop()
        await discord.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("trial/config.toml"))
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.config))


if __name__ == "__main__":
    main()
