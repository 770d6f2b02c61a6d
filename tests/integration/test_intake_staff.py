"""Intake's staff and volunteer endpoints on the real database and broker: facility status published
once through the outbox, case packets only for the placed volunteer (every attempt audited), PII
erased after the retention period, quarantine review by role.

The parts are wired exactly as the service wires them (each module's ``register``), on a runtime
bound to a throwaway schema; HTTP goes through httpx's ASGI transport.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import delete, func, insert, select, text

import lastline_intake
from lastline_intake import facilities, packets, quarantine, retention
from lastline_intake.case_pii import CasePii, encrypt_case_pii, referral_pii
from lastline_intake.partners import PartnerRepository
from lastline_intake.pii import Keyring, generate_key
from lastline_intake.processing import quarantine_aad
from lastline_intake.tables import IntakeTables
from lastline_shared.auth import issue_staff_token, sign_link
from lastline_shared.clock import network_today
from lastline_shared.contracts.cases import CaseOpened
from lastline_shared.contracts.enums import MatchEndReason, VolunteerRole
from lastline_shared.contracts.envelope import Envelope, decode, encode
from lastline_shared.contracts.examples import example_submissions
from lastline_shared.contracts.facilities import FacilityStatusChanged
from lastline_shared.contracts.matches import MatchEnded, MatchMade
from lastline_shared.contracts.profiles import CaseFacts, PartnerRef
from lastline_shared.contracts.rejections import SubmissionRejected
from lastline_shared.contracts.submissions import CaseOpenedSubmission
from lastline_shared.contracts.topics import FACILITIES
from lastline_shared.db import new_metadata
from lastline_shared.kafka_admin import ensure_topics
from lastline_shared.ops import create_http_app
from lastline_shared.packet_links import PACKET_LINK_PURPOSE, packet_url, sign_packet_link
from lastline_shared.runtime import ServiceRuntime
from lastline_shared.settings import IntakeSettings
from tests.support.kafka import create_topics, unique_topic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

MIGRATIONS = Path(lastline_intake.__file__).parent / "migrations"
SECRET = "staff-endpoints-test-secret-of-32-bytes"
RETENTION_DAYS = 30
PARTNER = "clinic-staff-test"
BASE = "http://intake.test"
[CASE_SUBMISSION] = [s for s in example_submissions(PARTNER) if isinstance(s, CaseOpenedSubmission)]
CLIENT = CASE_SUBMISSION.client
A_NUMBER = CLIENT.a_number or ""
PII_STRINGS = (CLIENT.given_name, CLIENT.family_name, A_NUMBER, CLIENT.date_of_birth.isoformat())  # type: ignore[union-attr]


@dataclass
class Staff:
    settings: IntakeSettings
    runtime: ServiceRuntime
    tables: IntakeTables
    keyring: Keyring
    packets: packets.CasePackets
    review: quarantine.QuarantineReview
    retention: retention.Retention
    http: httpx.AsyncClient
    kafka: str

    def token(self, role: str = "staff", subject: str | None = None) -> dict[str, str]:
        token = issue_staff_token(self.settings, subject or f"{role}-{uuid.uuid4().hex[:6]}", role)  # type: ignore[arg-type]
        return {"authorization": f"Bearer {token}"}

    async def rows(self, query: Any) -> list[Any]:
        async with self.runtime.sessions() as session:
            return list((await session.execute(query)).mappings())

    async def add_case(self, *, closed_on: date | None = None) -> uuid.UUID:
        """A case as the processor stores one: facts without PII, the client's details encrypted."""
        case_id = uuid.uuid4()
        opened = CaseOpened(
            case_id=case_id,
            referrals=(PartnerRef(partner_id=PARTNER, external_id=CASE_SUBMISSION.external_id),),
            **{name: getattr(CASE_SUBMISSION, name) for name in CaseFacts.model_fields},
        )
        pii = CasePii(client=CLIENT, referrals=(referral_pii(PARTNER, CASE_SUBMISSION),))
        async with self.runtime.sessions.begin() as session:
            await session.execute(
                insert(self.tables.cases).values(
                    case_id=case_id,
                    status="closed" if closed_on else "open",
                    a_number_index=uuid.uuid4().hex,
                    facts=opened.model_dump(mode="json", exclude={"case_id"}),
                    pii=encrypt_case_pii(self.keyring, case_id, pii),
                    pii_key_id=self.keyring.active_key_id,
                    outcome="bond_granted" if closed_on else None,
                    closed_on=closed_on,
                    version=1,
                )
            )
        return case_id


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def staff(infra: Any) -> AsyncIterator[Staff]:
    schema = f"t_staff_{uuid.uuid4().hex[:8]}"
    settings = IntakeSettings(
        db_schema=schema,
        database_url=infra.database_url,
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        auth_jwt_secret=SECRET,
        pii_retention_days=RETENTION_DAYS,
        packet_link_ttl_hours=2,
    )
    metadata = new_metadata()
    tables, partners = IntakeTables(metadata), PartnerRepository(metadata)
    runtime = ServiceRuntime(settings, metadata, migrations_dir=MIGRATIONS)
    keyring = Keyring.from_settings({"k1": generate_key()}, "k1")
    # As in lastline_intake.app:
    facilities.register(runtime)
    case_packets = packets.register(
        runtime, tables=tables, partners=partners, keyring=keyring, settings=settings
    )
    review = quarantine.register(runtime, tables=tables, keyring=keyring)
    pii_retention = retention.register(runtime, tables=tables, partners=partners, settings=settings)
    await runtime.migrate()
    async with runtime.sessions.begin() as session:
        await partners.create_partner(
            session, PARTNER, name="Stewart Legal Clinic", kind="clinic", contact_email="ops@example.org"
        )
    app = create_http_app(settings, routers=runtime.routers)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        yield Staff(
            settings,
            runtime,
            tables,
            keyring,
            case_packets,
            review,
            pii_retention,
            http,
            infra.kafka_bootstrap,
        )
    async with runtime.engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await runtime.engine.dispose()


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


