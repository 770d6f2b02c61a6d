"""Service settings from environment variables, one prefix per service with a global fallback.

Every field is read from ``<PREFIX><FIELD>`` first (``INTAKE_DATABASE_URL``), then from the
unprefixed global name (``DATABASE_URL``), then the default. So one shared
``KAFKA_BOOTSTRAP_SERVERS`` or ``AUTH_JWT_SECRET`` serves every service, and a single service can
still be pointed elsewhere. A few fields describe one service's identity (name, schema, port) and
have no global fallback: an exported ``HTTP_PORT`` must not put four services on one port.

The fallback is a second pydantic-settings environment source without prefix, placed after the
prefixed one (see ``ServiceSettings.settings_customise_sources``); names are case-insensitive.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

# Deliberately public: anyone can sign tokens with it, so services warn loudly when it is in use.
DEV_JWT_SECRET = "lastline-dev-secret-do-not-use-in-production"  # noqa: S105

# Fields that only make sense per service: never read from the unprefixed global name.
SERVICE_LOCAL_FIELDS = frozenset({"service_name", "db_schema", "http_port"})

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Port = Annotated[int, Field(ge=0, le=65535)]


def _default_database_url(data: dict[str, Any]) -> str:
    service = data["service_name"]
    return f"postgresql+asyncpg://{service}:{service}@127.0.0.1:5432/lastline"


def _default_db_schema(data: dict[str, Any]) -> str:
    return str(data["service_name"])


class _GlobalFallbackEnvSource(EnvSettingsSource):
    """Reads the unprefixed global env vars, except for the service-local fields."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, env_prefix="")

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in SERVICE_LOCAL_FIELDS:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class ServiceSettings(BaseSettings):
    """What every service reads; subclasses set ``env_prefix``, ``service_name``, ``http_port``."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", validate_default=True)

    service_name: str
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # How often clients refresh topic metadata: a pattern subscription (intake's partner topics)
    # sees a new partner's topic within this time.
    kafka_metadata_max_age_ms: int = Field(default=30_000, ge=1000)
    # Per-service role and password (= service name in dev); the schema is the service's own.
    database_url: str = Field(default_factory=_default_database_url)
    db_schema: str = Field(default_factory=_default_db_schema)

    http_host: str = "127.0.0.1"
    http_port: Port = 8000
    http_max_body_bytes: int = Field(default=1024 * 1024, ge=0)

    log_level: LogLevel = "INFO"
    # None: JSON lines when stderr is not a terminal, human-readable console output otherwise.
    log_json: bool | None = None

    # HS256 secret for staff tokens and signed links; ignored for staff tokens when auth_jwks_url
    # is set (tokens then come from an OIDC provider, verified with its published keys).
    auth_jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    auth_jwt_issuer: str = "lastline"
    auth_jwt_audience: str = "lastline"
    auth_jwks_url: str | None = None

    consumer_max_records: int = Field(default=500, ge=1)
    consumer_max_retries: int = Field(default=5, ge=0)
    consumer_retry_backoff_s: float = Field(default=0.5, ge=0)

    relay_batch_size: int = Field(default=500, ge=1)
    relay_poll_interval_s: float = Field(default=0.2, gt=0)

    topic_partitions: int = Field(default=12, ge=1)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("auth_jwt_secret")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr) -> SecretStr:
        # RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (32 bytes).
        if len(value.get_secret_value().encode()) < 32:
            raise ValueError("auth_jwt_secret must be at least 32 bytes")
        return value

    @property
    def uses_dev_jwt_secret(self) -> bool:
        return self.auth_jwt_secret.get_secret_value() == DEV_JWT_SECRET

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: explicit arguments, then PREFIX_NAME, then NAME.
        return (
            init_settings,
            env_settings,
            _GlobalFallbackEnvSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )


# Public development keys for client PII (like DEV_JWT_SECRET): intake warns when they are in use.
DEV_PII_KEY = "+zgqjBvhQhVS2PaTEcQSUl76YhXdB2CBNeK/bj4ZPt4="
DEV_PII_INDEX_KEY = "R2IQxd5n2/CiqVjCvbhMFeMugcZQH+LWKEeUSF/qOeM="


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_")
    service_name: str = "intake"
    http_port: Port = 8001

    # AES-256-GCM keys for client PII at rest, {key id: base64 key} as JSON; new data uses the
    # active key, every listed key still decrypts (rotation: add a key, make it active, re-encrypt).
    pii_keys: dict[str, SecretStr] = Field(default_factory=lambda: {"dev": SecretStr(DEV_PII_KEY)})
    pii_active_key_id: str = "dev"
    # HMAC key of the blind index that finds a client's A-number without decrypting anything.
    pii_index_key: SecretStr = SecretStr(DEV_PII_INDEX_KEY)
    # Client PII of a closed case is erased this long after it closed.
    pii_retention_days: int = Field(default=365, ge=0)
    # "Today" for date rules (a hearing in the past) is the network's day, not UTC's.
    network_timezone: str = "America/New_York"
    # How long a volunteer's link to a case packet stays valid.
    packet_link_ttl_hours: int = Field(default=72, ge=1)

    @property
    def uses_dev_pii_keys(self) -> bool:
        keys = {key.get_secret_value() for key in self.pii_keys.values()}
        return DEV_PII_KEY in keys or self.pii_index_key.get_secret_value() == DEV_PII_INDEX_KEY


class MatchingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MATCHING_")
    service_name: str = "matching"
    http_port: Port = 8002

    # How long a volunteer has to answer a proposal; shrinks to a share of the time left before the
    # hearing (never below the floor).
    proposal_ttl_hours: float = Field(default=48, gt=0)
    proposal_ttl_floor_hours: float = Field(default=2, gt=0)
    proposal_ttl_share: float = Field(default=0.25, gt=0, le=1)
    # Cases this close to their hearing are offered to several volunteers at once (first wins).
    urgent_days: int = Field(default=7, ge=0)
    urgent_fanout: int = Field(default=3, ge=1)
    mentor_capacity: int = Field(default=3, ge=1)
    expiry_check_every_s: float = Field(default=5, gt=0)
    escalation_check_every_s: float = Field(default=60, gt=0)
    # Loops per instance deciding queued cases (each in its own short transaction).
    decision_loops: int = Field(default=2, ge=1)
    # Queued cases a decision loop claims and decides in one transaction.
    decision_batch: int = Field(default=16, ge=1)
    # The periodic global pass re-optimising open proposals (0: off), one instance at a time; the
    # solver's time budget, the most cases it takes (closest hearings first), and the gain below
    # which an open proposal stays where it is.
    reoptimise_every_s: float = Field(default=60, ge=0)
    reoptimise_budget_s: float = Field(default=5, gt=0)
    reoptimise_max_cases: int = Field(default=5_000, ge=1)
    reoptimise_keep_bonus: float = Field(default=0.01, ge=0)
    reoptimise_pricing_days: int = Field(default=90, ge=1)
    reoptimise_max_changes: int = Field(default=200, ge=1)
    pool_rebuild_every_s: float = Field(default=2.0, ge=0)
    """At most this often the in-memory volunteer pools are rebuilt after profiles changed."""
    network_timezone: str = "America/New_York"


class NotificationsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_")
    service_name: str = "notifications"
    http_port: Port = 8003

    # The mail server: "starttls" upgrades a plain connection (port 587), "tls" connects over TLS
    # (port 465), "none" only for a local mail catcher. Username and password when it wants them.
    smtp_host: str = "127.0.0.1"
    smtp_port: Port = 1025
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = Field(default=15, gt=0)
    mail_from: str = "Lastline <noreply@lastline.invalid>"
    # Staff addresses emailed when a case reaches the last escalation level (JSON list).
    oncall_emails: list[str] = Field(default_factory=list)
    # Where people's browsers reach matching (proposal answers) and intake (case packets).
    matching_public_url: str = "http://127.0.0.1:8002"
    intake_public_url: str = "http://127.0.0.1:8001"
    # How long the case-packet link in a placement email stays valid (intake has the same setting).
    packet_link_ttl_hours: int = Field(default=72, ge=1)
    # Concurrent senders over their own SMTP connection; each may resend one message after a crash.
    email_senders: int = Field(default=2, ge=1)
    email_max_attempts: int = Field(default=6, ge=1)
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_timeout_s: float = Field(default=10, gt=0)
    # Webhook endpoints served at once (each endpoint by one sender, so a slow one delays only itself).
    webhook_max_endpoints: int = Field(default=32, ge=1)
    # Retries wait base * 2^(attempt-1), capped, with jitter.
    retry_base_s: float = Field(default=10, gt=0)
    retry_max_s: float = Field(default=3600, gt=0)
    # A message whose volunteer or case has not reached the projections yet waits this long (without
    # using attempts) before it fails.
    hold_unknown_s: float = Field(default=86_400, gt=0)
    # A delivery claimed longer ago than this by a sender that died is sent again.
    delivery_lease_s: float = Field(default=120, gt=0)
    reminder_days: list[int] = Field(default_factory=lambda: [7, 1])
    reminder_check_every_s: float = Field(default=600, gt=0)
    network_timezone: str = "America/New_York"


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REPORTING_")
    service_name: str = "reporting"
    http_port: Port = 8004


SERVICE_SETTINGS: dict[str, type[ServiceSettings]] = {
    "intake": IntakeSettings,
    "matching": MatchingSettings,
    "notifications": NotificationsSettings,
    "reporting": ReportingSettings,
}


def env_var_names(settings_cls: type[ServiceSettings]) -> set[str]:
    """Every env var ``settings_cls`` reads (upper case; matching is case-insensitive)."""
    prefix = str(settings_cls.model_config.get("env_prefix", "")).upper()
    names: set[str] = set()
    for field_name in settings_cls.model_fields:
        names.add(prefix + field_name.upper())
        if field_name not in SERVICE_LOCAL_FIELDS:
            names.add(field_name.upper())
    return names
