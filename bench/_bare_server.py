"""The ceiling for webhook ingest: an aiohttp server whose handler reads the body and says 200.

Run as its own process (like the bot) so it gets a core of its own:
`python -m bench._bare_server PORT`.
"""

from __future__ import annotations

import sys

from aiohttp import web


async def webhook(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"received": True, "duplicate": False})


def main() -> None:
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/webhooks/stripe", webhook)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
