"""OAuth2 for the web shop: the browser authorize page, the token endpoints and Bearer tokens.

How a test drives it (everything lives on the FakeDiscord):

- The app's client id is `fake.application_id`, its secret `fake.client_secret`. Register the
  bot's callback like the Developer Portal's "Redirects" list: `fake.add_redirect_uri(url)`.
- Point the bot's `discord.oauth_authorize_url` at `fake.oauth_authorize_url`
  (`{base_url}/oauth2/authorize`) and its token exchange at `{fake.api_base}/oauth2/token`.
- Choose who is "logged in to Discord" in the browser: `fake.oauth_user = user_id` (the user
  is created if unknown). The authorize page then shows "Authorize <app>" for that user with
  an "Authorize" button (id `authorize`) and a "Cancel" button (id `cancel`), a plain HTML
  form a selenium test can click. Authorize → 302 to `redirect_uri?code=…&state=…`; Cancel →
  302 to `redirect_uri?error=access_denied&error_description=…&state=…`. With no
  `oauth_user` the page says nobody is logged in and offers no button.
- Codes are single-use, expire after `fake.oauth_code_ttl` seconds (600) of `fake.clock`
  and are bound to client_id, redirect_uri and the user. Access tokens last
  `fake.oauth_token_ttl` (604800, like Discord's `expires_in`).
- `fake.grant_oauth(user_id, scopes)` skips the browser: it returns a live `OAuthGrant`
  (`.access_token`) as if the user had approved and the shop had exchanged the code.
- `fake.revoke_oauth(user_id)` is the user removing the app under Authorized Apps: every
  token of that user stops working. `fake.oauth_grants` maps live access tokens to grants;
  `fake.authorize_requests` records every hit of the authorize page; the REST calls are in
  `fake.requests` as usual (a token request's `form` with `client_secret` masked), and each
  add-member call also lands in `fake.joins` (`JoinOp`).
"""

from __future__ import annotations

import base64
import binascii
import html
import secrets
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from aiohttp import web

from . import responses as R
from .responses import RequestRecord, json_response

if TYPE_CHECKING:
    from .server import FakeDiscord

#: Scopes the fake understands (the rest of Discord's list is refused as an invalid scope).
KNOWN_SCOPES = frozenset(
    {"identify", "email", "guilds", "guilds.join", "guilds.members.read", "connections"}
)
TOKEN_PATHS = ("/oauth2/token", "/oauth2/token/revoke")


@dataclass
class OAuthCode:
    """An authorization code handed to the browser, waiting to be exchanged once."""

    code: str
    client_id: str
    redirect_uri: str
    user_id: int
    scopes: tuple[str, ...]
    expires_at: float


@dataclass
class OAuthGrant:
    """An access token (and its refresh token) a user granted to the app."""

    access_token: str
    refresh_token: str
    user_id: int
    scopes: tuple[str, ...]
    expires_at: float
    client_id: str
    revoked: bool = field(default=False)

    def valid(self, now: float) -> bool:
        """Not revoked and not expired."""
        return not self.revoked and now < self.expires_at


class JoinOp(NamedTuple):
    """One `PUT /guilds/{g}/members/{u}` (add a member with an OAuth2 token) and its outcome."""

    guild_id: int
    user_id: int
    roles: tuple[int, ...]
    status: int


class OAuthError(Exception):
    """An OAuth2 token-endpoint error (`{"error": …, "error_description": …}`)."""

    def __init__(self, status: int, error: str, description: str | None = None) -> None:
        """Build the RFC 6749 body Discord answers with."""
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.body = (
            {"error": error}
            if description is None
            else {
                "error": error,
                "error_description": description,
            }
        )


def invalid_field(name: str) -> OAuthError:
    """Discord's answer for a bad `code`/`redirect_uri`/`refresh_token`."""
    return OAuthError(400, "invalid_grant", f'Invalid "{name}" in request.')


def _page(title: str, body: str, status: int = 200) -> web.Response:
    """A small HTML page (everything interpolated is escaped by the caller)."""
    text = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body><main>{body}</main></body></html>"
    )
    return web.Response(text=text, status=status, content_type="text/html")