# -- facilities ----------------------------------------------------------------------------------


async def _end_offsets(consumer: AIOKafkaConsumer, bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    parts = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    return dict(await consumer.end_offsets(parts))


async def _published_since(bootstrap: str, topic: str, start: dict[TopicPartition, int]) -> list[Any]:
    """Every record on ``topic`` after the ``start`` offsets, up to the current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        end = await _end_offsets(consumer, bootstrap, topic)
        consumer.assign(list(end))
        for tp in end:
            consumer.seek(tp, start.get(tp, 0))
        records: list[Any] = []
        deadline = asyncio.get_running_loop().time() + 20
        while [tp for tp in end if await consumer.position(tp) < end[tp]]:
            assert asyncio.get_running_loop().time() < deadline, "records did not arrive"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def _relay_all(staff: Staff) -> None:
    """Publish the outbox with the service's own relay."""
    try:
        while await staff.runtime.relay.publish_pending():
            pass
    finally:
        await staff.runtime.relay.close()


async def test_facility_pause_is_published_once_and_a_repeat_publishes_nothing(staff: Staff) -> None:
    topic = FACILITIES.name
    await ensure_topics(staff.kafka, {topic: FACILITIES.partitions})
    probe = AIOKafkaConsumer(bootstrap_servers=staff.kafka, group_id=None)
    await probe.start()
    try:
        before = await _end_offsets(probe, staff.kafka, topic)
    finally:
        await probe.stop()
    # A facility other tests do not use: the pause is undone below, for anyone replaying the topic.
    code = "FIPCAGA"
    admin_name = f"admin-{uuid.uuid4().hex[:8]}"
    admin = staff.token("admin", admin_name)
    pause = {"status": "paused", "reason": "phone_access_cut", "note": "Phones down since Monday"}

    first = await staff.http.put(f"/v1/facilities/{code.lower()}/status", json=pause, headers=admin)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["code"], body["status"], body["reason"], body["changed"]) == (
        code,
        "paused",
        "phone_access_cut",
        True,
    )
    assert body["name"] == "Folkston ICE Processing Center Annex"
    again = await staff.http.put(f"/v1/facilities/{code}/status", json=pause, headers=admin)
    assert again.json()["changed"] is False
    noted = await staff.http.put(
        f"/v1/facilities/{code}/status", json=pause | {"note": "Still down"}, headers=admin
    )
    assert (noted.json()["changed"], noted.json()["note"]) == (False, "Still down")  # stored, not published

    listing = await staff.http.get("/v1/facilities", params={"status": "paused"}, headers=staff.token())
    assert listing.status_code == 200
    assert code in {f["code"] for f in listing.json()["facilities"]}
    everything = (await staff.http.get("/v1/facilities", headers=staff.token())).json()["facilities"]
    assert len(everything) >= 80
    assert {f["status"] for f in everything if f["code"] == "STWRTGA"} <= {"open", "paused"}

    reopened = await staff.http.put(f"/v1/facilities/{code}/status", json={"status": "open"}, headers=admin)
    assert reopened.json()["changed"] is True
    await _relay_all(staff)

    records = await _published_since(staff.kafka, topic, before)
    ours = []
    for record in records:
        envelope = decode(record.topic, record.key, list(record.headers), record.value)
        data = getattr(envelope, "data", None)
        if isinstance(data, FacilityStatusChanged) and data.changed_by == admin_name:
            ours.append(data)
    assert [(e.facility_code, e.status.value, e.reason) for e in ours] == [
        (code, "paused", "phone_access_cut"),
        (code, "open", None),
    ]
    assert ours[0].note == "Phones down since Monday"


