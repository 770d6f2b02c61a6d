"""Notifications on the real database, a real SMTP server (aiosmtpd) and a real HTTP webhook receiver.

The consumers' handlers are fed envelopes decoded from ``encode``d records; the senders run their
batches against the servers started here. Covers: what each trigger sends, a redelivered event sending
nothing twice, matches events held until their case arrives, webhook retries ending in exactly one
verifiable signed delivery, a dead endpoint not delaying email, the crash window, no client PII.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

import lastline_notifications
from lastline_notifications.consumers import Handlers
from lastline_notifications.deliveries import DeliveryStore, RetryPolicy, deliveries_channel
from lastline_notifications.inbox import InboxStore
from lastline_notifications.mail import Mailer, Renderer
from lastline_notifications.messages import EmailBuilder, LinkSettings
from lastline_notifications.projections import Projections
from lastline_notifications.senders import Senders
from lastline_notifications.subscriptions import SubscriptionStore
from lastline_notifications.tables import NotificationsTables
from lastline_notifications.webhooks import WebhookSender
from lastline_shared import migrations
from lastline_shared.contracts.base import Event
from lastline_shared.contracts.cases import CaseClosed, CaseOpened
from lastline_shared.contracts.enums import CaseOutcome, EscalationLevel, VolunteerRole
from lastline_shared.contracts.envelope import Envelope, decode, encode
from lastline_shared.contracts.examples import example_events, example_submissions
from lastline_shared.contracts.matches import (
    CaseEscalated,
    MatchMade,
    MatchProposed,
    MentorAssigned,
)
from lastline_shared.contracts.profiles import PartnerRef
from lastline_shared.contracts.rejections import SubmissionRejected
from lastline_shared.contracts.volunteers import VolunteerRegistered
from lastline_shared.db import asyncpg_dsn, make_engine, make_session_factory, new_metadata
from lastline_shared.logging import configure_logging
from lastline_shared.outbox import Outbox, outbox_table
from lastline_shared.packet_links import verify_packet_link
from lastline_shared.proposal_links import verify_proposal_link
from lastline_shared.settings import NotificationsSettings
from lastline_shared.wakeup import Wakeup
from tests.support.catchers import Mailbox, Receiver, smtp_catcher, webhook_receiver
from tests.support.db import outbox_envelopes

pytestmark = pytest.mark.integration

MIGRATIONS = Path(lastline_notifications.__file__).parent / "migrations"
SETTINGS = NotificationsSettings()
SOURCES = {"volunteers": "/services/intake", "cases": "/services/intake", "matches": "/services/matching"}
LINKS = LinkSettings(
    auth_jwt_secret=SETTINGS.auth_jwt_secret,
    matching_public_url="http://matching.test",
    intake_public_url="http://intake.test",
    packet_link_ttl_hours=72,
)
EXAMPLES = {type(e).__name__: e for e in example_events()}
# The example client's PII, as a partner submitted it to intake: must never reach an email or log.
CLIENT = example_submissions()[3].client  # type: ignore[attr-defined]
CLIENT_PII = (CLIENT.given_name, CLIENT.family_name, CLIENT.a_number, CLIENT.date_of_birth.isoformat())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the servers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with smtp_catcher(free_port()) as box:
        yield box


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver(free_port()) as found:
        yield found


# -- the service's parts on a throwaway schema --------------------------------------------------


@dataclass
class Notifications:
    schema: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    tables: NotificationsTables
    outbox: Outbox
    store: DeliveryStore
    inbox: InboxStore
    subscriptions: SubscriptionStore
    handlers: Handlers
    senders: Senders

    async def feed(self, *events: Event, envelopes: list[Envelope] | None = None) -> list[Envelope]:
        """Apply events as the consumers would, one transaction per event."""
        fed = envelopes or [envelope_of(e) for e in events]
        for envelope in fed:
            async with self.sessions.begin() as session:
                if envelope.topic in ("volunteers", "cases"):
                    await self.handlers.on_people(session, [envelope])
                elif envelope.topic == "matches":
                    await self.handlers.on_matches(session, [envelope])
                else:
                    await self.handlers.on_rejections(session, [envelope])
        return fed

    async def send_email(self) -> int:
        """Send every due email (what the email sender loops do)."""
        sent = 0
        mailer = self.senders.mailer_factory()
        try:
            while claimed := await self.senders.run_batch("smtp", 20, self.senders.email_sender(mailer)):
                sent += claimed
        finally:
            await mailer.close()
        return sent

    async def deliveries(self, **where: Any) -> list[dict[str, Any]]:
        d = self.tables.deliveries
        stmt = select(d).order_by(d.c.created_at)
        for key, value in where.items():
            stmt = stmt.where(d.c[key] == value)
        async with self.sessions() as session:
            return [dict(r) for r in (await session.execute(stmt)).mappings()]

    async def published(self, event_type: str) -> list[Envelope]:
        return [e for e in await outbox_envelopes(self.sessions, self.outbox) if e.type == event_type]


def envelope_of(event: Event, event_id: uuid.UUID | None = None) -> Envelope:
    record = encode(event, source=SOURCES.get(event.topic, "/services/intake"), event_id=event_id)
    decoded = decode(record.topic, record.key, list(record.headers), record.value)
    assert isinstance(decoded, Envelope), decoded
    return decoded


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def nf(infra: Any, mailbox: Mailbox) -> AsyncIterator[Notifications]:
    schema = f"t_notif_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(migrations.upgrade, MIGRATIONS, infra.database_url, schema)
    engine = make_engine(infra.database_url, schema)
    sessions = make_session_factory(engine)
    metadata = new_metadata()
    tables = NotificationsTables(metadata)
    outbox = Outbox(outbox_table(metadata), schema)

    async def emit(session: AsyncSession, events: Any) -> int:
        return await outbox.add(session, [encode(e, source="/services/notifications") for e in events])

    inbox = InboxStore(tables, schema)
    policy = RetryPolicy(base_s=0.05, max_s=0.2, max_attempts={"email": 3, "webhook": 6})
    store = DeliveryStore(tables, inbox, emit, schema=schema, policy=policy)
    subscriptions = SubscriptionStore(tables)
    projections = Projections(tables)
    handlers = Handlers(projections, store, subscriptions, oncall_emails=["oncall@campaign.example"])
    senders = Senders(
        sessions,
        store,
        emails=EmailBuilder(projections, Renderer(), LINKS, sender="Lastline <noreply@lastline.test>"),
        mailer_factory=lambda: Mailer(host="127.0.0.1", port=mailbox.port),
        webhooks=WebhookSender(timeout_s=0.5),
        subscriptions=subscriptions,
        wakeup=Wakeup(asyncpg_dsn(infra.database_url), deliveries_channel(schema), poll_interval_s=0.2),
        lease_s=5.0,
    )
    try:
        yield Notifications(
            schema, engine, sessions, tables, outbox, store, inbox, subscriptions, handlers, senders
        )
    finally:
        await senders.webhooks.close()
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


# -- a story per test: fresh ids, so tests share the schema without seeing each other ------------


@dataclass
class Story:
    partner: str
    attorney: VolunteerRegistered
    mentor: VolunteerRegistered
    case: CaseOpened
    proposal: MatchProposed
    made: MatchMade


def story(attorney_languages: tuple[str, ...] = ("en", "es"), partner: str | None = None) -> Story:
    tag = uuid.uuid4().hex[:8]
    partner = partner or f"clinic-{tag}"
    case_id, attorney_id, mentor_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    attorney = VolunteerRegistered.model_validate(
        {
            **EXAMPLES["VolunteerRegistered"].model_dump(),
            "volunteer_id": attorney_id,
            "email": f"attorney-{tag}@example.org",
            "languages": attorney_languages,
        }
    )
    mentor = VolunteerRegistered.model_validate(
        {
            **EXAMPLES["VolunteerUpdated"].model_dump(),
            "volunteer_id": mentor_id,
            "email": f"mentor-{tag}@example.org",
        }
    )
    case = CaseOpened.model_validate(
        {
            **EXAMPLES["CaseOpened"].model_dump(),
            "case_id": case_id,
            "referrals": (PartnerRef(partner_id=partner, external_id=f"case-{tag}"),),
        }
    )
    example = EXAMPLES["MatchProposed"]
    assert isinstance(example, MatchProposed)
    proposal = example.model_copy(
        update={
            "case_id": case_id,
            "volunteer_id": attorney_id,
            "proposal_id": uuid.uuid4(),
            "expires_at": datetime.now(UTC) + timedelta(hours=48),
        }
    )
    made = MatchMade(
        case_id=case_id,
        volunteer_id=attorney_id,
        role=VolunteerRole.ATTORNEY,
        match_id=uuid.uuid4(),
        proposal_id=proposal.proposal_id,
    )
    return Story(partner, attorney, mentor, case, proposal, made)


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def data(envelope: Envelope) -> Any:
    """An envelope's event, for reading fields of whichever model it is."""
    return envelope.data


