"""The partner HTTP API against the real database: auth, decisions, duplicates, rejections, scoping,
and the same results as the Kafka path for the same submissions."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

from lastline_intake.http_api import DecisionBody, build_router
from lastline_intake.partners import parse_key
from lastline_intake.processing import quarantine_aad
from lastline_shared.contracts.base import Submission
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
from lastline_shared.ops import create_http_app
from lastline_shared.settings import IntakeSettings
from tests.support.intake import IntakeDb, intake_db, received, record_of

pytestmark = pytest.mark.integration

TODAY = NOW.date()
P1, P2 = "clinic-a", "firm-b"
SECRET = "an-http-test-secret-of-at-least-32-bytes"
MAX_BODY = 64 * 1024
S = TypeVar("S", bound=Submission)


def _example(cls: type[S]) -> S:
    [example] = [s for s in example_submissions(P1) if isinstance(s, cls)]
    return example


VOL_REG, VOL_UPD = _example(VolunteerRegisteredSubmission), _example(VolunteerUpdatedSubmission)
VOL_WD, CASE_CLOSE = _example(VolunteerWithdrawnSubmission), _example(CaseClosedSubmission)
CASE_OPEN, CASE_UPD = _example(CaseOpenedSubmission), _example(CaseUpdatedSubmission)


@dataclass
class Api:
    db: IntakeDb
    client: httpx.AsyncClient
    keys: dict[str, str]

    async def submit(
        self,
        body: Submission | bytes,
        *,
        partner: str = P1,
        event_type: str | None = None,
        event_id: uuid.UUID | str | None = None,
        **headers: str,
    ) -> httpx.Response:
        """POST in binary mode; ``None`` header values leave the header out."""
        if isinstance(body, Submission):
            event_type = event_type or body.event_type
            body = body.model_dump_json().encode()
        sent = {
            "authorization": f"Bearer {self.keys[partner]}",
            "content-type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": str(event_id or uuid.uuid4()),
            "ce-type": event_type or "",
        } | {name.replace("_", "-"): value for name, value in headers.items()}
        return await self.client.post("/v1/submissions", content=body, headers=_present(sent))


def _present(headers: Mapping[str, str | None]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if value}


@asynccontextmanager
async def api_on(db: IntakeDb) -> AsyncIterator[Api]:
    router = build_router(sessions=db.sessions, processor=db.processor, partners=db.partners)
    settings = IntakeSettings(auth_jwt_secret=SECRET, http_max_body_bytes=MAX_BODY)
    app = create_http_app(settings, routers=[router])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        yield Api(db, client, {p: await db.issue_key(p) for p in (P1, P2)})


@pytest_asyncio.fixture(loop_scope="session")
async def api(infra) -> AsyncIterator[Api]:  # type: ignore[no-untyped-def]
    async with intake_db(infra.database_url, TODAY) as db:
        await db.add_partner(P1)
        await db.add_partner(P2)
        async with api_on(db) as api:
            yield api


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


@pytest.mark.asyncio(loop_scope="session")
async def test_a_valid_key_is_needed(api: Api) -> None:
    no_key = await api.client.post("/v1/submissions", content=b"{}", headers={"ce-type": "case-opened"})
    assert _problem(no_key, 401)["title"] == "Unauthorized"
    assert no_key.headers["www-authenticate"] == "Bearer"
    issued = parse_key(api.keys[P1])
    assert issued is not None
    forged = f"ll_{issued.key_id}_{'x' * 43}"  # a real key id with the wrong secret
    for key in (forged, "not-a-key", f"ll_{'0' * 16}_{'y' * 43}"):
        response = await api.client.post("/v1/submissions", headers={"authorization": f"Bearer {key}"})
        _problem(response, 401)
    _problem(await api.client.get("/v1/submissions", params={"event_id": "x"}), 401)
    async with api.db.sessions.begin() as session:
        await api.db.partners.revoke_key(session, issued.key_id)
    _problem(await api.submit(VOL_REG), 401)
    assert await api.db.events() == []


@pytest.mark.asyncio(loop_scope="session")
async def test_x_api_key_header_is_accepted(api: Api) -> None:
    response = await api.client.post(
        "/v1/submissions",
        content=VOL_REG.model_dump_json(),
        headers={
            "x-api-key": api.keys[P1],
            "content-type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": str(uuid.uuid4()),
            "ce-type": "volunteer-registered",
        },
    )
    assert response.status_code == 202, response.text


@pytest.mark.asyncio(loop_scope="session")
async def test_accepted_volunteer_and_case(api: Api) -> None:
    volunteer = await api.submit(VOL_REG)
    assert volunteer.status_code == 202, volunteer.text
    decision = volunteer.json()
    DecisionBody.model_validate(decision)  # the documented shape
    assert (decision["status"], decision["result"], decision["duplicate"]) == ("accepted", "created", False)
    assert decision["volunteer_id"] is not None
    assert decision["case_id"] is None
    assert decision["external_id"] == VOL_REG.external_id
    status = await api.client.get(volunteer.headers["location"], headers={"x-api-key": api.keys[P1]})
    assert status.json() == decision

    case = await api.submit(CASE_OPEN, traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert case.status_code == 202, case.text
    assert (case.json()["result"], case.json()["volunteer_id"]) == ("created", None)

    events = await api.db.events()
    assert [(e.topic, e.type) for e in events] == [
        ("volunteers", "volunteer-registered"),
        ("cases", "case-opened"),
    ]
    assert str(events[1].data.case_id) == case.json()["case_id"]  # type: ignore[attr-defined]
    assert events[1].traceparent is not None
    assert events[1].traceparent.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"  # the partner's trace
    for record in await api.db.published():
        assert b"Ixchel" not in record.value  # the client's name stays in intake
    t = api.db.tables.submissions
    async with api.db.sessions() as session:
        channels = set((await session.execute(select(t.c.channel))).scalars())
    assert channels == {"http"}


@pytest.mark.asyncio(loop_scope="session")
async def test_the_same_event_id_twice_has_one_effect(api: Api) -> None:
    event_id = uuid.uuid4()
    first = await api.submit(VOL_REG, event_id=event_id)
    again = await api.submit(VOL_REG, event_id=str(event_id).upper())
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == first.json() | {"duplicate": True}
    [kafka_copy] = await api.db.submit(received(record_of(VOL_REG, P1, event_id=event_id)))
    assert (kafka_copy.duplicate, str(kafka_copy.submission_id)) == (True, first.json()["submission_id"])
    assert len(await api.db.events()) == 1


@pytest.mark.asyncio(loop_scope="session")
async def test_rejected_with_reasons_quarantined_and_published(api: Api) -> None:
    case = CASE_OPEN.model_copy(update={"facility_code": "STWRTGX"})
    response = await api.submit(case)
    assert response.status_code == 422, response.text
    decision = response.json()
    DecisionBody.model_validate(decision)
    assert decision["status"] == "rejected"
    assert [(r["path"], r["code"]) for r in decision["reasons"]] == [("facility_code", "unknown_facility")]
    assert "STWRTGA" in decision["reasons"][0]["message"]  # the nearest known code
    [event] = await api.db.events(f"partner.{P1}.rejections")
    assert str(event.data.submission_id) == decision["submission_id"]  # type: ignore[attr-defined]
    assert event.data.reasons[0].code == "unknown_facility"  # type: ignore[attr-defined]
    async with api.db.sessions() as session:
        row = (await session.execute(select(api.db.tables.quarantine))).mappings().one()
    assert (row["channel"], str(row["submission_id"])) == ("http", decision["submission_id"])
    raw = api.db.keyring.decrypt(row["value_encrypted"], aad=quarantine_aad(row["submission_id"]))
    assert json.loads(raw)["facility_code"] == "STWRTGX"
    assert b"Ixchel" not in row["value_encrypted"]


@pytest.mark.asyncio(loop_scope="session")
async def test_bad_requests(api: Api) -> None:
    bad_json = await api.submit(b'{"external_id": "x", ', event_type="case-opened")
    assert bad_json.status_code == 422
    assert [r["code"] for r in bad_json.json()["reasons"]] == ["invalid_json"]

    no_type = await api.submit(VOL_REG.model_dump_json().encode())
    assert [(r["path"], r["code"]) for r in no_type.json()["reasons"]] == [
        ("headers.ce-type", "missing_header")
    ]

    unknown = await api.submit(VOL_REG.model_dump_json().encode(), event_type="volunteer-enlisted")
    assert [(r["path"], r["code"]) for r in unknown.json()["reasons"]] == [
        ("headers.ce-type", "unknown_event_type")
    ]
    other_source = await api.submit(VOL_REG, ce_source=f"/partners/{P2}")
    assert ("headers.ce-source", "source_mismatch") in [
        (r["path"], r["code"]) for r in other_source.json()["reasons"]
    ]

    async with api.db.sessions() as session:
        quarantined = (await session.execute(select(api.db.tables.quarantine))).mappings().all()
    assert len(quarantined) == 4  # kept for staff, like bad records on the Kafka path
    assert len(await api.db.events(f"partner.{P1}.rejections")) == 4

    oversized = b'{"notes": "' + b"x" * MAX_BODY + b'"}'
    assert (await api.submit(oversized, event_type="case-opened")).status_code == 413
    plain = await api.submit(VOL_REG, content_type="text/plain")
    assert _problem(plain, 400)["title"] == "Unsupported content type"
    assert len(await api.db.events()) == 4  # neither the oversized nor the plain text one was processed


@pytest.mark.asyncio(loop_scope="session")
async def test_structured_mode(api: Api) -> None:
    headers = {"authorization": f"Bearer {api.keys[P1]}", "content-type": "application/cloudevents+json"}
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "type": "case-opened",
        "data": json.loads(CASE_OPEN.model_dump_json()),
    }
    accepted = await api.client.post("/v1/submissions", json=event, headers=headers)
    assert (accepted.status_code, accepted.json()["result"]) == (202, "created"), accepted.text

    untyped = await api.client.post(
        "/v1/submissions", json={**event, "id": str(uuid.uuid4()), "type": None}, headers=headers
    )
    assert untyped.status_code == 422
    assert [(r["path"], r["code"]) for r in untyped.json()["reasons"]] == [("type", "missing_header")]

    broken = await api.client.post("/v1/submissions", content=b"[]", headers=headers)
    assert _problem(broken, 400)["title"] == "Not a structured CloudEvent"


@pytest.mark.asyncio(loop_scope="session")
async def test_partners_see_only_their_own_submissions(api: Api) -> None:
    event_id = uuid.uuid4()
    mine = (await api.submit(VOL_REG, event_id=event_id)).json()
    as_p1 = {"authorization": f"Bearer {api.keys[P1]}"}
    as_p2 = {"authorization": f"Bearer {api.keys[P2]}"}
    by_id = f"/v1/submissions/{mine['submission_id']}"
    assert (await api.client.get(by_id, headers=as_p1)).json() == mine
    found = await api.client.get("/v1/submissions", params={"event_id": str(event_id).upper()}, headers=as_p1)
    assert found.json() == mine
    _problem(await api.client.get(by_id, headers=as_p2), 404)
    _problem(await api.client.get("/v1/submissions", params={"event_id": str(event_id)}, headers=as_p2), 404)
    _problem(await api.client.get("/v1/submissions/not-a-uuid", headers=as_p1), 404)


@pytest.mark.asyncio(loop_scope="session")
async def test_concurrent_referrals_of_one_client_become_one_case(api: Api) -> None:
    """Two partners refer the same client at once: whichever loses the race on the A-number's unique
    index retries and merges, instead of failing."""
    for n in range(3):
        client = CASE_OPEN.client.model_copy(update={"a_number": f"A20000000{n}"})
        cases = [
            CASE_OPEN.model_copy(update={"client": client, "external_id": f"{p}-case-{n}"}) for p in (P1, P2)
        ]
        responses = await asyncio.gather(
            *(api.submit(c, partner=p) for c, p in zip(cases, (P1, P2), strict=True))
        )
        decisions = [r.json() for r in responses]
        assert sorted(d["result"] for d in decisions) == ["created", "merged"], decisions
        assert decisions[0]["case_id"] == decisions[1]["case_id"]


# -- the same submissions by Kafka and by HTTP ----------------------------------------------------

_UUID = re.compile(r"^[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}$")


def _canonical(values: list[Any]) -> list[Any]:
    """``values`` with every UUID replaced by its order of first appearance: ids generated on each
    side differ, but which things share an id must not; times are when each side ran."""
    seen: dict[str, str] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items() if k not in ("received_at", "decided_at")}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str) and _UUID.match(node):
            return seen.setdefault(node, f"id-{len(seen)}")
        return node

    return [walk(v) for v in values]


def _same_path_cases() -> Iterator[tuple[Submission, dict[str, Any]]]:
    """A partner's feed with every kind of outcome, as (submission, fields to break it with)."""
    yield VOL_UPD, {}  # held: before its registration
    yield VOL_REG, {}  # created, and the held update applied
    yield VOL_REG.model_copy(update={"external_id": "other-vol"}), {}  # merged: same email
    yield VOL_REG.model_copy(update={"external_id": "bad-vol"}), {"email": "not-an-email", "phone": 12}
    yield CASE_OPEN, {}
    yield CASE_UPD, {}
    yield CASE_OPEN.model_copy(update={"external_id": "bad-case", "facility_code": "STWRTGX"}), {}
    yield CASE_CLOSE.model_copy(update={"closed_on": TODAY}), {}
    yield VOL_WD, {}


