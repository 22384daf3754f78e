"""Settings: config.toml plus SHOPBOT_* environment overrides, validated by pydantic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, overload
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bot.errors import ConfigError
from bot.sharding import Shards, parse_shard_ids
from bot.store.pg import redacted

DISCORD_API = "https://discord.com/api/v10"
DISCORD_AUTHORIZE = "https://discord.com/oauth2/authorize"
STRIPE_API = "https://api.stripe.com"
SETUP_WEBHOOK_HINT = "; `shopbot stripe setup-webhook` creates the endpoint and prints it"


class Section(BaseModel):
    """A config section: unknown keys are errors (they are usually typos)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DiscordSettings(Section):
    """[discord]: how to reach Discord."""

    token: SecretStr
    api_base: str = DISCORD_API
    gateway_url: str = ""
    command_guild_ids: list[int] = []
    admin_role_ids: list[int] = []
    # Web shop login (SPEC §5b): empty client_secret = no "Log in with Discord".
    application_id: int = 0  # 0: the id Discord gives for the token (read at login)
    client_secret: SecretStr = SecretStr("")
    oauth_authorize_url: str = DISCORD_AUTHORIZE
    #: Several processes (SPEC §2, §9): `shard_count` shards in all, this process runs
    #: `shard_ids` ("0-3", "0,2,5-7"; empty = all of them). No shard_count: one gateway
    #: connection, as an unsharded bot (Discord requires sharding from 2,500 servers).
    shard_count: int | None = None  # 0 in a file: not set
    shard_ids: str = ""

    @field_validator("shard_count")
    @classmethod
    def _shard_count(cls, value: int | None) -> int | None:
        if value is None or value == 0:
            return None
        if not 1 <= value <= 65_536:
            raise ValueError("must be from 1 to 65536 (or 0: one unsharded connection)")
        return value

    @field_validator("shard_ids")
    @classmethod
    def _shard_range(cls, value: str, info: ValidationInfo) -> str:
        count = info.data.get("shard_count")
        if count is None:
            if value.strip() and "shard_count" in info.data:
                raise ValueError("needs discord.shard_count (how many shards in all)")
            return value
        parse_shard_ids(value, count)  # its ValueError is the message
        return value

    @property
    def shards(self) -> Shards:
        """The shard range this process runs (one shard of one when unsharded)."""
        if self.shard_count is None:
            return Shards()
        return Shards(self.shard_count, parse_shard_ids(self.shard_ids, self.shard_count))

    @property
    def sharded(self) -> bool:
        """Whether `shard_count` is set: an AutoShardedBot with an explicit shard range."""
        return self.shard_count is not None

    @field_validator("oauth_authorize_url")
    @classmethod
    def _authorize_shape(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("token")
    @classmethod
    def _token_present(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        if value.get_secret_value() == "your-bot-token":
            raise ValueError("still the example value; put your bot token here")
        return value


class StripeAccess(Section):
    """[stripe] as `shopbot stripe setup-webhook` needs it: the key, not yet the webhook
    signing secret (that verb is how an operator gets one)."""

    secret_key: SecretStr
    webhook_secret: SecretStr = SecretStr("")
    api_base: str = STRIPE_API

    @field_validator("secret_key")
    @classmethod
    def _key_shape(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("sk_live_", "sk_test_", "rk_")):
            raise ValueError("must start with sk_live_, sk_test_ or rk_")
        if value.get_secret_value().endswith("..."):
            raise ValueError("still the example value; put your Stripe secret key here")
        return value


class StripeSettings(StripeAccess):
    """[stripe]: API keys and webhook secret."""

    webhook_secret: SecretStr

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith("whsec_"):
            raise ValueError("must start with whsec_")
        if value.get_secret_value().endswith("..."):
            raise ValueError(
                "still the example value; `shopbot stripe setup-webhook` prints the signing "
                "secret to put here"
            )
        return value


class HttpSettings(Section):
    """[http]: the embedded web server."""

    host: str = "0.0.0.0"  # noqa: S104 - a webhook receiver must listen publicly by default
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    public_url: str
    metrics_token: SecretStr = SecretStr("")
    # Keys the web shop's session cookies; empty: generated once and kept in the database.
    session_secret: SecretStr = SecretStr("")

    @field_validator("session_secret")
    @classmethod
    def _secret_length(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (or empty to generate one)")
        return value

    @field_validator("public_url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class DatabaseSettings(Section):
    """[database]: the SQLite file, or a PostgreSQL URL for several processes (SPEC §2)."""

    path: Path = Path("data/shop.db")
    #: `postgresql://user:password@host[:port]/dbname`; empty = SQLite at `path`. A secret:
    #: its password is scrubbed from logs and messages show it as `***`.
    url: SecretStr = SecretStr("")

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value().strip()
        if not url:
            return SecretStr("")
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
            raise ValueError(
                "must be a postgresql://user:password@host[:port]/dbname URL "
                "(or empty for SQLite at database.path)"
            )
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("the port in the URL is not a number from 1 to 65535") from None
        return SecretStr(url)

    @property
    def url_value(self) -> str:
        return self.url.get_secret_value()

    def where(self) -> str:
        """The database for messages: the SQLite path, or the URL without its password."""
        return redacted(self.url_value) if self.url_value else str(self.path)

    def secrets(self) -> list[str]:
        """The URL and its password, for scrubbing from logs."""
        url = self.url_value
        if not url:
            return []
        password = urlsplit(url).password
        return [url, *([unquote(password), password] if password else [])]


class ShopSettings(Section):
    """[shop]: business rules."""

    checkout_expiry_minutes: Annotated[int, Field(ge=30, le=1440)] = 30
    default_currency: str = "usd"
    claim_expiry_hours: Annotated[int, Field(ge=1, le=24 * 365)] = 72
    subscription_grace_hours: Annotated[int, Field(ge=0, le=24 * 60)] = 24
    max_open_checkouts: Annotated[int, Field(ge=1, le=50)] = 3
    reconcile_interval_minutes: Annotated[int, Field(ge=5, le=7 * 24 * 60)] = 60
    #: Days before a renewal, a trial's end or a timed expiry that the member is reminded.
    reminder_days: list[Annotated[int, Field(ge=1, le=60)]] = Field(
        default_factory=lambda: [3, 1], max_length=5
    )
    #: No Stripe event for this long while checkouts were started: warn the admin log.
    webhook_silence_hours: Annotated[int, Field(ge=1, le=24 * 14)] = 6

    @field_validator("default_currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        value = value.strip().lower()
        if len(value) != 3 or not value.isalpha():
            raise ValueError("must be a 3-letter ISO currency code like usd")
        return value


class LogSettings(Section):
    """[log]: verbosity and format."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(default=False, alias="json")

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class ApiSettings(Section):
    """[api]: the integration API (SPEC §5c)."""

    rate_limit_per_minute: Annotated[int, Field(ge=1, le=100_000)] = 60
    #: POST /licenses/validate per license key, and per client address, a minute
    #: (bot/licenses.py): slows guessing keys and one leaked key used everywhere.
    license_validations_per_key_per_minute: Annotated[int, Field(ge=1, le=1_000_000)] = 30
    license_validations_per_client_per_minute: Annotated[int, Field(ge=1, le=1_000_000)] = 120


class _FromSources(BaseSettings):
    """TOML file plus SHOPBOT_SECTION__KEY environment variables (the environment wins)."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPBOT_",
        env_nested_delimiter="__",
        extra="forbid",
        populate_by_name=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def _secret_values(*values: object) -> list[str]:
    """The configured secrets, for scrubbing them from logs."""
    found = []
    for value in values:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and text:
            found.append(text)
    return found


class WebhookSetupSettings(_FromSources):
    """For `shopbot stripe setup-webhook`: everything `run` needs except the webhook signing
    secret, which that verb creates."""

    discord: DiscordSettings
    stripe: StripeAccess
    http: HttpSettings
    database: DatabaseSettings = DatabaseSettings()
    shop: ShopSettings = ShopSettings()
    log: LogSettings = LogSettings()
    api: ApiSettings = ApiSettings()

    def secrets(self) -> list[str]:
        return _secret_values(
            self.discord.token,
            self.stripe.secret_key,
            self.stripe.webhook_secret,
            self.discord.client_secret,
            self.http.session_secret,
            self.http.metrics_token,
            *self.database.secrets(),
        )


class Settings(WebhookSetupSettings):
    """All of shopbot's configuration (SPEC §2): the same sections, with the webhook
    signing secret required."""

    stripe: StripeSettings


class LocalSettings(_FromSources):
    """For verbs that only touch the database (migrate, backup, export): [database] and
    [log] are checked; the other sections may be absent or unfinished and are not read."""

    discord: dict[str, Any] = {}
    stripe: dict[str, Any] = {}
    http: dict[str, Any] = {}
    database: DatabaseSettings = DatabaseSettings()
    shop: dict[str, Any] = {}
    log: LogSettings = LogSettings()
    api: dict[str, Any] = {}

    def secrets(self) -> list[str]:
        return _secret_values(
            self.discord.get("token"),
            self.stripe.get("secret_key"),
            self.stripe.get("webhook_secret"),
            *self.database.secrets(),
        )


AnySettings = TypeVar("AnySettings", Settings, WebhookSetupSettings, LocalSettings)


def config_path(cli_path: str | None) -> Path:
    """--config, else $SHOPBOT_CONFIG, else ./config.toml."""
    return Path(cli_path or os.environ.get("SHOPBOT_CONFIG") or "config.toml")


@overload
def load_settings(path: Path, *, overrides: dict[str, Any] | None = None) -> Settings: ...
@overload
def load_settings(
    path: Path, model: type[AnySettings], *, overrides: dict[str, Any] | None = None
) -> AnySettings: ...
def load_settings(
    path: Path, model: type[_FromSources] = Settings, *, overrides: dict[str, Any] | None = None
) -> _FromSources:
    """Load and validate settings as `model` (what the verb needs: Settings for the bot);
    raise ConfigError with one line naming the key. `overrides` (command-line flags, as
    `{"discord": {"shard_count": 4}}`) win over the environment and the file."""

    class _FromFile(model):  # type: ignore[valid-type,misc]  # one subclass per file
        model_config = SettingsConfigDict(toml_file=path if path.is_file() else None)

    try:
        return _FromFile(**(overrides or {}))  # the rest comes from the env and file
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, model)) from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise ConfigError(f"cannot read {path}: {exc}") from None


def _describe(exc: ValidationError, path: Path, model: type[BaseModel]) -> str:
    """One line naming the first bad key, e.g. `discord.token: required`."""
    error = exc.errors()[0]
    loc = _first_required_leaf([str(part) for part in error["loc"]], model)
    key = ".".join(loc)
    env = "SHOPBOT_" + "__".join(part.upper() for part in loc)
    if error["type"] == "missing":
        where = f"set it in {path} or {env}" if path.is_file() else f"{path} not found; set {env}"
        hint = SETUP_WEBHOOK_HINT if key == "stripe.webhook_secret" else ""
        return f"{key} is required ({where}){hint}"
    if error["type"] == "extra_forbidden":
        return f"{key} is not a known setting (check the spelling in {path})"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{key}: {message}"


def _first_required_leaf(loc: list[str], root: type[BaseModel]) -> list[str]:
    """Extend a path to a missing section (`discord`) to its first required key."""
    model = root
    for part in loc:
        field = model.model_fields.get(part)
        if field is None or not isinstance(field.annotation, type):
            return loc
        if not issubclass(field.annotation, BaseModel):
            return loc
        model = field.annotation
    required = [name for name, field in model.model_fields.items() if field.is_required()]
    return [*loc, required[0]] if required and model is not root else loc