def assert_no_client_pii(*texts: str) -> None:
    for value in CLIENT_PII:
        for content in texts:
            assert value not in content


# -- tests ---------------------------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="session")
async def test_proposal_email_has_case_summary_reasons_and_signed_links(
    nf: Notifications, mailbox: Mailbox
) -> None:
    s = story()
    await nf.feed(s.attorney, s.case, s.proposal)
    assert await nf.send_email() == 1
    [message] = mailbox.to(s.attorney.email)
    body, html = text_of(message), html_of(message)
    assert message["Subject"] == "A case for you: asylum at Stewart Detention Center"
    assert "Stewart Detention Center, Lumpkin, GA" in body
    assert "Mam, Spanish" in body
    assert "you speak the client's language" in body  # a reason it fits
    assert "2026-03-16" in body  # the hearing
    for answer in ("accept", "decline"):
        [url] = [line for line in body.splitlines() if line.startswith("http://matching.test/")][
            ("accept", "decline").index(answer) : ("accept", "decline").index(answer) + 1
        ]
        assert url.endswith(f"/{answer}")
        token = url.split("/v1/proposals/")[1].rsplit("/", 1)[0]
        assert verify_proposal_link(token, secret=SETTINGS.auth_jwt_secret) == (
            s.proposal.proposal_id,
            s.attorney.volunteer_id,
        )
        assert url in html
    assert message["X-Lastline-Notification"]
    assert message["Content-Language"] == "en"
    assert_no_client_pii(message.as_string())
    [sent] = await nf.published("notification-sent")
    [decided] = await nf.deliveries(template="match_proposed", recipient_id=str(s.attorney.volunteer_id))
    assert (data(sent).template, str(data(sent).caused_by)) == ("match_proposed", decided["source_event_id"])
    assert s.attorney.email not in sent.data.model_dump_json()  # never an address on the topic


