"""The notifications service as a process, through real Kafka, PostgreSQL and SMTP: killed with SIGKILL
while it sends and restarted, it sends every email, with no duplicate beyond the documented window
(at most one message in flight per email sender).

The process runs under its own service name, so its consumer groups, schema and outbox are its own;
the groups start at the topics' current end (committed here first), so the history other tests left
on the shared topics is not replayed.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient

from lastline_infra import InfraEndpoints
from lastline_infra.platform import ServiceProcess, wait_all_ready
from lastline_shared.contracts.envelope import encode
from lastline_shared.contracts.topics import CASES, MATCHES, REJECTIONS_PATTERN, VOLUNTEERS
from lastline_shared.db import asyncpg_dsn
from lastline_shared.kafka_admin import start_group_at_end
from lastline_shared.relay import make_producer
from tests.integration.test_notifications_delivery import free_port, mailbox, story
from tests.support.catchers import Mailbox

pytestmark = pytest.mark.e2e
__all__ = ["mailbox"]  # fixture

EMAILS = 40
SENDERS = 2


async def start_groups_at_the_end(bootstrap: str, service: str) -> None:
    """The service's consumer groups start at the topics' current end: no replay of older history."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        rejections = [t for t in await admin.list_topics() if re.match(REJECTIONS_PATTERN, t)]
    finally:
        await admin.close()
    groups = {"people": [VOLUNTEERS.name, CASES.name], "matches": [MATCHES.name], "rejections": rejections}
    for name, topics in groups.items():
        await start_group_at_end(bootstrap, f"lastline-{service}.{name}", topics)


@pytest_asyncio.fixture(loop_scope="session")
async def service(infra: InfraEndpoints, mailbox: Mailbox, tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    name = f"notif-e2e-{uuid.uuid4().hex[:8]}"
    await start_groups_at_the_end(infra.kafka_bootstrap, name)
    env = {
        "NOTIFICATIONS_SERVICE_NAME": name,
        "NOTIFICATIONS_DATABASE_URL": infra.database_url,
        "NOTIFICATIONS_HTTP_PORT": str(free_port()),
        "NOTIFICATIONS_SMTP_PORT": str(mailbox.port),
        "NOTIFICATIONS_EMAIL_SENDERS": str(SENDERS),
        "NOTIFICATIONS_DELIVERY_LEASE_S": "2",
        "NOTIFICATIONS_LOG_LEVEL": "INFO",
    }
    process = ServiceProcess.configure("notifications", infra, tmp_path, {**os.environ, **env})
    try:
        yield process
    finally:
        await process.stop(grace_s=10)
        conn = await asyncpg.connect(asyncpg_dsn(infra.database_url))
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()


async def publish(bootstrap: str, events: list[Any]) -> None:
    producer = make_producer(bootstrap, "notifications-e2e")
    await producer.start()
    try:
        for event in events:
            source = "/services/matching" if event.topic == MATCHES.name else "/services/intake"
            record = encode(event, source=source)
            await producer.send(record.topic, record.value, key=record.key, headers=list(record.headers))
        await producer.flush()
    finally:
        await producer.stop()


@pytest.mark.asyncio(loop_scope="session")
async def test_killed_mid_batch_and_restarted_sends_each_email_with_at_most_the_window_duplicated(
    infra: InfraEndpoints, mailbox: Mailbox, service: ServiceProcess
) -> None:
    stories = [story() for _ in range(EMAILS)]
    mailbox.delay_s = 0.05
    service.start()
    await wait_all_ready([service], within_s=90)
    # Contacts and cases first, then the proposals: the service decides and sends as they come.
    await publish(infra.kafka_bootstrap, [e for s in stories for e in (s.attorney, s.case)])
    await publish(infra.kafka_bootstrap, [s.proposal for s in stories])
    addresses = {s.attorney.email for s in stories}

    def received() -> list[str]:
        return [str(m["To"]) for m in mailbox.messages if any(a in str(m["To"]) for a in addresses)]

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    conn = await asyncpg.connect(asyncpg_dsn(infra.database_url))
    try:  # every email decided, some of them sent: kill it while it sends the rest
        while loop.time() < deadline:
            decided = await conn.fetchval(
                f'SELECT count(*) FROM "{service.env["NOTIFICATIONS_SERVICE_NAME"]}".deliveries'
            )
            if decided == EMAILS and len(received()) >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    assert 0 < len(received()) < EMAILS, service.log_tail()  # mid-batch
    assert service.proc is not None
    service.proc.send_signal(signal.SIGKILL)
    service.proc.wait()
    at_kill = len(received())

    service.start()  # it rejoins its consumer groups first (the dead members time out): ~20 s
    await wait_all_ready([service], within_s=90)
    deadline = loop.time() + 60
    while len({a for a in addresses if any(a in r for r in received())}) < EMAILS and loop.time() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(3)  # a lapsed claim would be resent by now (lease 2 s)
    got = received()
    per_address = {a: sum(a in r for r in got) for a in addresses}
    assert min(per_address.values()) == 1, service.log_tail()  # every email arrived
    duplicates = len(got) - EMAILS
    mailbox.delay_s = 0.0
    assert duplicates <= SENDERS, (duplicates, at_kill)  # the documented window, and nothing more
