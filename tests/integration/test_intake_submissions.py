"""Intake's processor against the real database: identity, duplicates, holds, rejections, PII at rest."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from lastline_intake.case_pii import decrypt_case_pii
from lastline_intake.processing import quarantine_aad
from lastline_shared.contracts.envelope import KafkaRecord
from lastline_shared.contracts.examples import NOW, example_submissions
from lastline_shared.contracts.submissions import (
    CaseClosedSubmission,
    CaseOpenedSubmission,
    CaseUpdatedSubmission,
    VolunteerRegisteredSubmission,
    VolunteerUpdatedSubmission,
    VolunteerWithdrawnSubmission,
)
from tests.support.intake import IntakeDb, intake_db, received, record_of

pytestmark = pytest.mark.integration

TODAY = NOW.date()
P1, P2 = "clinic-a", "firm-b"


@pytest_asyncio.fixture(loop_scope="session")
async def db(infra) -> AsyncIterator[IntakeDb]:  # type: ignore[no-untyped-def]
    async with intake_db(infra.database_url, TODAY) as intake:
        await intake.add_partner(P1)
        await intake.add_partner(P2)
        yield intake


def _examples(partner_id: str = P1):  # type: ignore[no-untyped-def]
    vol_reg, vol_upd, vol_wd, case_open, case_upd, case_close = example_submissions(partner_id)
    assert isinstance(vol_reg, VolunteerRegisteredSubmission)
    assert isinstance(vol_upd, VolunteerUpdatedSubmission)
    assert isinstance(vol_wd, VolunteerWithdrawnSubmission)
    assert isinstance(case_open, CaseOpenedSubmission)
    assert isinstance(case_upd, CaseUpdatedSubmission)
    assert isinstance(case_close, CaseClosedSubmission)
    return vol_reg, vol_upd, vol_wd, case_open, case_upd, case_close.model_copy(update={"closed_on": TODAY})


@pytest.mark.asyncio(loop_scope="session")
async def test_volunteer_lifecycle_and_redelivery(db: IntakeDb) -> None:
    vol_reg, vol_upd, vol_wd, *_ = _examples()
    first = record_of(vol_reg, P1)
    [created] = await db.submit(received(first))
    assert (created.status, created.result, created.duplicate) == ("accepted", "created", False)
    [again] = await db.submit(received(first))  # redelivered: same partner, same event id
    assert (again.duplicate, again.submission_id, again.result) == (True, created.submission_id, "created")
    [updated] = await db.submit(received(vol_upd, P1))
    assert (updated.result, updated.record_id) == ("updated", created.record_id)
    [same] = await db.submit(received(vol_upd, P1))  # a new event with nothing new
    assert same.result == "unchanged"
    [withdrawn] = await db.submit(received(vol_wd, P1))
    assert withdrawn.result == "withdrawn"
    types = [e.type for e in await db.events("volunteers")]
    assert types == ["volunteer-registered", "volunteer-updated", "volunteer-withdrawn"]
    profile = (await db.events("volunteers"))[1].data
    assert profile.max_active_cases == 3  # type: ignore[attr-defined]


@pytest.mark.asyncio(loop_scope="session")
async def test_same_email_from_two_partners_is_one_volunteer(db: IntakeDb) -> None:
    reg1 = _examples(P1)[0]
    reg2 = _examples(P2)[0].model_copy(
        update={"email": " Dana.Whitfield@EXAMPLE.org ", "max_active_cases": 4}
    )
    [a], [b] = await db.submit(received(reg1, P1)), await db.submit(received(reg2, P2))
    assert (a.result, b.result) == ("created", "merged")
    assert a.record_id == b.record_id
    async with db.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(db.tables.volunteers))
        refs = await session.scalar(select(func.count()).select_from(db.tables.volunteer_refs))
    assert (count, refs) == (1, 2)
    events = await db.events("volunteers")
    assert [e.type for e in events] == ["volunteer-registered", "volunteer-updated"]


@pytest.mark.asyncio(loop_scope="session")
async def test_update_before_registration_is_held_then_applied(db: IntakeDb) -> None:
    vol_reg, vol_upd, *_ = _examples()
    [held] = await db.submit(received(vol_upd, P1))
    assert (held.status, held.result, held.record_id) == ("accepted", "held", None)
    assert await db.events() == []
    [created] = await db.submit(received(vol_reg, P1))
    assert created.result == "created"
    events = await db.events("volunteers")
    assert [e.type for e in events] == ["volunteer-registered", "volunteer-updated"]
    assert events[1].data.max_active_cases == 3  # type: ignore[attr-defined]
    async with db.sessions() as session:
        row = (
            (
                await session.execute(
                    select(db.tables.submissions).where(
                        db.tables.submissions.c.submission_id == held.submission_id
                    )
                )
            )
            .mappings()
            .one()
        )
        left = await session.scalar(select(func.count()).select_from(db.tables.held))
    assert (row["status"], row["result"], row["record_id"]) == ("accepted", "updated", created.record_id)
    assert left == 0


@pytest.mark.asyncio(loop_scope="session")
async def test_held_and_released_within_one_batch(db: IntakeDb) -> None:
    _, _, _, case_open, case_upd, case_close = _examples()
    decisions = await db.submit(received(case_upd, P1), received(case_close, P1), received(case_open, P1))
    # Held, then released by the registration later in the batch: the final decisions come back.
    assert [d.result for d in decisions] == ["updated", "closed", "created"]
    types = [e.type for e in await db.events("cases")]
    assert types == ["case-opened", "case-updated", "case-closed"]
    async with db.sessions() as session:
        left = await session.scalar(select(func.count()).select_from(db.tables.held))
    assert left == 0


@pytest.mark.asyncio(loop_scope="session")
async def test_same_client_from_two_partners_is_one_case_and_pii_stays_encrypted(db: IntakeDb) -> None:
    case1 = _examples(P1)[3]
    client = case1.client.model_copy(update={"a_number": "201234567"})  # the same A-number, no "A"
    case2 = _examples(P2)[3].model_copy(update={"client": client})
    [a], [b] = await db.submit(received(case1, P1)), await db.submit(received(case2, P2))
    assert (a.result, b.result, a.record_id) == ("created", "merged", b.record_id)
    _, updated = await db.events("cases")
    assert updated.type == "case-updated"
    assert updated.data.changes == ("referral_added",)  # type: ignore[attr-defined]
    assert {r.partner_id for r in updated.data.referrals} == {P1, P2}  # type: ignore[attr-defined]
    for record in await db.published():
        for secret in ("Ixchel", "Tzoc", "201234567", "1994-07-03", "229 555 0142", "Rosa"):
            assert secret.encode() not in record.value
    async with db.sessions() as session:
        row = (await session.execute(select(db.tables.cases))).mappings().one()
    assert b"Ixchel" not in row["pii"]
    pii = decrypt_case_pii(db.keyring, row["case_id"], row["pii"])
    assert pii.client.given_name == "Ixchel"
    assert {r.partner_id for r in pii.referrals} == {P1, P2}


@pytest.mark.asyncio(loop_scope="session")
async def test_rules_reject_with_reasons_and_suggestions(db: IntakeDb) -> None:
    case_open = _examples()[3].model_copy(update={"facility_code": "STWRTGX"})
    [rejected] = await db.submit(received(case_open, P1))
    assert rejected.status == "rejected"
    assert [r.code for r in rejected.reasons] == ["unknown_facility"]
    assert "STWRTGA" in rejected.reasons[0].message
    [event] = await db.events(f"partner.{P1}.rejections")
    assert event.data.submission_id == rejected.submission_id  # type: ignore[attr-defined]
    assert event.data.suggestions[0].path == "facility_code"  # type: ignore[attr-defined]
    assert b"Ixchel" not in (await db.published())[0].value
    async with db.sessions() as session:
        row = (await session.execute(select(db.tables.quarantine))).mappings().one()
    assert b"Ixchel" not in row["value_encrypted"]
    raw = json.loads(db.keyring.decrypt(row["value_encrypted"], aad=quarantine_aad(rejected.submission_id)))
    assert raw["facility_code"] == "STWRTGX"


@pytest.mark.asyncio(loop_scope="session")
async def test_undecodable_record_is_rejected_and_kept(db: IntakeDb) -> None:
    good = record_of(_examples()[0], P1)
    bad = KafkaRecord(good.topic, good.key, good.headers, b'{"name": "Dana", ')
    [rejected] = await db.submit(received(bad))
    assert (rejected.status, rejected.reasons[0].code) == ("rejected", "invalid_json")
    assert rejected.external_id == good.key.decode()  # type: ignore[union-attr]
    [event] = await db.events(f"partner.{P1}.rejections")
    assert event.data.event_id == rejected.event_id  # type: ignore[attr-defined]


@pytest.mark.asyncio(loop_scope="session")
async def test_unknown_partner_is_rejected(db: IntakeDb) -> None:
    [rejected] = await db.submit(received(_examples("nobody")[0], "nobody"))
    assert [r.code for r in rejected.reasons] == ["unknown_partner"]
    assert await db.events() == []  # no rejections topic to publish on: kept in quarantine only


@pytest.mark.asyncio(loop_scope="session")
async def test_a_batch_with_a_copy_inside_applies_once(db: IntakeDb) -> None:
    record = record_of(_examples()[0], P1, event_id=uuid.uuid4())
    first, second = await db.submit(received(record), received(record))
    assert (first.duplicate, second.duplicate) == (False, True)
    assert second.submission_id == first.submission_id
    assert len(await db.events("volunteers")) == 1
