"""Where the local servers keep their files and which ports they use.

Everything lives under the repository's ignored ``var/`` folder (``LASTLINE_VAR_DIR`` overrides it),
so a fresh clone starts clean and ``rm -rf var`` resets both servers. ``LASTLINE_KAFKA_PORT``,
``LASTLINE_KAFKA_CONTROLLER_PORT`` and ``LASTLINE_POSTGRES_PORT`` move the servers off the default
ports (a second checkout, or a system PostgreSQL already on 5432).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# infra/lastline_infra/layout.py -> the repository root (the workspace installs members editable).
REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_KAFKA_PORT = 9092
DEFAULT_KAFKA_CONTROLLER_PORT = 9093
DEFAULT_POSTGRES_PORT = 5432
DATABASE_NAME = "lastline"
SUPERUSER = "postgres"
# One role and one schema per service; the role's password is its name (development only).
SERVICES = ("intake", "matching", "notifications", "reporting")


def _port(env_var: str, default: int) -> int:
    raw = os.environ.get(env_var)
    return int(raw) if raw else default


@dataclass(frozen=True)
class Layout:
    """Paths and ports of the locally managed Kafka and PostgreSQL."""

    var_dir: Path
    host: str = DEFAULT_HOST
    kafka_port: int = DEFAULT_KAFKA_PORT
    kafka_controller_port: int = DEFAULT_KAFKA_CONTROLLER_PORT
    postgres_port: int = DEFAULT_POSTGRES_PORT

    @classmethod
    def default(cls) -> Layout:
        var_dir = Path(os.environ.get("LASTLINE_VAR_DIR") or REPO_ROOT / "var")
        return cls(
            var_dir=var_dir.resolve(),
            kafka_port=_port("LASTLINE_KAFKA_PORT", DEFAULT_KAFKA_PORT),
            kafka_controller_port=_port("LASTLINE_KAFKA_CONTROLLER_PORT", DEFAULT_KAFKA_CONTROLLER_PORT),
            postgres_port=_port("LASTLINE_POSTGRES_PORT", DEFAULT_POSTGRES_PORT),
        )

    @property
    def lock_file(self) -> Path:
        return self.var_dir / "infra.lock"

    # --- Kafka -------------------------------------------------------------------------------
    @property
    def kafka_dir(self) -> Path:
        return self.var_dir / "kafka"

    @property
    def kafka_libs(self) -> Path:
        return self.kafka_dir / "libs"

    @property
    def kafka_data(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def kafka_logs(self) -> Path:
        return self.kafka_dir / "logs"

    @property
    def kafka_properties(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def kafka_log4j_config(self) -> Path:
        return self.kafka_dir / "log4j2.xml"

    @property
    def kafka_cluster_id_file(self) -> Path:
        return self.kafka_dir / "cluster-id"

    @property
    def kafka_pid_file(self) -> Path:
        return self.kafka_dir / "kafka.pid"

    @property
    def kafka_stdout(self) -> Path:
        return self.kafka_logs / "kafka.out"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    # --- PostgreSQL --------------------------------------------------------------------------
    @property
    def postgres_dir(self) -> Path:
        return self.var_dir / "postgres"

    @property
    def postgres_data(self) -> Path:
        return self.postgres_dir / "data"

    @property
    def postgres_log(self) -> Path:
        return self.postgres_dir / "log" / "postgres.log"

    @property
    def database_url(self) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@{self.host}:{self.postgres_port}/{DATABASE_NAME}"
