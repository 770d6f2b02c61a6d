"""Alembic, once for every service: each service keeps its own migration scripts for its own schema.

A service's ``migrations/env.py`` is two lines that call :func:`run_env`. Migrations run as the
service's role, with the version table in the service's schema, under an advisory lock so that
several instances starting together migrate once.
"""

from __future__ import annotations

import asyncio
import zlib
from pathlib import Path

from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import MetaData, Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateIndex, CreateTable

from lastline_shared.db import make_engine
from lastline_shared.inbox import inbox_table
from lastline_shared.outbox import outbox_table


def plumbing_metadata() -> MetaData:
    """The tables every service has: outbox and inbox."""
    metadata = MetaData()
    outbox_table(metadata)
    inbox_table(metadata)
    return metadata


def alembic_config(script_location: Path, database_url: str, schema: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["database_url"] = database_url
    config.attributes["schema"] = schema
    return config


def upgrade(script_location: Path, database_url: str, schema: str, revision: str = "head") -> None:
    """Blocking: bring ``schema`` up to ``revision``. Call from a thread inside an event loop."""
    command.upgrade(alembic_config(script_location, database_url, schema), revision)


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's ``migrations/env.py``."""
    config = context.config
    database_url: str = config.attributes["database_url"]
    schema: str = config.attributes["schema"]

    def migrate(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=False,
        )
        with context.begin_transaction():
            # Instances starting together queue here; the later ones find nothing left to do.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(schema.encode())}
            )
            context.run_migrations()

    async def main() -> None:
        engine = make_engine(database_url, schema, pool_size=1)
        try:
            async with engine.connect() as conn:
                # Provisioned schemas exist already; a service role may not create schemas.
                exists = await conn.scalar(
                    text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": schema}
                )
                if not exists:
                    await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
                    await conn.commit()
                await conn.run_sync(migrate)
                await conn.commit()
        finally:
            await engine.dispose()

    asyncio.run(main())


def execute_ddl(ddl: str) -> None:
    """Run a migration's snapshot DDL (``;``-separated) in the service's schema.

    Plain SQL does not go through the engine's ``schema_translate_map``, so the search path is set
    for the transaction; asyncpg runs one statement at a time, so the DDL is split.
    """
    op.execute(f'SET LOCAL search_path TO "{context.config.attributes["schema"]}"')
    for statement in ddl.split(";"):
        if statement.strip():
            op.execute(statement)


def drop_tables(*tables: str) -> None:
    """The downgrade of :func:`execute_ddl`: drop ``tables`` (dependents first) in the service's schema."""
    op.execute(f'SET LOCAL search_path TO "{context.config.attributes["schema"]}"')
    for table in tables:
        op.execute(f"DROP TABLE {table}")


def snapshot_ddl(*tables: Table) -> str:
    """The DDL that creates ``tables`` and their indexes, to paste into a new migration."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    parts: list[str] = []
    for table in tables:
        parts.append(
            str(CreateTable(table).compile(dialect=dialect))
            .strip()
            .replace("\t", "    ")
            .replace(", \n", ",\n")
            + ";"
        )
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            parts.append(str(CreateIndex(index).compile(dialect=dialect)).strip() + ";")
    return "\n".join(parts)


def create_plumbing() -> None:
    """Migration step shared by every service's first revision."""
    plumbing_metadata().create_all(context.get_bind())


def drop_plumbing() -> None:
    plumbing_metadata().drop_all(context.get_bind())