@pytest.mark.asyncio(loop_scope="session")
async def test_redelivered_events_send_nothing_twice(nf: Notifications, mailbox: Mailbox) -> None:
    s = story()
    fed = await nf.feed(s.attorney, s.mentor, s.case, s.proposal, s.made)
    await nf.feed(envelopes=fed)  # every event again, same ids (the inbox aside)
    mentor = MentorAssigned(
        case_id=s.case.case_id,
        match_id=s.made.match_id,
        mentor_id=s.mentor.volunteer_id,
        mentee_id=s.attorney.volunteer_id,
    )
    assigned = envelope_of(mentor)
    await nf.feed(envelopes=[assigned, assigned])
    await nf.send_email()
    await nf.feed(envelopes=[fed[-1], assigned])  # and once more after they were sent
    await nf.send_email()
    subjects = sorted(m["Subject"] for m in mailbox.to(s.attorney.email))
    assert subjects == [
        "A case for you: asylum at Stewart Detention Center",
        "You are placed on a case at Stewart Detention Center",
        "Your mentor for the case at Stewart Detention Center",
    ]
    [to_mentor] = mailbox.to(s.mentor.email)  # the mentor prefers Spanish
    assert to_mentor["Subject"].startswith("Será mentor/a de Dana Whitfield")
    assert s.attorney.email in text_of(to_mentor)
    [placed] = [m for m in mailbox.to(s.attorney.email) if "placed" in m["Subject"]]
    packet = next(line for line in text_of(placed).splitlines() if line.startswith("http://intake.test/"))
    link = verify_packet_link(packet.rsplit("/", 1)[1], secret=SETTINGS.auth_jwt_secret)
    assert (link.case_id, link.volunteer_id, link.match_id) == (
        s.case.case_id,
        s.attorney.volunteer_id,
        s.made.match_id,
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_matches_event_before_its_case_is_held_until_the_case_arrives(
    nf: Notifications, mailbox: Mailbox
) -> None:
    s = story(attorney_languages=("es",))
    await nf.feed(s.attorney, s.proposal)
    assert await nf.deliveries(case_id=s.case.case_id) == []
    await nf.feed(s.case)
    [delivery] = await nf.deliveries(case_id=s.case.case_id)
    assert delivery["template"] == "match_proposed"
    await nf.send_email()
    [message] = mailbox.to(s.attorney.email)
    assert message["Subject"] == "Un caso para usted: asilo en Stewart Detention Center"
    assert message["Content-Language"] == "es"
    assert "Idiomas del cliente: Mam, Español" in text_of(message)


@pytest.mark.asyncio(loop_scope="session")
async def test_email_to_a_volunteer_not_known_yet_waits_without_using_attempts(
    nf: Notifications, mailbox: Mailbox
) -> None:
    s = story()
    await nf.feed(s.case, s.proposal)  # the volunteer's registration is late (another consumer)
    d = nf.tables.deliveries
    for _ in range(5):  # more looks than the 3 attempts allowed: none of them counts
        async with nf.sessions.begin() as session:
            await session.execute(
                d.update().where(d.c.case_id == s.case.case_id).values(next_attempt_at=datetime.now(UTC))
            )
        await nf.send_email()
        [held] = await nf.deliveries(case_id=s.case.case_id)
        assert (held["status"], held["attempts"]) == ("pending", 0), held
        assert held["last_error"] == "volunteer contact not known yet"
        assert held["next_attempt_at"] > datetime.now(UTC)
    assert mailbox.to(s.attorney.email) == []

    await nf.feed(s.attorney)
    async with nf.sessions.begin() as session:
        await session.execute(
            d.update().where(d.c.case_id == s.case.case_id).values(next_attempt_at=datetime.now(UTC))
        )
    assert await nf.send_email() == 1
    [sent] = await nf.deliveries(case_id=s.case.case_id)
    assert (sent["status"], sent["attempts"]) == ("sent", 1)
    [message] = mailbox.to(s.attorney.email)
    assert message["Subject"].startswith("A case for you")


@pytest.mark.asyncio(loop_scope="session")
async def test_webhook_failing_three_times_gets_one_verifiable_signed_delivery(
    nf: Notifications, receiver: Receiver
) -> None:
    s = story()
    async with nf.sessions.begin() as session:
        row, secret = await nf.subscriptions.create(
            session, partner_id=s.partner, url=receiver.url("flaky"), kinds=["placed"], by="admin"
        )
    await nf.feed(s.attorney, s.case, s.made)
    [delivery] = await nf.deliveries(channel="webhook", case_id=s.case.case_id)
    destination = delivery["destination"]
    for _ in range(50):
        await nf.senders.run_batch(destination, 10, nf.senders.send_webhook)
        [delivery] = await nf.deliveries(notification_id=delivery["notification_id"])
        if delivery["status"] in ("sent", "failed"):
            break
        await asyncio.sleep(0.1)
    assert (delivery["status"], delivery["attempts"]) == ("sent", 4)
    assert receiver.attempts["flaky"] == 4
    [(headers, body)] = receiver.requests["flaky"]
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "case.placed"
    assert payload["data"]["external_id"] == s.case.referrals[0].external_id
    assert payload["data"]["match_id"] == str(s.made.match_id)
    assert headers["webhook-id"] == str(delivery["notification_id"])
    tampered = body.replace(b"case.placed", b"case.closed")
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(tampered, headers)
    [sent] = [
        e
        for e in await nf.published("notification-sent")
        if data(e).notification_id == delivery["notification_id"]
    ]
    assert (data(sent).channel, data(sent).attempt, data(sent).recipient_id) == ("webhook", 4, s.partner)
    assert not [
        e
        for e in await nf.published("notification-failed")
        if data(e).notification_id == delivery["notification_id"]
    ]
    assert row["subscription_id"]
    assert "secret" not in row


@pytest.mark.asyncio(loop_scope="session")
async def test_dead_endpoint_fails_after_retries_never_delays_email_and_replays(
    nf: Notifications, mailbox: Mailbox, receiver: Receiver
) -> None:
    s = story()
    async with nf.sessions.begin() as session:
        await nf.subscriptions.create(
            session, partner_id=s.partner, url=receiver.url("slow"), kinds=["placed"], by="admin"
        )
    await nf.feed(s.attorney, s.case, s.made)
    [hook] = await nf.deliveries(channel="webhook", case_id=s.case.case_id)
    stop = asyncio.Event()

    async def hammer() -> None:  # the endpoint's own queue, as its drain task would
        while not stop.is_set():
            await nf.senders.run_batch(hook["destination"], 10, nf.senders.send_webhook)
            await asyncio.sleep(0.05)

    slow = asyncio.create_task(hammer())
    try:
        started = asyncio.get_running_loop().time()
        await nf.send_email()
        assert asyncio.get_running_loop().time() - started < 0.5  # the 3 s endpoint is not in the way
        assert len(mailbox.to(s.attorney.email)) == 1
        for _ in range(100):
            [hook] = await nf.deliveries(notification_id=hook["notification_id"])
            if hook["status"] == "failed":
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await slow
    assert (hook["status"], hook["attempts"], hook["failure"]) == ("failed", 6, "timeout")
    [failed] = [
        e
        for e in await nf.published("notification-failed")
        if data(e).notification_id == hook["notification_id"]
    ]
    assert data(failed).will_retry is False
    async with nf.sessions() as session:
        items = await nf.inbox.listing(session, kind="delivery_failed", partner=s.partner)
    assert len(items) == 1
    assert "timeout" in items[0]["details"]["failure"]
    async with nf.sessions.begin() as session:
        assert await nf.store.replay(session, hook["notification_id"])
    [hook] = await nf.deliveries(notification_id=hook["notification_id"])
    assert (hook["status"], hook["attempts"]) == ("pending", 0)


@pytest.mark.asyncio(loop_scope="session")
async def test_rejections_go_to_the_webhook_or_else_the_staff_inbox(
    nf: Notifications, receiver: Receiver
) -> None:
    with_hook, without = f"hooked-{uuid.uuid4().hex[:6]}", f"plain-{uuid.uuid4().hex[:6]}"
    async with nf.sessions.begin() as session:
        _, secret = await nf.subscriptions.create(
            session, partner_id=with_hook, url=receiver.url("ok"), kinds=["rejected"], by="admin"
        )
    base = EXAMPLES["SubmissionRejected"]
    assert isinstance(base, SubmissionRejected)
    rejected = [
        base.model_copy(update={"partner_id": p, "submission_id": uuid.uuid4()}) for p in (with_hook, without)
    ]
    records = [
        encode(r, source="/services/intake", topic=f"partner.{r.partner_id}.rejections") for r in rejected
    ]
    envelopes = [decode(r.topic, r.key, list(r.headers), r.value) for r in records]
    assert all(isinstance(e, Envelope) for e in envelopes)
    await nf.feed(envelopes=envelopes)  # type: ignore[arg-type]
    [hook] = await nf.deliveries(recipient_id=with_hook)
    await nf.senders.run_batch(hook["destination"], 10, nf.senders.send_webhook)
    headers, body = receiver.requests["ok"][-1]
    assert Webhook(secret).verify(body, headers)["data"]["partner_id"] == with_hook
    async with nf.sessions() as session:
        assert await nf.inbox.listing(session, partner=with_hook) == []
        [item] = await nf.inbox.listing(session, partner=without, kind="rejection")
    assert item["title"].startswith(f"Rejected case-opened from {without}")
    assert isinstance(rejected[0], SubmissionRejected)


@pytest.mark.asyncio(loop_scope="session")
async def test_escalation_reaches_the_inbox_most_urgent_first_and_oncall_at_three_days(
    nf: Notifications, mailbox: Mailbox
) -> None:
    s = story()
    await nf.feed(s.case)
    escalations = [
        CaseEscalated.model_validate(
            {
                **EXAMPLES["CaseEscalated"].model_dump(),
                "case_id": s.case.case_id,
                "level": level,
                "days_to_hearing": int(level),
            }
        )
        for level in (EscalationLevel.DAYS_14, EscalationLevel.DAYS_3, EscalationLevel.DAYS_7)
    ]
    await nf.feed(*escalations)
    async with nf.sessions() as session:
        items = await nf.inbox.listing(session, partner=s.partner)
    assert [(i["kind"], i["level"]) for i in items] == [
        ("escalation", 3),
        ("escalation", 7),
        ("escalation", 14),
    ]
    before = len(mailbox.to("oncall@campaign.example"))
    await nf.send_email()
    urgent = mailbox.to("oncall@campaign.example")[before:]
    assert len(urgent) == 1
    assert urgent[0]["Subject"].startswith("URGENT: hearing in 3 days, no attorney, interpreter")
    assert str(s.case.case_id) in text_of(urgent[0])
    assert "What stands in the way: no language match, all declined" in text_of(urgent[0])


@pytest.mark.asyncio(loop_scope="session")
async def test_refused_recipient_fails_at_once_and_case_closed_webhook(
    nf: Notifications, mailbox: Mailbox, receiver: Receiver
) -> None:
    s = story()
    refused = s.attorney.model_copy(update={"email": f"nobody-{uuid.uuid4().hex[:6]}@refuse.example.net"})
    async with nf.sessions.begin() as session:
        await nf.subscriptions.create(
            session, partner_id=s.partner, url=receiver.url("ok"), kinds=["closed"], by="admin"
        )
    await nf.feed(refused, s.case, s.proposal)
    await nf.send_email()
    [delivery] = await nf.deliveries(case_id=s.case.case_id, channel="email")
    assert (delivery["status"], delivery["failure"], delivery["attempts"]) == (
        "failed",
        "invalid_recipient",
        1,
    )
    closed = CaseClosed(
        case_id=s.case.case_id, outcome=CaseOutcome.RELIEF_GRANTED, closed_on=datetime.now(UTC).date()
    )
    await nf.feed(closed)
    [hook] = await nf.deliveries(case_id=s.case.case_id, channel="webhook")
    assert hook["template"] == "webhook_closed"
    assert hook["context"]["payload"]["data"]["outcome"] == "relief_granted"


@pytest.mark.asyncio(loop_scope="session")
async def test_crash_between_send_and_record_resends_only_that_message(
    nf: Notifications, mailbox: Mailbox
) -> None:
    s = story()
    others = [story() for _ in range(3)]
    await nf.feed(s.attorney, s.case, s.proposal)
    for o in others:
        await nf.feed(o.attorney, o.case, o.proposal)
    crashed: list[uuid.UUID] = []

    def crash(delivery: Any) -> None:
        crashed.append(delivery.notification_id)
        raise KeyboardInterrupt  # the process dies: nothing after the send runs

    nf.senders.after_send = crash
    try:
        with pytest.raises(KeyboardInterrupt):
            await nf.send_email()
    finally:
        nf.senders.after_send = None
    assert len(crashed) == 1
    [row] = await nf.deliveries(notification_id=crashed[0])
    assert row["status"] == "sending"  # claimed and sent, never recorded
    async with nf.sessions.begin() as session:  # the claim lapses (the lease, shortened)
        await session.execute(
            nf.tables.deliveries.update()
            .where(nf.tables.deliveries.c.status == "sending")
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    await nf.send_email()
    everyone = [s, *others]
    counts = [len(mailbox.to(x.attorney.email)) for x in everyone]
    assert sorted(counts) == [1, 1, 1, 2]  # one duplicate: the message in flight
    duplicated = next(x for x, c in zip(everyone, counts, strict=True) if c == 2)
    first, second = mailbox.to(duplicated.attorney.email)
    assert first["Message-ID"] == second["Message-ID"]  # recognisably the same message


@pytest.mark.asyncio(loop_scope="session")
async def test_no_client_pii_in_any_email_or_log(nf: Notifications, mailbox: Mailbox) -> None:
    stream = io.StringIO()
    configure_logging(SETTINGS.model_copy(update={"log_level": "DEBUG", "log_json": True}), stream=stream)
    try:
        s = story()
        refused = s.mentor.model_copy(update={"email": "someone@refuse.example.net"})
        await nf.feed(s.attorney, refused, s.case, s.proposal, s.made)
        await nf.feed(
            MentorAssigned(
                case_id=s.case.case_id,
                match_id=s.made.match_id,
                mentor_id=s.mentor.volunteer_id,
                mentee_id=s.attorney.volunteer_id,
            )
        )
        await nf.send_email()
    finally:
        configure_logging(SETTINGS, stream=io.StringIO())
    logs = stream.getvalue()
    assert "delivery attempt failed" in logs  # the refused address was logged about...
    assert "someone@refuse.example.net" not in logs
    assert s.attorney.email not in logs
    for line in logs.splitlines():
        json.loads(line)
    assert_no_client_pii(logs, *(m.as_string() for m in mailbox.messages))
