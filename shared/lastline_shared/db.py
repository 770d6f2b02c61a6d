"""Database access shared by every service: one async engine per service, bound to its own schema.

Tables are declared without a schema; the engine maps them onto the service's schema with SQLAlchemy's
``schema_translate_map``, so the same table definitions (outbox, inbox, ...) serve every service and tests
can run against throwaway schemas.
"""

from __future__ import annotations

from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# Constraint names are stable across services and migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """A MetaData for a service's tables (schema-less: the engine maps them onto the service schema)."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(database_url: str, schema: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine whose schema-less tables live in ``schema``."""
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": f"lastline-{schema}"}},
    )
    return engine.execution_options(schema_translate_map={None: schema})


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def asyncpg_dsn(database_url: str) -> str:
    """The plain ``postgresql://`` DSN asyncpg accepts, from a SQLAlchemy URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def ensure_schema(engine: AsyncEngine, schema: str) -> None:
    """Create the schema if missing (dev and tests; in production the schema is provisioned)."""
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))


async def ping(engine: AsyncEngine) -> None:
    """Raises unless the database answers."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
