"""``lastline-infra up|down|status|env``: the command behind ``make infra-up`` and friends."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from lastline_infra.errors import InfraError
from lastline_infra.layout import Layout
from lastline_infra.stack import configured_endpoints, down, ensure_up, fetch_kafka_jars, status


async def _up() -> int:
    started = time.monotonic()
    endpoints = await ensure_up()
    for component in await status():
        print(component.line())
    print(f"ready in {time.monotonic() - started:.1f}s; use it with:")
    for key, value in endpoints.env().items():
        print(f"  {key}={value}")
    return 0


async def _down() -> int:
    stopped = await down()
    for name, was_running in stopped.items():
        print(f"{name:<9}{'stopped' if was_running else 'was not running'}")
    return 0


async def _status() -> int:
    components = await status()
    for component in components:
        print(component.line())
    # Like systemctl/pg_ctl: 3 when something is not running, so scripts can test it.
    return 0 if all(component.running for component in components) else 3


async def _deps() -> int:
    await fetch_kafka_jars()
    print(f"Kafka jars ready in {Layout.default().kafka_libs}")
    return 0


async def _env() -> int:
    for key, value in configured_endpoints().env().items():
        print(f"{key}={value}")
    return 0


COMMANDS = {
    "up": (_up, "start Kafka and PostgreSQL (or check the ones in env vars) and provision"),
    "down": (_down, "stop the local Kafka and PostgreSQL"),
    "status": (_status, "show what runs (exit 3 if something is stopped)"),
    "deps": (_deps, "check Java and fetch the Kafka jars with Maven (cached in ~/.m2)"),
    "env": (_env, "print KAFKA_BOOTSTRAP_SERVERS=... and DATABASE_URL=... lines"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lastline-infra", description="Local Kafka and PostgreSQL without Docker."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        commands.add_parser(name, help=help_text)
    args = parser.parse_args(argv)
    handler = COMMANDS[args.command][0]
    try:
        return asyncio.run(handler())
    except InfraError as err:
        print(f"lastline-infra: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
