"""compose.yaml cannot run here (no Docker engine): check it is consistent with the code instead."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from lastline_shared.settings import SERVICE_SETTINGS, env_var_names

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "matching", "notifications", "reporting")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def test_every_service_and_the_infrastructure_is_defined(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {*SERVICES, "kafka", "postgres", "mailcatcher"}
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:")
    assert compose["services"]["postgres"]["image"].startswith("postgres:")


@pytest.mark.parametrize("name", SERVICES)
def test_service_command_is_its_console_script(compose: dict[str, Any], name: str) -> None:
    project = tomllib.loads((ROOT / "services" / name / "pyproject.toml").read_text())
    assert compose["services"][name]["command"] == [*project["project"]["scripts"]]


@pytest.mark.parametrize("name", SERVICES)
def test_service_environment_is_understood_by_its_settings(compose: dict[str, Any], name: str) -> None:
    settings_cls = SERVICE_SETTINGS[name]
    environment: dict[str, str] = compose["services"][name]["environment"]
    unknown = set(environment) - env_var_names(settings_cls)
    assert not unknown, f"{name} would ignore {unknown}"
    # The published port is the one the service listens on, and it listens on every interface.
    port = environment[f"{name.upper()}_HTTP_PORT"]
    assert compose["services"][name]["ports"] == [f"{port}:{port}"]
    assert environment[f"{name.upper()}_HTTP_HOST"] == "0.0.0.0"
    assert int(port) == settings_cls.model_fields["http_port"].default
    url = environment[f"{name.upper()}_DATABASE_URL"]
    assert url.startswith(f"postgresql+asyncpg://{name}:{name}@postgres:5432/")


def test_kafka_runs_kraft_without_auto_created_topics(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_database_init_creates_each_service_role_and_schema(compose: dict[str, Any]) -> None:
    mount = compose["services"]["postgres"]["volumes"][0].split(":")[0]
    sql = (ROOT / mount).resolve().read_text()
    for name in SERVICES:
        assert f"CREATE ROLE {name} LOGIN" in sql
        assert f"CREATE SCHEMA {name} AUTHORIZATION {name}" in sql