async def test_facility_status_checks_roles_codes_and_reasons(staff: Staff) -> None:
    pause = {"status": "paused", "reason": "lockdown"}
    assert (await staff.http.put("/v1/facilities/STWRTGA/status", json=pause)).status_code == 401
    _problem(await staff.http.put("/v1/facilities/STWRTGA/status", json=pause, headers=staff.token()), 403)
    unknown = await staff.http.put("/v1/facilities/STEWART/status", json=pause, headers=staff.token("admin"))
    assert "STWRTGA" in _problem(unknown, 404)["detail"]  # the nearest known, by name
    no_reason = await staff.http.put(
        "/v1/facilities/STWRTGA/status", json={"status": "paused"}, headers=staff.token("admin")
    )
    assert no_reason.status_code == 422
    odd = {"status": "open", "reason": "lockdown"}
    assert (
        await staff.http.put("/v1/facilities/STWRTGA/status", json=odd, headers=staff.token("admin"))
    ).status_code == 422
    assert (await staff.http.get("/v1/facilities")).status_code == 401


# -- case packets --------------------------------------------------------------------------------


async def _consume(staff: Staff, *events: MatchMade | MatchEnded) -> None:
    """Publish matching's events for real and feed what the broker returns to the placements consumer.

    An ad-hoc topic rather than the shared ``matches``: other services' consumers would otherwise
    read these placements of cases they never saw. Decoding, the inbox and the handler are the
    consumer's own.
    """
    topic = unique_topic("matches-test")
    await create_topics(staff.kafka, [topic], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=staff.kafka)
    await producer.start()
    try:
        for event in events:
            record = encode(event, source="/services/matching", topic=topic)
            await producer.send_and_wait(topic, record.value, key=record.key, headers=list(record.headers))
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=staff.kafka, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        records: list[Any] = []
        while len(records) < len(events):
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    [placements] = [p for p in staff.runtime.processors if p.consumer == "intake.placements"]
    outcome = await placements.process(records)
    assert outcome.processed == len(events)
    assert (await placements.process(records)).duplicates == len(events)  # redelivered: no second effect


def _made(case_id: uuid.UUID, volunteer_id: uuid.UUID, match_id: uuid.UUID) -> MatchMade:
    return MatchMade(
        case_id=case_id, volunteer_id=volunteer_id, role=VolunteerRole.ATTORNEY, match_id=match_id
    )


async def _audit(staff: Staff, case_id: uuid.UUID) -> list[Any]:
    t = staff.packets.access_log
    return await staff.rows(select(t).where(t.c.case_id == case_id).order_by(t.c.id))


