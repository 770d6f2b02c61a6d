"""Reporting's figures against PostgreSQL: equal to values computed directly from a generated history,
unchanged by redelivered or reordered events, suppressed in the public view, served as JSON and CSV."""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lastline_reporting import readmodel as rm
from lastline_reporting.app import MIGRATIONS, build
from lastline_reporting.consumers import Projector
from lastline_reporting.generations import Generations
from lastline_reporting.history import Fact, History, generate
from lastline_reporting.models import Dimension, Filters, View
from lastline_reporting.projections import COUNSEL_ROLES
from lastline_reporting.registry import BY_NAME, Reporting
from lastline_reporting.tables import ReportingTables
from lastline_shared import migrations
from lastline_shared.auth import issue_staff_token
from lastline_shared.consumer import EventProcessor
from lastline_shared.contracts.cases import CaseClosed, CaseOpened, CaseUpdated
from lastline_shared.contracts.enums import FacilityStatus
from lastline_shared.contracts.envelope import Envelope, KafkaRecord, decode
from lastline_shared.contracts.facilities import FacilityStatusChanged
from lastline_shared.contracts.matches import (
    CaseEscalated,
    MatchAccepted,
    MatchDeclined,
    MatchEnded,
    MatchExpired,
    MatchMade,
    MatchProposed,
    MatchRetracted,
    MentorAssigned,
)
from lastline_shared.contracts.notifications import NotificationFailed, NotificationSent
from lastline_shared.contracts.rejections import SubmissionRejected
from lastline_shared.contracts.volunteers import VolunteerRegistered, VolunteerUpdated, VolunteerWithdrawn
from lastline_shared.db import make_engine, make_session_factory, new_metadata
from lastline_shared.inbox import Inbox, inbox_table
from lastline_shared.outbox import Outbox, outbox_table
from lastline_shared.settings import ReportingSettings

pytestmark = pytest.mark.integration

HISTORY = generate(cases=300, volunteers=60, seed=11)


