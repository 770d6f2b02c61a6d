"""Run in a child process by the crash tests: publish a batch, then die before committing."""

from __future__ import annotations

import os
import signal

from lastline_shared.db import make_engine, new_metadata
from lastline_shared.outbox import Outbox, outbox_table
from lastline_shared.relay import OutboxRelay, make_producer


async def relay_then_die(database_url: str, schema: str, bootstrap: str) -> None:
    engine = make_engine(database_url, schema)
    relay = OutboxRelay(
        engine,
        Outbox(outbox_table(new_metadata()), schema),
        lambda: make_producer(bootstrap, "crashing-relay"),
        database_url=database_url,
        service="test",
    )
    # Kafka has acknowledged every record; the DELETE and COMMIT have not happened yet.
    relay.after_publish = lambda: os.kill(os.getpid(), signal.SIGKILL)
    await relay.publish_pending()