async def test_packet_only_for_the_attested_placed_volunteer_and_every_attempt_audited(staff: Staff) -> None:
    case_id, volunteer_id, match_id = await staff.add_case(), uuid.uuid4(), uuid.uuid4()
    token = sign_packet_link(staff.settings, case_id, volunteer_id, match_id)
    url = packet_url(BASE, token)
    attest = {"attest_no_conflict": True, "volunteer_name": "Dana Whitfield"}

    _problem(await staff.http.get(url), 404)  # matching's match-made not seen yet
    await _consume(staff, _made(case_id, volunteer_id, match_id))

    preview = await staff.http.get(url)
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    assert (shown["case_id"], shown["match_id"], shown["role"]) == (str(case_id), str(match_id), "attorney")
    assert shown["facility"]["name"] == "Stewart Detention Center"
    assert "conflict" in shown["attestation"]
    assert not any(s in preview.text for s in PII_STRINGS)
    assert preview.headers["cache-control"] == "no-store"

    assert _problem(await staff.http.post(url), 403)["title"] == "Attestation required"
    _problem(await staff.http.post(url, json={"attest_no_conflict": False}), 403)
    _problem(
        await staff.http.post(url, content=b"{not json", headers={"content-type": "application/json"}), 422
    )

    opened = await staff.http.post(url, json=attest)
    assert opened.status_code == 200, opened.text
    packet = opened.json()
    assert packet["client"]["given_name"] == CLIENT.given_name
    assert packet["client"]["a_number"] == CLIENT.a_number
    assert packet["client"]["date_of_birth"] == CLIENT.date_of_birth.isoformat()  # type: ignore[union-attr]
    assert packet["client"]["country_of_nationality"] == "GT"
    assert packet["client"]["contact"]["phone"]
    assert (packet["facility"]["city"], packet["court"]["code"]) == ("Lumpkin", CASE_SUBMISSION.court_code)
    assert packet["next_hearing"]["date"] == CASE_SUBMISSION.next_hearing_date.isoformat()  # type: ignore[union-attr]
    [referral] = packet["referrals"]
    assert referral["partner_name"] == "Stewart Legal Clinic"
    assert referral["contact"]["name"] == "Rosa Alvarez"
    assert referral["notes"] == CASE_SUBMISSION.notes
    assert opened.headers["cache-control"] == "no-store"

    # A browser gets the attestation form, then the packet as a page (escaped).
    page = await staff.http.get(url, headers={"accept": "text/html"})
    assert page.status_code == 200
    assert 'name="attest_no_conflict"' in page.text
    form = await staff.http.post(
        url, data={"attest_no_conflict": "true", "volunteer_name": "Dana"}, headers={"accept": "text/html"}
    )
    assert form.status_code == 200
    assert "Pérez Tzoc" in form.text
    assert A_NUMBER in form.text

    # Someone else's link to this case, another purpose, tampered, expired: refused.
    other = sign_packet_link(staff.settings, case_id, uuid.uuid4(), match_id)
    _problem(await staff.http.post(packet_url(BASE, other), json=attest), 404)
    header, payload, signature = token.split(".")
    _problem(await staff.http.post(packet_url(BASE, f"{header}.{payload}x.{signature}"), json=attest), 403)
    ids = {"case_id": str(case_id), "volunteer_id": str(volunteer_id), "match_id": str(match_id)}
    expired = sign_link(ids, timedelta(seconds=-5), secret=SECRET, purpose=PACKET_LINK_PURPOSE)
    _problem(await staff.http.post(packet_url(BASE, expired), json=attest), 410)
    refused_page = await staff.http.post(packet_url(BASE, expired), data={}, headers={"accept": "text/html"})
    assert refused_page.status_code == 410
    assert "expired" in refused_page.text

    # The placement ends: the same link opens nothing.
    await _consume(
        staff,
        MatchEnded(
            case_id=case_id,
            volunteer_id=volunteer_id,
            role=VolunteerRole.ATTORNEY,
            match_id=match_id,
            reason=MatchEndReason.VOLUNTEER_WITHDREW,
        ),
    )
    assert _problem(await staff.http.post(url, json=attest), 410)["title"] == "Placement ended"

    audit = await _audit(staff, case_id)
    assert [(a["action"], a["outcome"], a["reason"]) for a in audit] == [
        ("preview", "refused", "unknown_placement"),
        ("preview", "granted", None),
        ("open", "refused", "not_attested"),
        ("open", "refused", "not_attested"),
        ("open", "refused", "malformed_request"),
        ("open", "granted", None),
        ("preview", "granted", None),
        ("open", "granted", None),
        ("open", "refused", "unknown_placement"),
        # (the tampered link names no case: it is logged without one, below)
        ("open", "refused", "expired_link"),
        ("open", "refused", "expired_link"),  # the same, from a browser
        ("open", "refused", "placement_ended"),
    ]
    granted = audit[5]
    assert (granted["volunteer_id"], granted["match_id"], granted["attested"]) == (
        volunteer_id,
        match_id,
        True,
    )
    assert granted["attested_name"] == "Dana Whitfield"
    assert granted["client_ip"] == "127.0.0.1"
    t = staff.packets.access_log
    tampered = await staff.rows(select(t).where(t.c.reason == "invalid_link", t.c.case_id.is_(None)))
    assert tampered
    # No client details in the audit log.
    schema = staff.settings.db_schema
    dump = await staff.rows(
        text(f"SELECT string_agg(l::text, ' ') AS all FROM \"{schema}\".packet_access_log l")
    )
    assert not any(s in dump[0]["all"] for s in PII_STRINGS)

    log_page = await staff.http.get(
        "/v1/audit/case-packets", params={"case_id": str(case_id)}, headers=staff.token("admin")
    )
    assert len(log_page.json()["entries"]) == len(audit)
    _problem(await staff.http.get("/v1/audit/case-packets", headers=staff.token()), 403)


