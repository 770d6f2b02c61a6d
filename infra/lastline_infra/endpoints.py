"""Where the servers are, as the services and tests need to know it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from lastline_infra.postgres import asyncpg_dsn


@dataclass(frozen=True)
class InfraEndpoints:
    """Kafka bootstrap servers and the admin database URL (SQLAlchemy form, asyncpg driver).

    ``*_managed`` is True when lastline_infra runs that server here and so can stop and restart
    it (fault tests); False for servers given by environment variables or containers.
    """

    kafka_bootstrap: str
    database_url: str
    kafka_managed: bool = False
    postgres_managed: bool = False

    @property
    def asyncpg_dsn(self) -> str:
        return asyncpg_dsn(self.database_url)

    def service_database_url(self, service: str) -> str:
        """The URL a service connects with: its own role (password = name in development)."""
        parts = urlsplit(self.database_url)
        host = parts.hostname or "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{quote(service)}:{quote(service)}@{host}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def env(self) -> dict[str, str]:
        return {"KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap, "DATABASE_URL": self.database_url}
