"""The hosted Checkout page a browser can "pay" on (`{api_base}/c/pay/{session_id}`).

Enabled with `FakeStripe(hosted_checkout=True)` (or `fake.hosted_checkout = True` before the
session is created): a session's `url` then points at the fake itself instead of
`https://checkout.stripe.com/c/pay/…`. `GET` shows the shop (account), each line item's name,
quantity and price, and the total due today (a subscription adds "then X / interval", a trial
says so), a "Pay" button (`id="pay"`) and a "Back" link (`id="back"`) to `cancel_url`.
Pressing Pay does exactly what `fake.complete_checkout(session_id)` does (its events are
pushed if `fake.push_webhooks(...)` is on) and answers 303 to `success_url` with
`{CHECKOUT_SESSION_ID}` filled in. A session whose `expires_at` passed is expired first (as
Stripe would have done by then); an expired or completed session's page says so and has no
Pay button. `fake.checkout_page_requests` records `(method, session_id, status)`.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .server import FakeStripe

# fmt: off
ZERO_DECIMAL = frozenset({
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
    "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
})
# fmt: on
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])


def format_amount(amount: int, currency: str) -> str:
    """Minor units as a display amount: `5.00 USD`, `500 JPY`, `1.250 KWD`."""
    digits = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    value = f"{amount / 10**digits:,.{digits}f}" if digits else f"{amount:,}"
    return f"{value} {currency.upper()}"


def _page(title: str, body: str, status: int = 200) -> web.Response:
    """A small HTML page; callers escape what they interpolate."""
    text = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head><body><main>{body}</main></body></html>"
    )
    return web.Response(text=text, status=status, content_type="text/html")


class HostedCheckout:
    """`GET`/`POST /c/pay/{session_id}`."""

    def __init__(self, fake: FakeStripe) -> None:
        """Bind to the fake whose sessions are shown and paid."""
        self.fake = fake

    def routes(self) -> list[web.RouteDef]:
        """Routes registered before the API catch-all (no API key: it is a browser page)."""
        return [
            web.get("/c/pay/{session_id}", self.show),
            web.post("/c/pay/{session_id}", self.pay),
        ]

    def _session(self, request: web.Request) -> dict[str, Any] | None:
        """The session (after the expiry sweep), or None."""
        self.fake.expire_due_sessions()
        return self.fake.sessions.get(request.match_info["session_id"])

    def _log(self, request: web.Request, status: int) -> None:
        """Record the hit."""
        self.fake.checkout_page_requests.append(
            (request.method, request.match_info["session_id"], status)
        )

    def _closed(self, session: dict[str, Any]) -> str:
        """What the page says for a session that can no longer be paid."""
        back = session.get("cancel_url")
        link = f"<p><a id='back' href='{html.escape(back)}'>Back</a></p>" if back else ""
        if session["status"] == "expired":
            return f"<h1>This checkout session has expired</h1>{link}"
        return f"<h1>This checkout session is already complete</h1>{link}"

    async def show(self, request: web.Request) -> web.Response:
        """The payment page."""
        session = self._session(request)
        if session is None:
            self._log(request, 404)
            return _page("Not found", "<h1>Checkout session not found</h1>", 404)
        self._log(request, 200)
        if session["status"] != "open":
            return _page("Checkout", self._closed(session))
        return _page("Checkout", self._summary(session))

    def _summary(self, session: dict[str, Any]) -> str:
        """Line items, total and the Pay form."""
        fake, sid = self.fake, session["id"]
        rows, recurring = [], []
        for item in fake.session_line_items[sid]:
            price = item["price"]
            name = html.escape(str(item["description"] or price["product"]))
            amount = format_amount(item["amount_total"], item["currency"])
            interval = price["recurring"]
            per = f" / {html.escape(interval['interval'])}" if interval else ""
            rows.append(f"<li>{name} × {item['quantity']} — {amount}{per}</li>")
            if interval:
                recurring.append(f"{amount}{per}")
        total = format_amount(session["amount_total"], session["currency"])
        trial = (fake.session_params[sid].get("subscription_data") or {}).get("trial_period_days")
        then = f"<p id='then'>Then {', '.join(recurring)}</p>" if recurring else ""
        trial_text = f"<p id='trial'>{int(trial)}-day free trial</p>" if trial else ""
        back = session.get("cancel_url")
        link = f"<a id='back' href='{html.escape(back)}'>Back</a>" if back else ""
        shop = html.escape(str(fake.account.get("email") or "shop"))
        return (
            f"<p id='merchant'>{shop}</p><ul id='items'>{''.join(rows)}</ul>"
            f"<p id='total'>Total due today: {total}</p>{then}{trial_text}"
            f"<form method='post' action='/c/pay/{html.escape(sid)}'>"
            "<button id='pay' type='submit'>Pay</button></form>"
            f"{link}"
        )

    async def pay(self, request: web.Request) -> web.Response:
        """Pressing Pay: complete the checkout and send the browser to success_url (303)."""
        session = self._session(request)
        if session is None:
            self._log(request, 404)
            return _page("Not found", "<h1>Checkout session not found</h1>", 404)
        if session["status"] != "open":
            self._log(request, 400)
            return _page("Checkout", self._closed(session), 400)
        self.fake.complete_checkout(session["id"])
        self._log(request, 303)
        if not session.get("success_url"):
            return _page("Checkout", "<h1>Payment successful</h1>")
        raise web.HTTPSeeOther(self.fake.success_redirect_url(session["id"]))