async def test_packet_refused_once_the_case_closed_or_its_pii_was_erased(staff: Staff) -> None:
    today = network_today(staff.settings.network_timezone)()
    recent = await staff.add_case(closed_on=today - timedelta(days=2))
    long_ago = await staff.add_case(closed_on=today - timedelta(days=RETENTION_DAYS + 5))
    links = {}
    for case_id in (recent, long_ago):
        volunteer_id, match_id = uuid.uuid4(), uuid.uuid4()
        await _consume(staff, _made(case_id, volunteer_id, match_id))
        links[case_id] = packet_url(BASE, sign_packet_link(staff.settings, case_id, volunteer_id, match_id))
    attest = {"attest_no_conflict": True}
    assert _problem(await staff.http.post(links[recent], json=attest), 410)["title"] == "Case closed"
    assert _problem(await staff.http.post(links[long_ago], json=attest), 410)["title"] == "Case closed"
    await staff.retention.erase_all(staff.runtime.sessions, now=datetime.now(UTC))
    assert _problem(await staff.http.post(links[long_ago], json=attest), 410)["title"] == "Details erased"
    assert [a["reason"] for a in await _audit(staff, long_ago)] == ["case_closed", "pii_erased"]


# -- retention -----------------------------------------------------------------------------------


async def _quarantined(staff: Staff, received_at: datetime, *, partner_id: str = PARTNER) -> uuid.UUID:
    submission_id = uuid.uuid4()
    raw = f'{{"client": {{"given_name": "{CLIENT.given_name}"}}}}'.encode()
    reasons = [{"path": "", "code": "invalid_json", "message": "Not JSON"}]
    async with staff.runtime.sessions.begin() as session:
        await session.execute(
            insert(staff.tables.submissions).values(
                submission_id=submission_id,
                partner_id=partner_id,
                event_id=str(uuid.uuid4()),
                event_type="case-opened",
                channel="kafka",
                received_at=received_at,
                status="rejected",
                reasons=reasons,
                decided_at=received_at,
            )
        )
        await session.execute(
            insert(staff.tables.quarantine).values(
                submission_id=submission_id,
                partner_id=partner_id,
                channel="kafka",
                topic=f"partner.{partner_id}.submissions",
                partition=3,
                offset=1234,
                record_key=b"case-0001",
                headers=[{"name": "ce_type", "value": base64.b64encode(b"case-opened").decode()}],
                value_encrypted=staff.keyring.encrypt(raw, aad=quarantine_aad(submission_id)),
                value_bytes=len(raw),
                reasons=reasons,
                received_at=received_at,
            )
        )
    return submission_id


