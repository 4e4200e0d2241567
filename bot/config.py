"""Settings: one typed object, read once where the app is wired.

Every setting comes from the environment (or a `.env` file). Most names carry the
`AVATARBOT_` prefix; the well-known ones (`REDIS_URL`, `TELEGRAM_BOT_TOKEN`,
`DISCORD_BOT_TOKEN`) do not. A missing or malformed value fails at start with the
variable's name; secrets are `SecretStr`, so they never show in a repr or a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from bot.diffusion_settings import DiffusionSettings, env_alias
from bot.errors import AvatarbotError
from bot.scopes import is_user_scope


class ConfigError(AvatarbotError):
    """A setting is missing or malformed; the message names the variable."""


_env = env_alias


class Settings(DiffusionSettings):
    """Everything avatarbot can be configured with. See README for the table."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        populate_by_name=False,
    )

    # --- Redis -------------------------------------------------------------
    redis_url: str | None = Field(
        default=None,
        validation_alias=_env("REDIS_URL"),
        description="Redis server; unset starts an embedded Redis in the data dir.",
    )
    key_prefix: str = Field(default="avatarbot", validation_alias=_env("AVATARBOT_KEY_PREFIX"))
    redis_maxmemory_mb: int = Field(
        default=1024,
        ge=16,
        validation_alias=_env("AVATARBOT_REDIS_MAXMEMORY_MB"),
        description="The embedded Redis's `maxmemory` (policy noeviction: once full, new "
        'work is refused with a "busy" answer); see docs/deployment.md for the sizing.',
    )

    # --- Chat platforms ----------------------------------------------------
    telegram_bot_token: SecretStr | None = Field(
        default=None, validation_alias=_env("TELEGRAM_BOT_TOKEN")
    )
    telegram_api_base_url: str = Field(
        default="https://api.telegram.org/bot",
        validation_alias=_env("AVATARBOT_TELEGRAM_API_URL"),
    )
    telegram_file_base_url: str = Field(
        default="https://api.telegram.org/file/bot",
        validation_alias=_env("AVATARBOT_TELEGRAM_FILE_URL"),
    )
    telegram_webhook_url: str | None = Field(
        default=None, validation_alias=_env("AVATARBOT_TELEGRAM_WEBHOOK_URL")
    )
    telegram_webhook_secret: SecretStr | None = Field(
        default=None, validation_alias=_env("AVATARBOT_TELEGRAM_WEBHOOK_SECRET")
    )
    discord_bot_token: SecretStr | None = Field(
        default=None, validation_alias=_env("DISCORD_BOT_TOKEN")
    )
    discord_guild_id: int | None = Field(
        default=None, validation_alias=_env("AVATARBOT_DISCORD_GUILD_ID")
    )
    discord_shard_count: int | None = Field(
        default=None,
        ge=1,
        validation_alias=_env("AVATARBOT_DISCORD_SHARD_COUNT"),
        description="Discord shards across all bot processes; unset: the count Discord recommends.",
    )
    discord_shard_ids: Annotated[tuple[int, ...] | None, NoDecode] = Field(
        default=None,
        validation_alias=_env("AVATARBOT_DISCORD_SHARD_IDS"),
        description="The shards this bot process runs, e.g. `0,1` (needs "
        "AVATARBOT_DISCORD_SHARD_COUNT); unset: all of them.",
    )
    web_enabled: bool = Field(
        default=None,
        validate_default=True,
        validation_alias=_env("AVATARBOT_WEB_ENABLED"),
        description="Serve the web chat; unset: on, unless AVATARBOT_TELEGRAM_WEBHOOK_URL is set.",
    )
    web_host: str = Field(default="127.0.0.1", validation_alias=_env("AVATARBOT_WEB_HOST"))
    web_port: int = Field(default=8080, ge=0, le=65535, validation_alias=_env("AVATARBOT_WEB_PORT"))

    # --- Exposure (docs/deployment.md, "Exposing it to the internet") ---------
    allowed_hosts: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(),
        validation_alias=_env("AVATARBOT_ALLOWED_HOSTS"),
        description="Host names the HTTP servers answer besides localhost, IP addresses, the "
        "bind host and the webhook URL's host; comma-separated, `.example.org` for its "
        "subdomains, `*` for any.",
    )
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = Field(
        default=(),
        validation_alias=_env("AVATARBOT_TRUSTED_PROXIES"),
        description="Reverse proxies (IPs or CIDRs) whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed.",
    )
    http_idle_timeout_s: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        validation_alias=_env("AVATARBOT_HTTP_IDLE_TIMEOUT_S"),
        description="A connection that sends no complete request headers this long is closed.",
    )
    http_body_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        validation_alias=_env("AVATARBOT_HTTP_BODY_TIMEOUT_S"),
        description="A request body must arrive within this long (408 otherwise).",
    )
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        validation_alias=_env("AVATARBOT_METRICS_PORT"),
        description="Serve /metrics on this port only (0: on AVATARBOT_WEB_PORT).",
    )
    metrics_host: str = Field(default="127.0.0.1", validation_alias=_env("AVATARBOT_METRICS_HOST"))
    webhook_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        validation_alias=_env("AVATARBOT_WEBHOOK_PORT"),
        description="Serve the Telegram webhook on this port only (0: on AVATARBOT_WEB_PORT).",
    )
    webhook_host: str | None = Field(
        default=None,
        validation_alias=_env("AVATARBOT_WEBHOOK_HOST"),
        description="Bind address of the webhook port; unset: AVATARBOT_WEB_HOST.",
    )
    intake_memory_mb: int = Field(
        default=1024,
        ge=64,
        validation_alias=_env("AVATARBOT_INTAKE_MEMORY_MB"),
        description="Memory the selfie decodes of one bot process may take at once; sets how "
        "many run together and the most pixels an upload may have.",
    )
    web_uploads_per_minute: int = Field(
        default=6, ge=1, validation_alias=_env("AVATARBOT_WEB_UPLOADS_PER_MINUTE")
    )
    web_uploads_per_ip_minute: int = Field(
        default=30, ge=1, validation_alias=_env("AVATARBOT_WEB_UPLOADS_PER_IP_MINUTE")
    )
    web_identities_per_ip_day: int = Field(
        default=20,
        ge=1,
        validation_alias=_env("AVATARBOT_WEB_IDENTITIES_PER_IP_DAY"),
        description="New web chat identities (cookies) one address may get per day.",
    )
    bot_name: str = Field(
        default="main",
        pattern=r"^[A-Za-z0-9_-]{1,40}$",
        validation_alias=_env("AVATARBOT_BOT_NAME"),
        description="Name of this bot deployment; results for it arrive on its own stream.",
    )

    # --- Generation (the diffusers backend's own settings: bot.diffusion_settings) --
    output_size: int = Field(default=512, validation_alias=_env("AVATARBOT_OUTPUT_SIZE"))
    batch_size: int = Field(default=4, ge=1, le=64, validation_alias=_env("AVATARBOT_BATCH_SIZE"))
    styles_file: Path | None = Field(default=None, validation_alias=_env("AVATARBOT_STYLES_FILE"))

    # --- Likeness -------------------------------------------------------------
    likeness: bool = Field(
        default=True,
        validation_alias=_env("AVATARBOT_LIKENESS"),
        description="Score every avatar's likeness to its selfie in the worker (~0.1 s CPU "
        "an image).",
    )
    likeness_max_tries: int = Field(
        default=3,
        ge=1,
        le=10,
        validation_alias=_env("AVATARBOT_LIKENESS_MAX_TRIES"),
        description="Diffusers: generations per image at most while its likeness is below "
        "the style's min_likeness (1: never re-roll).",
    )
    likeness_reroll_budget_s: float = Field(
        default=10.0,
        ge=0,
        validation_alias=_env("AVATARBOT_LIKENESS_REROLL_BUDGET_S"),
        description="Diffusers: seconds a batch may spend re-rolling low-likeness images.",
    )
    likeness_in_caption: bool = Field(
        default=False,
        validation_alias=_env("AVATARBOT_LIKENESS_IN_CAPTION"),
        description="Show the likeness score in the avatar's caption (the web chat always "
        "shows it under the image).",
    )

    # --- Quotas and limits ---------------------------------------------------
    daily_quota: int = Field(default=20, ge=1, validation_alias=_env("AVATARBOT_DAILY_QUOTA"))
    queue_cap: int = Field(default=500, ge=1, validation_alias=_env("AVATARBOT_QUEUE_CAP"))
    max_upload_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1024, validation_alias=_env("AVATARBOT_MAX_UPLOAD_BYTES")
    )
    max_deliveries: int = Field(
        default=3,
        ge=1,
        validation_alias=_env("AVATARBOT_MAX_DELIVERIES"),
        description="A job delivered to workers this many times without finishing is dead.",
    )
    reclaim_idle_s: float = Field(
        default=30.0, gt=0, validation_alias=_env("AVATARBOT_RECLAIM_IDLE_S")
    )
    reclaim_interval_s: float = Field(
        default=5.0, gt=0, validation_alias=_env("AVATARBOT_RECLAIM_INTERVAL_S")
    )
    reclaim_by_liveness: bool = Field(
        default=True,
        validation_alias=_env("AVATARBOT_RECLAIM_BY_LIVENESS"),
        description="Hand a dead worker's jobs to the living as soon as its liveness record "
        "lapses; false: only once idle past their stuck bound.",
    )
    liveness_refresh_s: float = Field(
        default=0.5,
        gt=0,
        validation_alias=_env("AVATARBOT_LIVENESS_REFRESH_S"),
        description="How often a worker renews its liveness record (it looks for dead "
        "ones twice as often).",
    )
    liveness_ttl_s: float = Field(
        default=2.0,
        gt=0,
        validation_alias=_env("AVATARBOT_LIVENESS_TTL_S"),
        description="A worker whose liveness record is this old is dead.",
    )
    stuck_factor: float = Field(
        default=4.0,
        ge=0,
        validation_alias=_env("AVATARBOT_STUCK_FACTOR"),
        description="A live worker holding a job this many times its expected time is stuck.",
    )
    stuck_min_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias=_env("AVATARBOT_STUCK_MIN_S"),
        description="The stuck bound's floor.",
    )
    stuck_max_s: float = Field(
        default=600.0,
        gt=0,
        validation_alias=_env("AVATARBOT_STUCK_MAX_S"),
        description="The stuck bound's ceiling.",
    )

    # --- Access (see docs/operations.md) --------------------------------------
    admins: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(),
        validation_alias=_env("AVATARBOT_ADMINS"),
        description="Admins, comma-separated `platform:user_id` (telegram:42,discord:123).",
    )
    access_mode: Literal["open", "restricted"] = Field(
        default="open",
        validation_alias=_env("AVATARBOT_ACCESS_MODE"),
        description="Who may use the bot until an admin changes it live (`/mode`).",
    )

    # --- Retention -----------------------------------------------------------
    selfie_ttl_s: int = Field(
        default=3600,
        ge=60,
        validation_alias=_env("AVATARBOT_SELFIE_TTL_S"),
        description="Upper bound on a selfie's life; it is deleted as soon as its job ends.",
    )
    result_ttl_s: int = Field(default=86400, ge=60, validation_alias=_env("AVATARBOT_RESULT_TTL_S"))
    job_ttl_s: int = Field(default=86400, ge=60, validation_alias=_env("AVATARBOT_JOB_TTL_S"))

    # --- Provenance ------------------------------------------------------------
    c2pa_cert_chain: Path | None = Field(
        default=None,
        validation_alias=_env("AVATARBOT_C2PA_CERT_CHAIN"),
        description="PEM certificate chain for C2PA signing; unset: a local chain in the data dir.",
    )
    c2pa_private_key: Path | None = Field(
        default=None, validation_alias=_env("AVATARBOT_C2PA_PRIVATE_KEY")
    )
    mark_ttl_s: int = Field(
        default=365 * 24 * 3600,
        ge=3600,
        validation_alias=_env("AVATARBOT_MARK_TTL_S"),
        description="How long watermark ids stay verifiable (style and date only, no user data).",
    )

    # --- Process -----------------------------------------------------------
    data_dir: Path = Field(default=Path("data"), validation_alias=_env("AVATARBOT_DATA_DIR"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias=_env("AVATARBOT_LOG_LEVEL")
    )
    log_json: bool = Field(default=False, validation_alias=_env("AVATARBOT_LOG_JSON"))
    worker_health_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        validation_alias=_env("AVATARBOT_WORKER_HEALTH_PORT"),
        description="Port of a worker's /healthz and /metrics (0: off). `avatarbot run` gives "
        "worker i this port + i.",
    )
    workers: int = Field(
        default=1,
        ge=0,
        le=32,
        validation_alias=_env("AVATARBOT_WORKERS"),
        description="Worker processes `avatarbot run` starts beside the bot.",
    )

    @field_validator("web_enabled", mode="before")
    @classmethod
    def _web_default(cls, value: object, info: ValidationInfo) -> object:
        if value is None:  # the web chat stays off where a webhook exposes the port
            return not info.data.get("telegram_webhook_url")
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(p.strip().lower().rstrip(".") for p in value.split(",") if p.strip())
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return tuple(
                    ip_network(p.strip(), strict=False) for p in value.split(",") if p.strip()
                )
            except ValueError as exc:
                raise ValueError(f"must be IP addresses or CIDRs, comma-separated: {exc}") from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("admins", mode="before")
    @classmethod
    def _admin_list(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        names = frozenset(part.strip() for part in value.split(",") if part.strip())
        bad = sorted(name for name in names if not is_user_scope(name))
        if bad:
            raise ValueError(f"not platform:user_id: {', '.join(bad)}")
        return names

    @field_validator("output_size")
    @classmethod
    def _size_bucket(cls, value: int) -> int:
        if value not in (512, 768, 1024):
            raise ValueError("must be 512, 768 or 1024")
        return value

    @field_validator("discord_shard_ids", mode="before")
    @classmethod
    def _shard_list(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",")]
            if not all(p.isdigit() for p in parts):
                raise ValueError("must be shard numbers separated by commas, e.g. 0,1")
            return tuple(int(p) for p in parts)
        return value

    @field_validator("discord_shard_ids")
    @classmethod
    def _shards_fit(cls, value: tuple[int, ...] | None, info: ValidationInfo) -> object:
        if value is None:
            return None
        if "discord_shard_count" not in info.data:
            return value  # the count itself is malformed: that error names it
        count = info.data["discord_shard_count"]
        if count is None:
            raise ValueError("needs AVATARBOT_DISCORD_SHARD_COUNT (the total across processes)")
        if not value or len(set(value)) != len(value):
            raise ValueError("must list each shard once")
        if not all(0 <= shard < count for shard in value):
            raise ValueError(
                f"shards are numbered 0 to {count - 1} (AVATARBOT_DISCORD_SHARD_COUNT)"
            )
        return tuple(sorted(value))

    @field_validator("liveness_ttl_s")
    @classmethod
    def _ttl_outlasts_refreshes(cls, value: float, info: ValidationInfo) -> float:
        refresh = info.data.get("liveness_refresh_s")
        if refresh is not None and value < 2 * refresh:
            raise ValueError(
                "must be at least twice AVATARBOT_LIVENESS_REFRESH_S (a record must survive "
                "a late renewal)"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


class _ExplicitSettings(Settings):
    """Settings read only from the mapping given (no process environment, no .env)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def load_settings(
    environ: Mapping[str, str] | None = None, *, env_file: str | Path | None = ".env"
) -> Settings:
    """Read settings once. `environ` replaces the process environment (tests pass their own).

    Raises ConfigError naming every bad variable.
    """
    try:
        if environ is None:
            return Settings(_env_file=env_file)  # type: ignore[call-arg]  # pydantic-settings init kwarg
        return _ExplicitSettings.model_validate({k: v for k, v in environ.items() if v != ""})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err["loc"][0] if err["loc"] else "?"
            name = _variable_name(str(loc))
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError("bad configuration: " + "; ".join(problems)) from None


def _variable_name(field_or_alias: str) -> str:
    field = Settings.model_fields.get(field_or_alias)
    if field is None:
        return field_or_alias.upper()
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        first = alias.choices[0]
        return str(first)
    return field_or_alias.upper()