def _with_query(url: str, params: dict[str, str]) -> str:
    """`url` with `params` appended to its query string."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


class OAuthRoutes:
    """`/oauth2/authorize` (browser) plus `/api/v10/oauth2/token` and `/token/revoke`."""

    def __init__(self, fake: FakeDiscord) -> None:
        """Bind to the fake that holds codes, grants and the registered redirect URIs."""
        self.fake = fake

    def browser_routes(self) -> list[web.RouteDef]:
        """Routes outside the API prefix (what discord.com serves to a browser)."""
        return [
            web.get("/oauth2/authorize", self.authorize_page),
            web.post("/oauth2/authorize", self.authorize_decision),
        ]

    def api_routes(self) -> list[web.RouteDef]:
        """Token routes, relative to /api/v10 (client auth, not the bot token)."""
        return [web.post(TOKEN_PATHS[0], self.token), web.post(TOKEN_PATHS[1], self.revoke)]

    # ------------------------------------------------------------ authorize
    def _record(self, request: web.Request, params: dict[str, str], status: int) -> None:
        """Remember one hit of the authorize page."""
        self.fake.authorize_requests.append(
            RequestRecord(
                method=request.method,
                path=request.path,
                route_template="/oauth2/authorize",
                json=None,
                query=params,
                headers={},
                time=self.fake.clock(),
                status=status,
            )
        )
        self.fake._notify()

    def _check(self, params: dict[str, str]) -> tuple[str, tuple[str, ...]] | str:
        """Validate an authorize request: (redirect_uri, scopes), or the error to show."""
        if params.get("client_id") != str(self.fake.application_id):
            return "Unknown Application"
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in self.fake.redirect_uris:
            return "Invalid OAuth2 redirect_uri"
        if params.get("response_type") != "code":
            return "Invalid response_type: only the authorization code grant is supported"
        scopes = tuple(params.get("scope", "").split())
        if not scopes or not set(scopes) <= KNOWN_SCOPES:
            return f"Invalid scope: {params.get('scope', '')!r}"
        return redirect_uri, scopes

    async def authorize_page(self, request: web.Request) -> web.Response:
        """GET /oauth2/authorize: the consent screen for `fake.oauth_user`."""
        params = dict(request.query)
        checked = self._check(params)
        if isinstance(checked, str):
            self._record(request, params, 400)
            return _page("Discord", f"<h1>{html.escape(checked)}</h1>", 400)
        redirect_uri, scopes = checked
        user_id = self.fake.oauth_user
        if user_id is None:
            self._record(request, params, 200)
            return _page("Discord", "<h1>Log in to Discord</h1><p>Nobody is logged in.</p>")
        user = self.fake.add_user(user_id)
        granted = self.fake.oauth_authorized.get((user.id, params["client_id"]), set())
        if params.get("prompt") == "none" and set(scopes) <= granted:
            self._record(request, params, 302)
            raise web.HTTPFound(self._approve(user.id, params, redirect_uri, scopes))
        app = html.escape(self.fake.bot_user.username)
        hidden = "".join(
            f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
            for k, v in {**params, "user_id": str(user.id)}.items()
        )
        items = "".join(f"<li>{html.escape(s)}</li>" for s in scopes)
        body = (
            f"<h1>Authorize {app}</h1>"
            f"<p>Signed in as <strong>{html.escape(user.username)}</strong>.</p>"
            f"<p>{app} wants to:</p><ul id='scopes'>{items}</ul>"
            f"<form method='post' action='/oauth2/authorize'>{hidden}"
            "<button id='cancel' name='decision' value='cancel'>Cancel</button>"
            "<button id='authorize' name='decision' value='authorize'>Authorize</button>"
            "</form>"
        )
        self._record(request, params, 200)
        return _page(f"Authorize {self.fake.bot_user.username}", body)

    async def authorize_decision(self, request: web.Request) -> web.Response:
        """POST /oauth2/authorize: the user pressed Authorize or Cancel."""
        form = {k: str(v) for k, v in (await request.post()).items()}
        params = {k: v for k, v in form.items() if k not in ("decision", "user_id")}
        checked = self._check(params)
        if isinstance(checked, str) or not form.get("user_id", "").isdigit():
            self._record(request, params, 400)
            return _page("Discord", "<h1>Invalid authorization request</h1>", 400)
        redirect_uri, scopes = checked
        self._record(request, params, 302)
        state = {"state": params["state"]} if "state" in params else {}
        if form.get("decision") != "authorize":
            denied = {
                "error": "access_denied",
                "error_description": "The resource owner or authorization server denied the "
                "request",
                **state,
            }
            raise web.HTTPFound(_with_query(redirect_uri, denied))
        raise web.HTTPFound(self._approve(int(form["user_id"]), params, redirect_uri, scopes))

    def _approve(
        self, user_id: int, params: dict[str, str], redirect_uri: str, scopes: tuple[str, ...]
    ) -> str:
        """Issue a code for the user and return where the browser goes next."""
        fake = self.fake
        code = secrets.token_urlsafe(22)[:30]
        fake.oauth_codes[code] = OAuthCode(
            code, params["client_id"], redirect_uri, user_id, scopes,
            fake.clock() + fake.oauth_code_ttl,
        )  # fmt: skip
        fake.oauth_authorized.setdefault((user_id, params["client_id"]), set()).update(scopes)
        state = {"state": params["state"]} if "state" in params else {}
        return _with_query(redirect_uri, {"code": code, **state})

    # ---------------------------------------------------------------- token
    def _client(self, request: web.Request, form: dict[str, str]) -> str:
        """Authenticate the client (HTTP Basic or form fields); return its id."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                decoded = base64.b64decode(auth[6:], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise OAuthError(401, "invalid_client") from None
            client_id, _, secret = decoded.partition(":")
            client_id, secret = urllib.parse.unquote(client_id), urllib.parse.unquote(secret)
        if client_id != str(self.fake.application_id) or secret != self.fake.client_secret:
            raise OAuthError(401, "invalid_client")
        return client_id

    def _form(self, request: web.Request) -> dict[str, str]:
        """The parsed form body (the middleware read it); anything else is refused."""
        form = request[R.BODY_KEY].form
        if form is None:
            raise OAuthError(
                400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded"
            )
        return form

    async def token(self, request: web.Request) -> web.Response:
        """POST /oauth2/token: authorization_code or refresh_token grant."""
        try:
            form = self._form(request)
            client_id = self._client(request, form)
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                grant = self._exchange_code(form, client_id)
            elif grant_type == "refresh_token":
                grant = self._refresh(form, client_id)
            elif not grant_type:
                raise OAuthError(400, "invalid_request", 'Missing "grant_type" in request.')
            else:
                raise OAuthError(
                    400, "unsupported_grant_type", f"Unsupported grant type {grant_type!r}"
                )
        except OAuthError as error:
            return json_response(error.body, status=error.status)
        return json_response(
            {
                "token_type": "Bearer",
                "access_token": grant.access_token,
                "expires_in": self.fake.oauth_token_ttl,
                "refresh_token": grant.refresh_token,
                "scope": " ".join(grant.scopes),
            }
        )

    def _exchange_code(self, form: dict[str, str], client_id: str) -> OAuthGrant:
        """Consume a code (single use) bound to this client and redirect_uri."""
        fake = self.fake
        for name in ("code", "redirect_uri"):
            if not form.get(name):
                raise OAuthError(400, "invalid_request", f'Missing "{name}" in request.')
        found = fake.oauth_codes.get(form["code"])
        if found is None or found.client_id != client_id or fake.clock() >= found.expires_at:
            raise invalid_field("code")
        if found.redirect_uri != form["redirect_uri"]:
            raise invalid_field("redirect_uri")
        del fake.oauth_codes[found.code]
        return self._issue(found.user_id, found.scopes)

    def _refresh(self, form: dict[str, str], client_id: str) -> OAuthGrant:
        """Trade a refresh token for a new pair; the old pair stops working."""
        old = next(
            (
                g
                for g in self.fake.oauth_grants.values()
                if g.refresh_token == form.get("refresh_token")
            ),
            None,
        )
        if old is None or old.revoked or old.client_id != client_id:
            raise invalid_field("refresh_token")
        old.revoked = True
        return self._issue(old.user_id, old.scopes)

    def _issue(self, user_id: int, scopes: tuple[str, ...]) -> OAuthGrant:
        """A fresh access + refresh token for the user (the client is the fake's app)."""
        return self.fake.grant_oauth(user_id, scopes)

    async def revoke(self, request: web.Request) -> web.Response:
        """POST /oauth2/token/revoke: `token` (access or refresh) and its pair stop working."""
        try:
            form = self._form(request)
            client_id = self._client(request, form)
            if not form.get("token"):
                raise OAuthError(400, "invalid_request", 'Missing "token" in request.')
        except OAuthError as error:
            return json_response(error.body, status=error.status)
        for grant in self.fake.oauth_grants.values():
            tokens = (grant.access_token, grant.refresh_token)
            if form["token"] in tokens and grant.client_id == client_id:
                grant.revoked = True
        return json_response({})


def mask_form(form: dict[str, str]) -> dict[str, str]:
    """A form for the request log, with the client secret hidden."""
    return {k: ("***" if k == "client_secret" else v) for k, v in form.items()}


class Identity(NamedTuple):
    """Who made an API request: the bot (`grant` None) or a user through a Bearer token."""

    grant: OAuthGrant | None


#: Routes a Bearer token may call (method, template) and the scope each needs.
BEARER_ROUTES = {("GET", "/users/@me"): "identify"}


AUTH_KEY = web.RequestKey("auth", Identity)