@pytest.mark.asyncio(loop_scope="session")
async def test_http_and_kafka_give_the_same_results(infra) -> None:  # type: ignore[no-untyped-def]
    async with (
        intake_db(infra.database_url, TODAY) as by_kafka,
        intake_db(infra.database_url, TODAY) as by_http,
    ):
        for db in (by_kafka, by_http):
            await db.add_partner(P1)
            await db.add_partner(P2)
        kafka_decisions, http_decisions, statuses = [], [], []
        async with api_on(by_http) as api:
            for submission, broken in _same_path_cases():
                event_id = uuid.uuid4()
                record = record_of(submission, P1, event_id=event_id)
                value = json.dumps(json.loads(record.value) | broken).encode()
                [decision] = await by_kafka.submit(
                    received(KafkaRecord(record.topic, record.key, record.headers, value))
                )
                kafka_decisions.append(decision.as_json())
                response = await api.submit(value, event_type=submission.event_type, event_id=event_id)
                http_decisions.append(response.json())
                statuses.append((decision.status, response.status_code))
        assert _canonical(http_decisions) == _canonical(kafka_decisions)
        assert [d["result"] for d in http_decisions] == [
            "held",
            "created",
            "merged",
            None,
            "created",
            "updated",
            None,
            "closed",
            "withdrawn",
        ]
        assert set(statuses) == {("accepted", 202), ("rejected", 422)}
        assert [r["code"] for r in http_decisions[3]["reasons"]] == ["email", "string_type"]

        def events(envelopes: list[Any]) -> list[Any]:
            return _canonical(
                [[e.topic, e.type, e.subject, json.loads(e.data.model_dump_json())] for e in envelopes]
            )

        kafka_events, http_events = await by_kafka.events(), await by_http.events()
        assert events(http_events) == events(kafka_events)
        assert len(http_events) == 9
