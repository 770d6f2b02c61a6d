"""Idempotent database setup: the ``lastline`` database, one login role and schema per service.

Runs against the local server and against a server given by DATABASE_URL alike. An advisory lock
serialises concurrent provisioners (several test sessions may start at once).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from lastline_infra.errors import InfraError
from lastline_infra.layout import SERVICES
from lastline_infra.postgres import asyncpg_dsn

# Any constant works; it only has to be the same for every provisioner.
_ADVISORY_LOCK_KEY = 0x1A57_11E0


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def redact_password(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/") or "postgres"


async def ensure_database(admin_url: str) -> None:
    """Create the database named in ``admin_url`` if it does not exist."""
    dsn = asyncpg_dsn(admin_url)
    name = database_name(dsn)
    try:
        conn = await asyncpg.connect(with_database(dsn, "postgres"))
    except asyncpg.InvalidCatalogNameError:
        return  # no maintenance database to connect to: the target has to exist already
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return
        # A concurrent provisioner may have created it since the check.
        with contextlib.suppress(asyncpg.DuplicateDatabaseError):
            await conn.execute(f"CREATE DATABASE {_quote_ident(name)}")
    finally:
        await conn.close()


async def ensure_service_roles(admin_url: str, services: Iterable[str] = SERVICES) -> None:
    """Per service: a LOGIN role (password = its name, dev only) owning a same-named schema."""
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _ADVISORY_LOCK_KEY)
            for service in services:
                role = _quote_ident(service)
                password = _quote_literal(service)
                exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", service)
                verb = "ALTER" if exists else "CREATE"
                await conn.execute(f"{verb} ROLE {role} LOGIN PASSWORD {password}")
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {role} AUTHORIZATION {role}")
                await conn.execute(f"ALTER SCHEMA {role} OWNER TO {role}")
                database = _quote_ident(await conn.fetchval("SELECT current_database()"))
                await conn.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {role}")
    except asyncpg.InsufficientPrivilegeError as err:
        raise InfraError(
            f"cannot create the service roles with the DATABASE_URL user ({err}): use a superuser "
            "or a role with CREATEROLE and CREATE on the database"
        ) from None
    finally:
        await conn.close()


async def provision(admin_url: str, services: Iterable[str] = SERVICES) -> None:
    await ensure_database(admin_url)
    await ensure_service_roles(admin_url, services)
