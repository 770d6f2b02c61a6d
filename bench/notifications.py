"""Notifications: deliveries/s to SMTP and to webhooks, and the latency from ``match-made`` to the
email accepted by the SMTP server.

Throughput runs the service's parts in this process on a throwaway schema: deliveries decided by the
consumers' handlers, then sent by the senders (claim, build, send, record, outcome to the outbox)
to an in-process aiosmtpd server and a uvicorn webhook receiver; baselines send the same messages
with no database. Latency runs the real service process through Kafka: ``match-made`` records
published one at a time, timed to the SMTP server's acceptance.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import asyncpg
import httpx
import uvicorn
from aiokafka.admin import AIOKafkaAdminClient
from aiosmtpd.controller import Controller
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import lastline_notifications
from bench.results import Figure, machine
from lastline_infra import InfraEndpoints
from lastline_infra.platform import ServiceProcess, wait_all_ready
from lastline_notifications.consumers import Handlers
from lastline_notifications.deliveries import DeliveryStore, RetryPolicy
from lastline_notifications.inbox import InboxStore
from lastline_notifications.mail import Mailer, Renderer
from lastline_notifications.messages import EmailBuilder, LinkSettings
from lastline_notifications.projections import Projections
from lastline_notifications.senders import Senders
from lastline_notifications.subscriptions import SubscriptionStore
from lastline_notifications.tables import NotificationsTables
from lastline_notifications.webhooks import WebhookSender, body_of, signed_headers
from lastline_shared import migrations
from lastline_shared.contracts.cases import CaseOpened
from lastline_shared.contracts.enums import VolunteerRole
from lastline_shared.contracts.envelope import Envelope, decode, encode
from lastline_shared.contracts.examples import example_events
from lastline_shared.contracts.matches import MatchMade, MatchProposed
from lastline_shared.contracts.profiles import PartnerRef
from lastline_shared.contracts.topics import CASES, MATCHES, REJECTIONS_PATTERN, VOLUNTEERS
from lastline_shared.contracts.volunteers import VolunteerRegistered
from lastline_shared.db import asyncpg_dsn, make_engine, make_session_factory, new_metadata
from lastline_shared.kafka_admin import start_group_at_end
from lastline_shared.outbox import Outbox, outbox_table
from lastline_shared.relay import make_producer
from lastline_shared.settings import NotificationsSettings

EMAILS = int(os.environ.get("BENCH_NOTIFICATIONS_EMAILS", "1000"))
WEBHOOKS = int(os.environ.get("BENCH_NOTIFICATIONS_WEBHOOKS", "1000"))
ENDPOINTS = 4
LATENCY_EVENTS = int(os.environ.get("BENCH_NOTIFICATIONS_LATENCY_EVENTS", "200"))
EXAMPLES = {type(e).__name__: e for e in example_events()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for_port(port: int, within_s: float = 20) -> None:
    deadline = time.monotonic() + within_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return


class Inbox:
    """aiosmtpd handler: when each message was accepted."""

    def __init__(self) -> None:
        self.accepted: dict[str, float] = {}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        match = re.search(rb"X-Lastline-Case: (\S+)", envelope.content)
        self.accepted[match.group(1).decode() if match else uuid.uuid4().hex] = time.time()
        return "250 OK"


def receiver_app() -> Starlette:
    async def hook(request: Request) -> Response:
        await request.body()
        return Response(status_code=204)

    return Starlette(routes=[Route("/{name}", hook, methods=["POST"])])


def events_for(n: int, partner: str) -> tuple[list[Any], list[Any], list[Any]]:
    """Volunteers and cases, their proposals, and their placements."""
    people: list[Any] = []
    proposals: list[Any] = []
    placements: list[Any] = []
    for _ in range(n):
        case_id, volunteer_id = uuid.uuid4(), uuid.uuid4()
        people.append(
            VolunteerRegistered.model_validate(
                {
                    **EXAMPLES["VolunteerRegistered"].model_dump(),
                    "volunteer_id": volunteer_id,
                    "email": f"v-{volunteer_id.hex[:12]}@example.org",
                }
            )
        )
        people.append(
            CaseOpened.model_validate(
                {
                    **EXAMPLES["CaseOpened"].model_dump(),
                    "case_id": case_id,
                    "referrals": (PartnerRef(partner_id=partner, external_id=f"c-{case_id.hex[:10]}"),),
                }
            )
        )
        example = EXAMPLES["MatchProposed"]
        assert isinstance(example, MatchProposed)
        proposals.append(
            example.model_copy(
                update={
                    "case_id": case_id,
                    "volunteer_id": volunteer_id,
                    "proposal_id": uuid.uuid4(),
                    "expires_at": datetime.now(UTC) + timedelta(hours=48),
                }
            )
        )
        placements.append(
            MatchMade(
                case_id=case_id, volunteer_id=volunteer_id, role=VolunteerRole.ATTORNEY, match_id=uuid.uuid4()
            )
        )
    return people, proposals, placements


def envelopes(events: list[Any]) -> list[Envelope]:
    out = []
    for event in events:
        source = "/services/matching" if event.topic == MATCHES.name else "/services/intake"
        record = encode(event, source=source)
        item = decode(record.topic, record.key, list(record.headers), record.value)
        assert isinstance(item, Envelope)
        out.append(item)
    return out


async def throughput(infra: InfraEndpoints) -> tuple[float, ...]:
    """(emails/s, raw SMTP/s, webhooks/s, raw signed POSTs/s, CPU ms per email, CPU ms per webhook,
    CPU ms per event the consumers' handlers apply).

    CPU is this process's (the senders; for webhooks also the uvicorn receiver, which runs here): on
    a shared machine it moves much less with the load than the rates do."""
    # The mail server in a process of its own, as a real one would be (a thread here would compete
    # with the senders for the interpreter).
    smtp_port = free_port()
    smtp = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp_port}", "-c", "aiosmtpd.handlers.Sink"
    )
    await wait_for_port(smtp_port)
    hook_port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(receiver_app(), host="127.0.0.1", port=hook_port, log_config=None, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    schema = f"bench_notif_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(
        migrations.upgrade,
        Path(lastline_notifications.__file__).parent / "migrations",
        infra.database_url,
        schema,
    )
    engine = make_engine(infra.database_url, schema)
    sessions = make_session_factory(engine)
    metadata = new_metadata()
    tables = NotificationsTables(metadata)
    outbox = Outbox(outbox_table(metadata), schema)

    async def emit(session: Any, events: Any) -> int:
        return await outbox.add(session, [encode(e, source="/services/notifications") for e in events])

    store = DeliveryStore(tables, InboxStore(tables, schema), emit, schema=schema, policy=RetryPolicy())
    subscriptions = SubscriptionStore(tables)
    projections = Projections(tables)
    handlers = Handlers(projections, store, subscriptions)
    settings = NotificationsSettings()
    senders = Senders(
        sessions,
        store,
        emails=EmailBuilder(
            projections,
            Renderer(),
            LinkSettings(settings.auth_jwt_secret, "http://m.test", "http://i.test", 72),
            sender="Lastline <noreply@lastline.test>",
        ),
        mailer_factory=lambda: Mailer(host="127.0.0.1", port=smtp_port),
        webhooks=WebhookSender(timeout_s=10),
        subscriptions=subscriptions,
        wakeup=None,  # type: ignore[arg-type]  # the loops are driven here, not woken
    )
    try:
        while not server.started:  # noqa: ASYNC110  (uvicorn offers no event to wait on)
            await asyncio.sleep(0.02)
        partners = [f"bench-{n}" for n in range(ENDPOINTS)]
        async with sessions.begin() as session:
            for n, partner in enumerate(partners):
                await subscriptions.create(
                    session,
                    partner_id=partner,
                    url=f"http://127.0.0.1:{hook_port}/{n}",
                    kinds=["placed"],
                    by="b",
                )
        people, proposals, placements = [], [], []
        for n, partner in enumerate(partners):
            count = max(EMAILS, WEBHOOKS) // ENDPOINTS + (n < max(EMAILS, WEBHOOKS) % ENDPOINTS)
            p, q, m = events_for(count, partner)
            people += p
            proposals += q
            placements += m
        decided = 0
        cpu = time.process_time()
        for batch, handle in (
            (envelopes(people), handlers.on_people),
            (envelopes(proposals[:EMAILS]), handlers.on_matches),
        ):
            decided += len(batch)
            for start in range(0, len(batch), 500):
                async with sessions.begin() as session:
                    await handle(session, batch[start : start + 500])
        handler_cpu_ms = (time.process_time() - cpu) * 1000 / decided

        async def email_sender() -> None:
            mailer = senders.mailer_factory()
            try:
                while await senders.run_batch("smtp", 20, senders.email_sender(mailer)):
                    pass
            finally:
                await mailer.close()

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(email_sender(), email_sender())
        email_rate = EMAILS / (time.perf_counter() - started)
        email_cpu_ms = (time.process_time() - cpu) * 1000 / EMAILS

        # Baseline: the same number of messages over one SMTP connection, no database.
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@b.test", "c@d.test", "bench"
        message.set_content("x" * 1500)
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port)
        await client.connect()
        started = time.perf_counter()
        for _ in range(EMAILS):
            await client.send_message(message)
        raw_email_rate = EMAILS / (time.perf_counter() - started)
        await client.quit()

        placed = envelopes(placements[:WEBHOOKS])
        for start in range(0, len(placed), 500):
            async with sessions.begin() as session:
                await handlers.on_matches(session, placed[start : start + 500])
        async with sessions() as session:
            destinations = await store.due_destinations(session, "webhook")

        async def drain(destination: str) -> None:
            while await senders.run_batch(destination, 10, senders.send_webhook):
                pass

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(drain(d) for d in destinations))
        webhook_rate = WEBHOOKS / (time.perf_counter() - started)
        webhook_cpu_ms = (time.process_time() - cpu) * 1000 / WEBHOOKS

        # Baseline: the same number of signed POSTs, one sender per endpoint, no database.
        async with httpx.AsyncClient() as http:

            async def post(n: int, count: int) -> None:
                body = body_of({"type": "case.placed", "data": {"n": n}})
                for i in range(count):
                    headers = signed_headers("whsec_" + "A" * 44, f"msg_{n}_{i}", body, datetime.now(UTC))
                    (
                        await http.post(f"http://127.0.0.1:{hook_port}/{n}", content=body, headers=headers)
                    ).raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(post(n, WEBHOOKS // ENDPOINTS) for n in range(ENDPOINTS)))
            raw_webhook_rate = (WEBHOOKS // ENDPOINTS * ENDPOINTS) / (time.perf_counter() - started)
        return (
            email_rate,
            raw_email_rate,
            webhook_rate,
            raw_webhook_rate,
            email_cpu_ms,
            webhook_cpu_ms,
            handler_cpu_ms,
        )
    finally:
        await senders.webhooks.close()
        server.should_exit = True
        await serving
        smtp.terminate()
        await smtp.wait()
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


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


async def latency(infra: InfraEndpoints) -> list[float]:
    """Seconds from each ``match-made`` published to its email accepted, one at a time."""

    class Timed(Inbox):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            match = re.search(rb"To: [^\n]*<v-([0-9a-f]{12})@", envelope.content)
            if match and b"placed" in envelope.content:
                self.accepted[match.group(1).decode()] = time.time()
            return "250 OK"

    inbox = Timed()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    name = f"notif-bench-{uuid.uuid4().hex[:8]}"
    await start_groups_at_the_end(infra.kafka_bootstrap, name)
    env = {
        **os.environ,
        "NOTIFICATIONS_SERVICE_NAME": name,
        "NOTIFICATIONS_DATABASE_URL": infra.database_url,
        "NOTIFICATIONS_HTTP_PORT": str(free_port()),
        "NOTIFICATIONS_SMTP_PORT": str(smtp.port),
        "NOTIFICATIONS_LOG_LEVEL": "WARNING",
    }
    process = ServiceProcess.configure("notifications", infra, Path(tempfile.mkdtemp()), env)
    producer = make_producer(infra.kafka_bootstrap, "bench-notifications")
    try:
        process.start()
        await wait_all_ready([process], within_s=120)
        await producer.start()
        people, _, placements = events_for(LATENCY_EVENTS, "bench-latency")
        for event in people:
            record = encode(event, source="/services/intake")
            await producer.send(record.topic, record.value, key=record.key, headers=list(record.headers))
        await producer.flush()
        await asyncio.sleep(2)  # contacts and cases projected
        delays = []
        for made in placements:
            record = encode(made, source="/services/matching")
            sent = time.time()
            await producer.send_and_wait(
                record.topic, record.value, key=record.key, headers=list(record.headers)
            )
            key = made.volunteer_id.hex[:12]
            deadline = time.monotonic() + 10
            while key not in inbox.accepted and time.monotonic() < deadline:  # noqa: ASYNC110  (set in another thread)
                await asyncio.sleep(0.001)
            if key in inbox.accepted:
                delays.append(inbox.accepted[key] - sent)
        return delays
    finally:
        await producer.stop()
        await process.stop(grace_s=15)
        smtp.stop()
        conn = await asyncpg.connect(asyncpg_dsn(infra.database_url))
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()


async def run(infra: InfraEndpoints) -> list[Figure]:
    email_rate, raw_email, webhook_rate, raw_webhook, email_cpu, webhook_cpu, handler_cpu = await throughput(
        infra
    )
    delays = sorted(await latency(infra))
    where = machine()
    figures = [
        Figure(
            "notifications email deliveries",
            email_rate,
            "emails/s",
            "raw aiosmtplib, 1 connection",
            raw_email,
            where,
            f"{EMAILS:,} match-proposed emails (EN), 2 senders, in-process aiosmtpd",
        ),
        Figure(
            "notifications webhook deliveries",
            webhook_rate,
            "deliveries/s",
            "raw signed httpx POSTs",
            raw_webhook,
            where,
            f"{WEBHOOKS:,} signed case.placed deliveries to {ENDPOINTS} endpoints (uvicorn)",
        ),
        Figure(
            "notifications email CPU per delivery",
            email_cpu,
            "ms",
            None,
            None,
            where,
            "the senders' process CPU over the email run above (SMTP server in its own process)",
        ),
        Figure(
            "notifications webhook CPU per delivery",
            webhook_cpu,
            "ms",
            None,
            None,
            where,
            "the senders' process CPU over the webhook run above (receiver in the same process)",
        ),
        Figure(
            "notifications consumers CPU per event",
            handler_cpu,
            "ms",
            None,
            None,
            where,
            f"handlers applying {2 * max(EMAILS, WEBHOOKS):,} volunteer/case events, then {EMAILS:,} "
            "match-proposed, in batches of 500 (one transaction each; no Kafka, no consumer inbox)",
        ),
    ]
    if delays:
        p99 = delays[min(len(delays) - 1, round(0.99 * (len(delays) - 1)))]
        load = f"{len(delays)} of {LATENCY_EVENTS} match-made, one at a time, service process via Kafka"
        figures += [
            Figure(
                "match-made -> email accepted p50",
                statistics.median(delays) * 1000,
                "ms",
                None,
                None,
                where,
                load,
            ),
            Figure("match-made -> email accepted p99", p99 * 1000, "ms", None, None, where, load),
        ]
    return figures


if __name__ == "__main__":
    from bench.results import report
    from lastline_infra import ensure_up

    async def main() -> None:
        report(await run(await ensure_up()))

    asyncio.run(main())
