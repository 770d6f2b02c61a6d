"""Service settings: per-service prefix, global fallback, defaults, the env vars they accept."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from lastline_shared.settings import (
    DEV_JWT_SECRET,
    SERVICE_LOCAL_FIELDS,
    SERVICE_SETTINGS,
    IntakeSettings,
    MatchingSettings,
    ServiceSettings,
    env_var_names,
)

EXPECTED_PORTS = {"intake": 8001, "matching": 8002, "notifications": 8003, "reporting": 8004}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the variables they set, whatever the machine (or CI) exported."""
    names: set[str] = set()
    for cls in SERVICE_SETTINGS.values():
        names |= env_var_names(cls)
    for name in names:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("service", "port"), sorted(EXPECTED_PORTS.items()))
def test_defaults_per_service(service: str, port: int) -> None:
    settings = SERVICE_SETTINGS[service]()

    assert settings.service_name == service
    assert settings.http_port == port
    assert settings.http_host == "127.0.0.1"
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.database_url == f"postgresql+asyncpg://{service}:{service}@127.0.0.1:5432/lastline"
    assert settings.db_schema == service
    assert settings.topic_partitions == 12
    assert settings.log_json is None
    assert settings.auth_jwks_url is None
    assert settings.uses_dev_jwt_secret


def test_prefixed_variable_wins_over_global(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "global:9092")
    monkeypatch.setenv("INTAKE_KAFKA_BOOTSTRAP_SERVERS", "intake-only:9092")

    assert IntakeSettings().kafka_bootstrap_servers == "intake-only:9092"
    assert MatchingSettings().kafka_bootstrap_servers == "global:9092"


def test_global_fallback_for_shared_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://postgres@db:5432/lastline")
    monkeypatch.setenv("AUTH_JWT_SECRET", "x" * 40)
    monkeypatch.setenv("CONSUMER_MAX_RETRIES", "9")
    monkeypatch.setenv("log_level", "debug")  # names are case-insensitive, values normalised

    settings = MatchingSettings()

    assert settings.database_url == "postgresql+asyncpg://postgres@db:5432/lastline"
    assert settings.auth_jwt_secret.get_secret_value() == "x" * 40
    assert not settings.uses_dev_jwt_secret
    assert settings.consumer_max_retries == 9
    assert settings.log_level == "DEBUG"


def test_service_identity_has_no_global_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PORT", "9999")
    monkeypatch.setenv("DB_SCHEMA", "shared")
    monkeypatch.setenv("SERVICE_NAME", "other")
    monkeypatch.setenv("MATCHING_HTTP_PORT", "18002")

    intake, matching = IntakeSettings(), MatchingSettings()

    assert (intake.service_name, intake.http_port, intake.db_schema) == ("intake", 8001, "intake")
    assert matching.http_port == 18002


def test_explicit_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_HTTP_PORT", "18001")

    assert IntakeSettings(http_port=0).http_port == 0


def test_log_json_and_typed_values_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_LOG_JSON", "false")
    monkeypatch.setenv("RELAY_POLL_INTERVAL_S", "0.05")

    settings = IntakeSettings()

    assert settings.log_json is False
    assert settings.relay_poll_interval_s == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INTAKE_HTTP_PORT", "70000"),
        ("INTAKE_LOG_LEVEL", "LOUD"),
        ("AUTH_JWT_SECRET", "too-short"),
        ("TOPIC_PARTITIONS", "0"),
    ],
)
def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError):
        IntakeSettings()


def test_secret_is_not_shown_in_repr() -> None:
    settings = IntakeSettings()

    assert DEV_JWT_SECRET not in repr(settings)
    assert DEV_JWT_SECRET not in str(settings.model_dump())


def test_env_var_names_lists_prefixed_and_fallback_names() -> None:
    names = env_var_names(IntakeSettings)

    assert {"INTAKE_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"} <= names
    assert {"INTAKE_DATABASE_URL", "DATABASE_URL", "INTAKE_AUTH_JWKS_URL", "AUTH_JWKS_URL"} <= names
    assert "INTAKE_HTTP_PORT" in names
    assert not {"HTTP_PORT", "DB_SCHEMA", "SERVICE_NAME"} & names
    assert not any(n.startswith("MATCHING_") for n in names)
    # every field is reachable through its prefixed name
    assert {f"INTAKE_{f.upper()}" for f in IntakeSettings.model_fields} <= names


# One valid value per field, as an env string and as the parsed value.
SAMPLES: dict[str, tuple[str, object]] = {
    "service_name": ("probe", "probe"),
    "kafka_bootstrap_servers": ("probe:1", "probe:1"),
    "database_url": ("postgresql+asyncpg://p@h/db", "postgresql+asyncpg://p@h/db"),
    "db_schema": ("probe", "probe"),
    "http_host": ("0.0.0.0", "0.0.0.0"),
    "http_port": ("1234", 1234),
    "http_max_body_bytes": ("10", 10),
    "log_level": ("ERROR", "ERROR"),
    "log_json": ("true", True),
    "auth_jwt_secret": ("s" * 32, "s" * 32),
    "auth_jwt_issuer": ("probe-iss", "probe-iss"),
    "auth_jwt_audience": ("probe-aud", "probe-aud"),
    "auth_jwks_url": ("https://idp.invalid/jwks", "https://idp.invalid/jwks"),
    "consumer_max_records": ("7", 7),
    "consumer_max_retries": ("8", 8),
    "consumer_retry_backoff_s": ("0.25", 0.25),
    "relay_batch_size": ("9", 9),
    "relay_poll_interval_s": ("0.5", 0.5),
    "topic_partitions": ("3", 3),
    "kafka_metadata_max_age_ms": ("5000", 5000),
    "pii_keys": ('{"k2": "a2V5"}', {"k2": "a2V5"}),
    "pii_active_key_id": ("k2", "k2"),
    "pii_index_key": ("i" * 32, "i" * 32),
    "pii_retention_days": ("30", 30),
    "network_timezone": ("America/Chicago", "America/Chicago"),
    "packet_link_ttl_hours": ("5", 5),
}


def _plain(value: object) -> object:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def test_every_listed_name_is_really_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """env_var_names must not drift from what the settings sources read."""
    assert set(SAMPLES) == set(IntakeSettings.model_fields), "add the new field to SAMPLES"
    for name in sorted(env_var_names(IntakeSettings)):
        field = name.removeprefix("INTAKE_").lower()
        raw, expected = SAMPLES[field]
        monkeypatch.setenv(name, raw)
        assert _plain(getattr(IntakeSettings(), field)) == expected, name
        monkeypatch.delenv(name)


def test_base_class_reads_only_unprefixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:1")

    settings = ServiceSettings(service_name="lastline")

    assert settings.kafka_bootstrap_servers == "k:1"
    assert settings.db_schema == "lastline"
    assert set(ServiceSettings.model_fields) >= SERVICE_LOCAL_FIELDS