async def _held(staff: Staff, received_at: datetime) -> uuid.UUID:
    submission_id, event_id = uuid.uuid4(), str(uuid.uuid4())
    async with staff.runtime.sessions.begin() as session:
        values = {"partner_id": PARTNER, "event_id": event_id, "event_type": "case-updated"}
        await session.execute(
            insert(staff.tables.submissions).values(
                submission_id=submission_id,
                external_id="case-held-1",
                channel="kafka",
                received_at=received_at,
                status="held",
                result="held",
                record_kind="case",
                **values,
            )
        )
        await session.execute(
            insert(staff.tables.held).values(
                submission_id=submission_id,
                record_kind="case",
                external_id="case-held-1",
                payload=staff.keyring.encrypt(b"{}", aad=f"held:{submission_id}".encode()),
                received_at=received_at,
                **values,
            )
        )
    return submission_id


async def test_retention_erases_only_what_expired(staff: Staff) -> None:
    now = datetime.now(UTC)
    today = network_today(staff.settings.network_timezone)()
    expired_case = await staff.add_case(closed_on=today - timedelta(days=RETENTION_DAYS + 1))
    boundary_case = await staff.add_case(closed_on=today - timedelta(days=RETENTION_DAYS))
    recent_case = await staff.add_case(closed_on=today - timedelta(days=1))
    open_case = await staff.add_case()
    old, fresh = now - timedelta(days=RETENTION_DAYS, hours=1), now - timedelta(days=RETENTION_DAYS - 1)
    old_quarantine, fresh_quarantine = await _quarantined(staff, old), await _quarantined(staff, fresh)
    old_held, fresh_held = await _held(staff, old), await _held(staff, fresh)

    erased = await staff.retention.erase_all(staff.runtime.sessions, now=now, limit=2)  # several batches
    assert erased.cases >= 1
    assert erased.quarantine_values >= 1
    assert erased.held_submissions >= 1

    c = staff.tables.cases
    cases = {r["case_id"]: r for r in await staff.rows(select(c))}
    gone = cases[expired_case]
    assert (gone["pii"], gone["pii_key_id"], gone["a_number_index"]) == (None, None, None)
    assert gone["pii_erased_at"] is not None
    assert gone["facts"]["facility_code"] == CASE_SUBMISSION.facility_code  # the pseudonymous case stays
    for kept in (boundary_case, recent_case, open_case):
        assert cases[kept]["pii"] is not None
        assert cases[kept]["pii_erased_at"] is None

    q = staff.tables.quarantine
    values = {r["submission_id"]: r for r in await staff.rows(select(q))}
    assert values[old_quarantine]["value_encrypted"] is None
    assert values[old_quarantine]["reasons"]  # what was wrong stays for review
    assert values[fresh_quarantine]["value_encrypted"] is not None

    h, s = staff.tables.held, staff.tables.submissions
    assert {r["submission_id"] for r in await staff.rows(select(h))} >= {fresh_held}
    assert not await staff.rows(select(h).where(h.c.submission_id == old_held))
    [dropped] = await staff.rows(select(s).where(s.c.submission_id == old_held))
    assert dropped["status"] == "rejected"
    assert dropped["reasons"][0]["code"] == "held_expired"
    outbox = staff.runtime.outbox.table
    told = await staff.rows(select(outbox).where(outbox.c.topic == f"partner.{PARTNER}.rejections"))
    events = [
        decode(r["topic"], r["key"], list(zip(r["header_keys"], r["header_values"], strict=True)), r["value"])
        for r in told
    ]
    rejected = [e.data for e in events if isinstance(e, Envelope) and isinstance(e.data, SubmissionRejected)]
    assert old_held in {r.submission_id for r in rejected}
    async with staff.runtime.sessions.begin() as session:  # no such topic on the broker
        await session.execute(delete(outbox).where(outbox.c.topic.like("partner.%")))

    again = await staff.retention.erase_all(staff.runtime.sessions, now=now)
    assert again.total == 0