@dataclass(frozen=True)
class Rec:
    """A consumed record, as the processor sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass
class Db:
    schema: str
    engine: AsyncEngine
    generations: Generations
    projector: Projector
    reporting: Reporting
    processor: EventProcessor

    async def feed(self, records: Sequence[KafkaRecord], batch: int = 400) -> None:
        """Through the consumer's processor (inbox and all), in batches like Kafka's."""
        recs = [Rec(r.topic, 0, i, r.key, r.value, r.headers) for i, r in enumerate(records)]
        for start in range(0, len(recs), batch):
            await self.processor.process(recs[start : start + batch])

    async def tables(self) -> dict[str, list[Any]]:
        """Every read-model row of the current generation, sorted."""
        async with self.engine.connect() as conn:
            generation = await self.generations.current(conn)
            assert generation is not None
            out = {}
            for spec in rm.TABLES:
                rows = await conn.execute(text(f"SELECT * FROM {spec.qualified(self.schema, generation)}"))
                out[spec.name] = sorted(tuple(r) for r in rows)
            return out

    async def figure(self, name: str, by: Dimension | None = None, view: View = View.STAFF) -> list[Any]:
        response = await self.reporting.one(BY_NAME[name], by, view, Filters())
        return [row.model_dump() for row in response.rows]


@pytest_asyncio.fixture(loop_scope="session")
async def db(infra) -> AsyncIterator[Db]:  # type: ignore[no-untyped-def]
    schema = f"t_reporting_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(migrations.upgrade, MIGRATIONS, infra.database_url, schema)
    engine = make_engine(infra.database_url, schema)
    metadata = new_metadata()
    generations = Generations(ReportingTables(metadata), schema)
    projector = Projector(generations)
    processor = EventProcessor(
        consumer="reporting.facts",
        service="reporting-test",
        session_factory=make_session_factory(engine),
        inbox=Inbox(inbox_table(metadata), "reporting.facts"),
        outbox=Outbox(outbox_table(metadata), schema),
        handle_batch=projector.handle_batch,
    )
    try:
        yield Db(schema, engine, generations, projector, Reporting(engine, generations), processor)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


# --- figures computed directly from the events ------------------------------------------------------


def _percentile(values: list[float], p: float) -> float | None:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    pos = p * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _hours(a: datetime, b: datetime) -> float:
    return (a - b).total_seconds() / 3600


def _later(old: Fact | None, new: Fact) -> bool:
    return old is None or (new.at, new.event_id) > (old.at, old.event_id)


class Oracle:
    """The figures, computed by walking the facts in plain Python."""

    def __init__(self, history: History) -> None:
        self.cases: dict[uuid.UUID, dict[str, Any]] = defaultdict(dict)
        self.matches: dict[uuid.UUID, dict[str, Any]] = defaultdict(dict)
        self.proposals: dict[uuid.UUID, dict[str, Any]] = defaultdict(dict)
        self.volunteers: dict[uuid.UUID, dict[str, Any]] = defaultdict(dict)
        self.notifications: dict[uuid.UUID, dict[str, Any]] = defaultdict(dict)
        self.pairs: dict[uuid.UUID, Fact] = {}
        self.escalations: list[Fact] = []
        self.rejections: list[SubmissionRejected] = []
        self.facilities: dict[str, Fact] = {}
        for fact in history.ordered():
            self._apply(fact)

    def _apply(self, fact: Fact) -> None:
        e, at = fact.event, fact.at
        if isinstance(e, CaseOpened | CaseUpdated):
            case = self.cases[e.case_id]
            case["opened_at"] = min(case.get("opened_at", at), at)
            if _later(case.get("facts"), fact):
                case["facts"] = fact
        elif isinstance(e, CaseClosed):
            case = self.cases[e.case_id]
            if _later(case.get("closed"), fact):
                case["closed"] = fact
        elif isinstance(e, MatchProposed):
            self.proposals[e.proposal_id]["proposed"] = at
            case = self.cases[e.case_id]
            case["first_proposed_at"] = min(case.get("first_proposed_at", at), at)
            self.proposals[e.proposal_id]["case_id"] = e.case_id
        elif isinstance(e, MatchAccepted | MatchDeclined | MatchExpired | MatchRetracted):
            p = self.proposals[e.proposal_id]
            p["case_id"] = e.case_id
            p.setdefault(type(e).__name__, e)
        elif isinstance(e, MatchMade):
            m = self.matches[e.match_id]
            m.update(case_id=e.case_id, volunteer_id=e.volunteer_id, role=e.role, made_at=at)
            if e.role in COUNSEL_ROLES:
                case = self.cases[e.case_id]
                case["placed_at"] = min(case.get("placed_at", at), at)
        elif isinstance(e, MatchEnded):
            self.matches[e.match_id].setdefault("ended_at", at)
        elif isinstance(e, MentorAssigned):
            if _later(self.pairs.get(e.match_id), fact):
                self.pairs[e.match_id] = fact
        elif isinstance(e, CaseEscalated):
            self.escalations.append(fact)
        elif isinstance(e, VolunteerRegistered | VolunteerUpdated):
            v = self.volunteers[e.volunteer_id]
            v["profile"], v["status"] = e, "active"
        elif isinstance(e, VolunteerWithdrawn):
            self.volunteers[e.volunteer_id]["status"] = "withdrawn"
        elif isinstance(e, NotificationSent | NotificationFailed):
            n = self.notifications[e.notification_id]
            n["key"] = (e.channel.value, e.template)
            if isinstance(e, NotificationSent):
                n.setdefault("sent", at)
            else:
                n["given_up"] = not e.will_retry
        elif isinstance(e, SubmissionRejected):
            self.rejections.append(e)
        elif isinstance(e, FacilityStatusChanged):
            self.facilities[e.facility_code] = fact

    def has_counsel(self, case_id: uuid.UUID) -> bool:
        return any(
            m["case_id"] == case_id and m["role"] in COUNSEL_ROLES and "ended_at" not in m
            for m in self.matches.values()
        )

    def known_cases(self) -> dict[uuid.UUID, dict[str, Any]]:
        return {k: c for k, c in self.cases.items() if "opened_at" in c}

    def summary(self) -> dict[str, Any]:
        cases = self.known_cases()
        open_ = [k for k, c in cases.items() if "closed" not in c]
        without = [k for k in open_ if not self.has_counsel(k)]
        placed = [_hours(c["placed_at"], c["opened_at"]) for c in cases.values() if "placed_at" in c]
        active = [v for v in self.volunteers.values() if "profile" in v and v["status"] == "active"]
        paused = [f for f in self.facilities.values() if f.event.status is FacilityStatus.PAUSED]  # type: ignore[attr-defined]
        return {
            "referred": len(cases),
            "open": len(open_),
            "without_counsel": len(without),
            "placed": len(placed),
            "closed": len(cases) - len(open_),
            "median_hours_to_placement": _percentile(placed, 0.5),
            "active_volunteers": len(active),
            "paused_facilities": len(paused),
        }

    def cases_by_facility(self) -> dict[str, tuple[int, int, int, int]]:
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for k, c in self.known_cases().items():
            row = out[c["facts"].event.facility_code]
            is_open = "closed" not in c
            row[0] += 1
            row[1] += "placed_at" in c
            row[2] += is_open
            row[3] += is_open and not self.has_counsel(k)
        return {key: tuple(v) for key, v in out.items()}  # type: ignore[misc]

    def time_to_match(self) -> tuple[float | None, float | None, float | None, float | None]:
        cases = self.known_cases().values()
        prop = [_hours(c["first_proposed_at"], c["opened_at"]) for c in cases if "first_proposed_at" in c]
        plac = [_hours(c["placed_at"], c["opened_at"]) for c in cases if "placed_at" in c]
        return (
            _percentile(prop, 0.5),
            _percentile(prop, 0.9),
            _percentile(plac, 0.5),
            _percentile(plac, 0.9),
        )

    def proposals_by_outcome(self) -> Counter[tuple[str, str | None]]:
        counts: Counter[tuple[str, str | None]] = Counter()
        known = self.known_cases()
        for p in self.proposals.values():
            if p["case_id"] not in known:
                continue
            if "MatchAccepted" in p:
                counts["accepted", None] += 1
            elif "MatchDeclined" in p:
                counts["declined", p["MatchDeclined"].reason.value] += 1
            elif "MatchExpired" in p:
                counts["expired", None] += 1
            elif "MatchRetracted" in p:
                counts["retracted", p["MatchRetracted"].reason.value] += 1
            else:
                counts["open", None] += 1
        return counts

    def escalations_by_level(self) -> dict[tuple[int, str | None], int]:
        out: Counter[tuple[int, str | None]] = Counter()
        for fact in self.escalations:
            e = fact.event
            assert isinstance(e, CaseEscalated)
            out[int(e.level), None] += 1
            for cause in e.causes or ("unknown",):
                out[int(e.level), str(cause)] += 1
        return dict(out)

    def volunteers_by_role(self) -> dict[str, tuple[int, int, int, int, int]]:
        load = Counter(
            m["volunteer_id"] for m in self.matches.values() if "made_at" in m and "ended_at" not in m
        )
        mentees: Counter[uuid.UUID] = Counter()
        for match_id, fact in self.pairs.items():
            m = self.matches.get(match_id, {})
            if "made_at" in m and "ended_at" not in m:
                mentees[fact.event.mentor_id] += 1  # type: ignore[attr-defined]
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
        for vid, v in self.volunteers.items():
            if "profile" not in v:
                continue
            profile = v["profile"]
            active = v["status"] == "active"
            for role in profile.roles:
                row = out[role.value]
                row[0] += 1
                row[1] += active
                row[2] += active and load[vid] >= profile.max_active_cases
                row[3] += active and mentees[vid] > 0
                row[4] += v["status"] == "withdrawn"
        return {k: tuple(v) for k, v in out.items()}  # type: ignore[misc]

    def outcomes(self) -> dict[str, tuple[int, int]]:
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for c in self.known_cases().values():
            if "closed" in c:
                row = out[c["closed"].event.outcome.value]
                row[0] += 1
                row[1] += "placed_at" in c and c["placed_at"] <= c["closed"].at
        return {k: tuple(v) for k, v in out.items()}  # type: ignore[misc]

    def notifications_by_template(self) -> dict[tuple[str, str], tuple[int, int, int, int]]:
        out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for n in self.notifications.values():
            row = out[n["key"]]
            row[0] += 1
            row[1] += "sent" in n
            row[2] += "sent" not in n and n.get("given_up", False)
            row[3] += "sent" not in n and not n.get("given_up", False)
        return {k: tuple(v) for k, v in out.items()}  # type: ignore[misc]

    def trend(self) -> list[tuple[date, int, int]]:
        """Open and without counsel at the end of each week (cases represented while open)."""
        cases = self.known_cases()
        spans: dict[uuid.UUID, tuple[datetime, datetime]] = {}
        for k, c in cases.items():
            counsel = [
                m
                for m in self.matches.values()
                if m["case_id"] == k and m["role"] in COUNSEL_ROLES and "made_at" in m
            ]
            if not counsel:
                continue
            start = max(min(m["made_at"] for m in counsel), c["opened_at"])
            ends = [m.get("ended_at") for m in counsel]
            end = datetime.max.replace(tzinfo=UTC) if None in ends else max(e for e in ends if e is not None)
            if "closed" in c:
                end = min(end, c["closed"].at)
            if start < end:
                spans[k] = (start, end)
        times = [c["opened_at"] for c in cases.values()] + [
            c["closed"].at for c in cases.values() if "closed" in c
        ]
        times += [t for s in spans.values() for t in s if t.year < 9999]
        week = lambda t: (t - timedelta(days=t.weekday())).date()  # noqa: E731
        first, last = min(map(week, times)), max(map(week, times))
        out = []
        monday = first
        while monday <= last:
            end_of_week = datetime.combine(monday + timedelta(days=7), datetime.min.time(), UTC)
            open_ = [
                k
                for k, c in cases.items()
                if c["opened_at"] < end_of_week and not ("closed" in c and c["closed"].at < end_of_week)
            ]
            represented = [k for k in open_ if k in spans and spans[k][0] < end_of_week <= spans[k][1]]
            out.append((monday, len(open_), len(open_) - len(represented)))
            monday += timedelta(days=7)
        return out


ORACLE = Oracle(HISTORY)
RECORDS = list(HISTORY.records())


def _close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 0.011)


async def _figures_match_the_oracle(db: Db) -> None:
    [summary] = await db.figure("summary")
    expected = ORACLE.summary()
    assert _close(summary.pop("median_hours_to_placement"), expected.pop("median_hours_to_placement"))
    assert summary.pop("without_counsel_share") == round(expected["without_counsel"] / expected["open"], 4)
    assert summary == expected

    by_facility = {
        r["key"]: (r["referred"], r["placed"], r["open"], r["unplaced"]) for r in await db.figure("cases")
    }
    assert by_facility == ORACLE.cases_by_facility()

    [ttm] = await db.figure("time-to-match", Dimension.ALL)
    got = (
        ttm["median_hours_to_proposal"],
        ttm["p90_hours_to_proposal"],
        ttm["median_hours_to_placement"],
        ttm["p90_hours_to_placement"],
    )
    assert all(_close(a, b) for a, b in zip(got, ORACLE.time_to_match(), strict=True)), (
        got,
        ORACLE.time_to_match(),
    )

    proposals = {(r["outcome"], r["reason"]): r["proposals"] for r in await db.figure("proposals")}
    assert proposals == dict(ORACLE.proposals_by_outcome())

    escalations = {(r["level"], r["cause"]): r["escalations"] for r in await db.figure("escalations")}
    assert escalations == ORACLE.escalations_by_level()

    volunteers = {
        r["key"]: (r["registered"], r["active"], r["at_capacity"], r["mentoring"], r["withdrawn"])
        for r in await db.figure("volunteers", Dimension.ROLE)
    }
    assert volunteers == ORACLE.volunteers_by_role()

    outcomes = {r["outcome"]: (r["closed"], r["with_counsel"]) for r in await db.figure("outcomes")}
    assert outcomes == ORACLE.outcomes()

    notifications = {
        (r["channel"], r["template"]): (r["total"], r["sent"], r["failed"], r["pending"])
        for r in await db.figure("notifications")
    }
    assert notifications == ORACLE.notifications_by_template()

    rejections = {(r["partner_id"], r["code"]): r["submissions"] for r in await db.figure("rejections")}
    expected_rejections: Counter[tuple[str, str | None]] = Counter()
    for rejection in ORACLE.rejections:
        expected_rejections[rejection.partner_id, None] += 1
        for code in {reason.code for reason in rejection.reasons}:
            expected_rejections[rejection.partner_id, code] += 1
    assert rejections == dict(expected_rejections)

    [mentors] = await db.figure("mentors")
    assert mentors["pairs"] == len(ORACLE.pairs)

    trend = [(r["week"], r["open"], r["without_counsel"]) for r in await db.figure("unrepresented-trend")]
    assert trend == ORACLE.trend()


@pytest.mark.asyncio(loop_scope="session")
async def test_figures_equal_those_computed_from_the_history(db: Db) -> None:
    await db.feed(RECORDS)
    await _figures_match_the_oracle(db)


@pytest.mark.asyncio(loop_scope="session")
async def test_redelivered_and_reordered_events_change_nothing(db: Db) -> None:
    await db.feed(RECORDS)
    before = await db.tables()
    # Redelivered through the consumer: the inbox skips every one.
    await db.feed(RECORDS[::3])
    assert await db.tables() == before
    # Applied again behind the inbox's back, shuffled: the rows merge to the same values.
    envelopes = [decode(r.topic, r.key, list(r.headers), r.value) for r in RECORDS]
    random.Random(5).shuffle(envelopes)
    sessions = make_session_factory(db.engine)
    for start in range(0, len(envelopes), 700):
        async with sessions.begin() as session:
            await db.projector.handle_batch(
                session, [e for e in envelopes[start : start + 700] if isinstance(e, Envelope)]
            )
    assert await db.tables() == before


@pytest.mark.asyncio(loop_scope="session")
async def test_public_view_suppresses_small_counts(db: Db) -> None:
    await db.feed(RECORDS)
    staff = await db.figure("escalations")
    public = await db.figure("escalations", view=View.PUBLIC)
    assert len(staff) == len(public)
    for s, p in zip(staff, public, strict=True):
        for name in ("escalations", "cases"):
            if 0 < s[name] < 5:
                assert p[name] is None
            elif p[name] is not None:
                assert p[name] == s[name]
    assert any(p["escalations"] is None for p in public)
    for row in await db.figure("facilities", view=View.PUBLIC):
        assert row["note"] is None
        for name in ("referred", "open", "without_counsel", "placed"):
            assert row[name] is None or row[name] == 0 or row[name] >= 5


@pytest.mark.asyncio(loop_scope="session")
async def test_filters_narrow_the_cases(db: Db) -> None:
    await db.feed(RECORDS)
    facility = "KRO"
    response = await db.reporting.one(BY_NAME["summary"], None, View.STAFF, Filters(facility=facility))
    assert response.rows[0].referred == ORACLE.cases_by_facility()[facility][0]
    day = date(2026, 1, 20)
    response = await db.reporting.one(
        BY_NAME["summary"], None, View.STAFF, Filters(date_from=day, date_to=day)
    )
    opened = [c for c in ORACLE.known_cases().values() if c["opened_at"].date() == day]
    assert response.rows[0].referred == len(opened)


@pytest.mark.asyncio(loop_scope="session")
async def test_api_serves_staff_and_public_views_as_json_and_csv(db: Db, infra) -> None:  # type: ignore[no-untyped-def]
    await db.feed(RECORDS)
    settings = ReportingSettings(
        service_name=f"reporting-{uuid.uuid4().hex[:6]}", db_schema=db.schema, database_url=infra.database_url
    )
    runtime = build(settings)
    app = runtime.http_app()  # its lifespan is not run: the routes only, no consumers
    token = issue_staff_token(settings, "ana@example.org")
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as client:
            assert (await client.get("/api/v1/staff/summary")).status_code == 401
            assert (await client.get("/api/v1/public/notifications")).status_code == 404  # staff only
            staff = await client.get(
                "/api/v1/staff/cases?by=partner", headers={"Authorization": f"Bearer {token}"}
            )
            assert staff.status_code == 200, staff.text
            body = staff.json()
            assert (body["view"], body["by"], body["suppressed_below"]) == ("staff", "partner", None)
            public = await client.get("/api/v1/public/cases", params={"by": "week", "facility": "KRO"})
            assert public.json()["suppressed_below"] == 5
            assert public.json()["filters"]["facility"] == "KRO"
            bad = await client.get("/api/v1/public/cases", params={"by": "role"})
            assert bad.status_code == 422
            assert bad.headers["content-type"] == "application/problem+json"
            csv = await client.get("/api/v1/public/facilities.csv")
            assert csv.headers["content-type"].startswith("text/csv")
            assert csv.text.splitlines()[0].startswith("facility_code,name,city,state,referred")
            page = await client.get("/dashboard")
            assert page.status_code == 200
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert "Stewart Detention Center" in page.text
    finally:
        await runtime.engine.dispose()
