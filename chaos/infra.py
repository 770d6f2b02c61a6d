"""The chaos run's own Kafka and PostgreSQL: a second ``lastline_infra`` stack under var/chaos/ on ports
of its own, started fresh for every run, so faults never touch the servers other people use."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from chaos.fleet import kill_leftovers
from lastline_infra import InfraEndpoints, Layout, kafka, stack
from lastline_infra.kafka import libs_ready
from lastline_infra.layout import REPO_ROOT

CHAOS_DIR = REPO_ROOT / "var" / "chaos"
KAFKA_PORT = 19092
POSTGRES_PORT = 15432
# Variables that would point the stack (or a service) at other servers: never inherited.
FOREIGN_ENV = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")
SERVICE_PREFIXES = ("INTAKE_", "MATCHING_", "NOTIFICATIONS_", "REPORTING_")


def chaos_layout(
    var_dir: Path = CHAOS_DIR, kafka_port: int = KAFKA_PORT, postgres_port: int = POSTGRES_PORT
) -> Layout:
    """The chaos stack's layout; the controller listens on the port after the broker's."""
    return Layout(
        var_dir=var_dir,
        kafka_port=kafka_port,
        kafka_controller_port=kafka_port + 1,
        postgres_port=postgres_port,
    )


def clean_environ() -> dict[str, str]:
    """This process's environment without anything naming other servers or service settings."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in FOREIGN_ENV and not key.startswith(SERVICE_PREFIXES) and not key.startswith("LASTLINE_")
    }


def forget_foreign_servers() -> None:
    """``stack.ensure_up`` reads KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL: the chaos stack must not."""
    for key in FOREIGN_ENV:
        os.environ.pop(key, None)


@dataclass
class ChaosInfra:
    layout: Layout
    endpoints: InfraEndpoints | None = None

    async def fresh(self) -> InfraEndpoints:
        """Stop what an earlier run left, wipe both servers' data and the logs, start and provision."""
        forget_foreign_servers()
        kill_leftovers(self.layout.var_dir / "run")
        await stack.down(self.layout)
        for folder in (self.layout.kafka_data, self.layout.postgres_data, self.layout.var_dir / "log"):
            shutil.rmtree(folder, ignore_errors=True)
        _reuse_kafka_jars(self.layout)
        await _formatted_kafka_storage(self.layout)
        self.endpoints = await stack.ensure_up(self.layout)
        return self.endpoints

    async def stop_kafka(self) -> None:
        await stack.stop_kafka(self.layout)

    async def start_kafka(self) -> None:
        await stack.start_kafka(self.layout)

    async def stop_postgres(self) -> None:
        await stack.stop_postgres(self.layout)

    async def start_postgres(self) -> None:
        await stack.start_postgres(self.layout)

    async def down(self) -> None:
        await stack.down(self.layout)


async def _formatted_kafka_storage(layout: Layout) -> None:
    """Empty, formatted broker storage from a copy kept after the first format: formatting starts a
    JVM of its own, which costs tens of seconds on a busy machine, for every run."""
    template = layout.kafka_dir / f"data.formatted-{layout.kafka_controller_port}"
    if not (template / "meta.properties").exists():
        java = await kafka.check_java()
        await kafka.ensure_kafka_libs(layout)
        for folder in (layout.kafka_data, layout.kafka_logs):
            folder.mkdir(parents=True, exist_ok=True)
        kafka.write_kafka_config(layout)
        await kafka.format_storage(java, layout)
        shutil.rmtree(template, ignore_errors=True)
        shutil.copytree(layout.kafka_data, template)
    else:
        shutil.copytree(template, layout.kafka_data)


def _reuse_kafka_jars(layout: Layout) -> None:
    """Copy the shared stack's broker jars rather than asking Maven again (same pom, same jars)."""
    shared = Layout.default()
    if libs_ready(layout) or not libs_ready(shared) or shared.kafka_libs == layout.kafka_libs:
        return
    shutil.rmtree(layout.kafka_libs, ignore_errors=True)
    layout.kafka_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(shared.kafka_libs, layout.kafka_libs)
