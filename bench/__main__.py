"""`make bench`: run every benchmark against the local (or given) Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio

from bench import (
    consumer,
    intake,
    matching_flow,
    matching_quality,
    notifications,
    outbox_relay,
    platform,
    reporting,
)
from bench.results import report
from lastline_infra import ensure_up


async def main() -> None:
    infra = await ensure_up()
    figures = await outbox_relay.run(infra)
    figures += await consumer.run(infra)
    figures += await intake.run(infra)
    figures += await matching_flow.run(infra)
    figures += matching_quality.run()
    figures += await reporting.run(infra)
    figures += await notifications.run(infra)
    figures += await platform.run(infra)
    report(figures, replace=True)  # a whole run: figures of benchmarks that no longer exist go


if __name__ == "__main__":
    asyncio.run(main())