async def test_erase_expired_command(staff: Staff, infra: Any) -> None:
    today = network_today(staff.settings.network_timezone)()
    case_id = await staff.add_case(closed_on=today - timedelta(days=RETENTION_DAYS + 3))
    env = os.environ | {
        "INTAKE_DB_SCHEMA": staff.settings.db_schema,
        "INTAKE_DATABASE_URL": infra.database_url,
        "INTAKE_PII_RETENTION_DAYS": str(RETENTION_DAYS),
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "lastline_intake", "erase-expired"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert out["retention_days"] == str(RETENTION_DAYS)
    assert int(out["cases"]) >= 1
    c = staff.tables.cases
    [row] = await staff.rows(select(c.c.pii, c.c.pii_erased_at).where(c.c.case_id == case_id))
    assert row["pii"] is None
    assert row["pii_erased_at"] is not None


# -- quarantine review ---------------------------------------------------------------------------


async def test_quarantine_review_by_role(staff: Staff) -> None:
    partner = f"p-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    first = await _quarantined(staff, now - timedelta(minutes=3), partner_id=partner)
    second = await _quarantined(staff, now - timedelta(minutes=2), partner_id=partner)
    third = await _quarantined(staff, now - timedelta(minutes=1), partner_id=partner)

    assert (await staff.http.get("/v1/quarantine")).status_code == 401
    listed = await staff.http.get("/v1/quarantine", params={"partner_id": partner}, headers=staff.token())
    assert listed.status_code == 200
    page = listed.json()
    assert page["total"] == 3
    assert [i["submission_id"] for i in page["items"]] == [str(third), str(second), str(first)]
    item = page["items"][0]
    assert (item["topic"], item["partition"], item["offset"]) == (f"partner.{partner}.submissions", 3, 1234)
    assert item["value_kept"] is True
    assert item["headers"] == [{"name": "ce_type", "bytes": len(b"case-opened")}]
    assert "value" not in item
    assert CLIENT.given_name not in listed.text

    reviewer = f"reviewer-{uuid.uuid4().hex[:6]}"
    reviewed = await staff.http.post(
        f"/v1/quarantine/{third}/review",
        json={"note": "Partner fixed the feed"},
        headers=staff.token(subject=reviewer),
    )
    assert reviewed.status_code == 200
    assert (reviewed.json()["reviewed_by"], reviewed.json()["review_note"]) == (
        reviewer,
        "Partner fixed the feed",
    )
    _problem(
        await staff.http.post(f"/v1/quarantine/{uuid.uuid4()}/review", json={}, headers=staff.token()), 404
    )
    ordered = await staff.http.get(
        "/v1/quarantine", params={"partner_id": partner, "limit": 2, "offset": 0}, headers=staff.token()
    )
    assert [i["submission_id"] for i in ordered.json()["items"]] == [
        str(second),
        str(first),
    ]  # unreviewed first
    rest = await staff.http.get(
        "/v1/quarantine", params={"partner_id": partner, "limit": 2, "offset": 2}, headers=staff.token()
    )
    assert [i["submission_id"] for i in rest.json()["items"]] == [str(third)]
    unreviewed = await staff.http.get(
        "/v1/quarantine", params={"partner_id": partner, "reviewed": "false"}, headers=staff.token()
    )
    assert unreviewed.json()["total"] == 2

    _problem(await staff.http.get(f"/v1/quarantine/{first}", headers=staff.token()), 403)
    admin_name = f"admin-{uuid.uuid4().hex[:6]}"
    raw = await staff.http.get(f"/v1/quarantine/{first}", headers=staff.token("admin", admin_name))
    assert raw.status_code == 200
    detail = raw.json()
    assert CLIENT.given_name in detail["value"]
    assert detail["headers"] == [{"name": "ce_type", "value": "case-opened"}]
    assert detail["record_key"] == "case-0001"
    assert raw.headers["cache-control"] == "no-store"
    _problem(await staff.http.get(f"/v1/quarantine/{uuid.uuid4()}", headers=staff.token("admin")), 404)

    t = staff.review.access_log
    [read] = await staff.rows(select(t).where(t.c.submission_id == first))
    assert (read["accessed_by"], read["value_shown"], read["client_ip"]) == (admin_name, True, "127.0.0.1")
    audit = await staff.http.get(
        "/v1/audit/quarantine", params={"submission_id": str(first)}, headers=staff.token("admin")
    )
    assert [e["accessed_by"] for e in audit.json()["entries"]] == [admin_name]
    async with staff.runtime.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(t))
    assert count == 1  # the 404 above read nothing and logged nothing
