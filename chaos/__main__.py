"""``python -m chaos [--short]``: the platform under faults on its own Kafka and PostgreSQL (``make chaos``).

Exit code 0 when every invariant holds, 1 when one is broken (the report says which), 2 on bad options,
3 when the system did not settle within the settle budget (or a phase of the checks ran out of its
budget) and every check that could be judged holds.

Every option can also be given as a ``CHAOS_<OPTION>`` environment variable (``CHAOS_EVENTS=20000
CHAOS_RATE=30 make chaos``); the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from chaos.run import SHORT, Options, main


def parse(argv: list[str] | None) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help=f"the suite's short form: {SHORT}")
    parser.add_argument("--events", type=int, help=f"partner events to publish (default {defaults.events:,})")
    parser.add_argument("--seed", type=int, help=f"traffic and fault schedule (default {defaults.seed})")
    parser.add_argument("--rate", type=float, help=f"partner events per second (default {defaults.rate:.0f})")
    parser.add_argument(
        "--partitions", type=int, help=f"partitions per topic (default {defaults.partitions})"
    )
    parser.add_argument(
        "--instances", type=int, help=f"instances of each service (default {defaults.instances})"
    )
    parser.add_argument(
        "--kills-per-service", type=int, help=f"SIGKILLs per service (default {defaults.kills_per_service})"
    )
    parser.add_argument(
        "--broker-restarts", type=int, help=f"Kafka stops and restarts (default {defaults.broker_restarts})"
    )
    parser.add_argument(
        "--postgres-restarts",
        type=int,
        help=f"PostgreSQL stops and restarts (default {defaults.postgres_restarts})",
    )
    parser.add_argument(
        "--poison", type=int, help=f"undecodable records injected (default {defaults.poison})"
    )
    parser.add_argument(
        "--settle-within-s",
        type=float,
        help=f"the settle budget in seconds (default {defaults.settle_within_s:.0f}; docs/chaos.md)",
    )
    parser.add_argument(
        "--checks-within-s",
        type=float,
        help=f"the checks' budget in seconds, topics to rebuild (default {defaults.checks_within_s:.0f})",
    )
    parser.add_argument(
        "--keep-infra", action="store_const", const=True, help="leave the chaos Kafka and PostgreSQL running"
    )
    parser.add_argument(
        "--no-wait-for-recovery",
        dest="wait_for_recovery",
        action="store_const",
        const=False,
        help="inject each fault on schedule, even before the previous one's restarts are ready",
    )
    parser.add_argument(
        "--var-dir", type=Path, help=f"the servers' data, logs and report.json (default {defaults.var_dir})"
    )
    parser.add_argument(
        "--kafka-port", type=int, help=f"broker port, controller +1 (default {defaults.kafka_port})"
    )
    parser.add_argument(
        "--postgres-port", type=int, help=f"PostgreSQL port (default {defaults.postgres_port})"
    )
    args = parser.parse_args(argv)
    options = replace(defaults, **SHORT) if args.short else defaults  # type: ignore[arg-type]
    try:
        options = replace(options, **from_environment(os.environ))
    except ValueError as error:
        parser.error(str(error))
    given = {
        f.name: getattr(args, f.name) for f in fields(Options) if getattr(args, f.name, None) is not None
    }
    options = replace(options, **given)
    options = replace(options, var_dir=options.var_dir.resolve())
    if options.events < 100 or options.rate <= 0 or options.instances < 1:
        parser.error("need at least 100 events, a positive rate and one instance per service")
    if options.settle_within_s < 0 or options.checks_within_s <= 0:
        parser.error("the settle budget may not be negative, the checks' budget must be positive")
    return options


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """``CHAOS_EVENTS=20000`` and the like: options for ``make chaos``, which passes no arguments."""
    found: dict[str, Any] = {}
    for f in fields(Options):
        value = environ.get(f"CHAOS_{f.name.upper()}")
        if value is None or value == "":
            continue
        kind = type(getattr(Options(), f.name))
        if kind is bool:
            found[f.name] = value.lower() in ("1", "true", "yes")
        else:
            try:
                found[f.name] = kind(value)
            except ValueError:
                raise ValueError(f"CHAOS_{f.name.upper()}={value!r} is not a {kind.__name__}") from None
    return found


if __name__ == "__main__":
    # The broker going away is the point: aiokafka's complaints about it would drown the report.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit(130)
