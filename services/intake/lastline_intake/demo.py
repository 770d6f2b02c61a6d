"""A demo network in real time: partners, a few hundred volunteers, then cases arriving one by one.

``lastline-intake simulate`` runs it (``make run`` too, as its own supervised process). Everything is
synthetic (:class:`~lastline_intake.simulate.Network`); facility and court codes are the reference
data's real ones. Partners publish on their Kafka topics (``--via kafka``) or call the HTTP API with an
API key (``--via http``), exactly as a partner's own system would.

Most cases can be placed; some cannot, so that escalations appear: a client who speaks only Ixil (no
volunteer does, and an interpreter is needed), a case at a facility the demo pauses (phones cut), a
hearing in two days. A few are rejected by intake's rules (a hearing date in the past). With
``answer_from`` (the mail catcher's URL) the demo's volunteers answer the proposals they are emailed
(:mod:`lastline_intake.demo_volunteers`).

Running it again is safe: existing partners are reused, the same volunteers are registered again (no
change), and the cases are new ones (a fresh run tag in their ids and another seed for the clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol

import httpx
from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from lastline_intake.cli import create_partner
from lastline_intake.demo_volunteers import Volunteers
from lastline_intake.partners import PartnerExists, PartnerKind, PartnerRepository
from lastline_intake.simulate import Network
from lastline_shared.auth import issue_staff_token
from lastline_shared.clock import network_today
from lastline_shared.contracts.envelope import KafkaRecord, encode
from lastline_shared.contracts.submissions import CaseOpenedSubmission, VolunteerRegisteredSubmission
from lastline_shared.runtime import ServiceRuntime
from lastline_shared.settings import ServiceSettings

Via = Literal["kafka", "http"]
CaseKind = Literal["placeable", "rare_language", "paused_facility", "hearing_in_2_days", "rejected"]


@dataclass(frozen=True)
class DemoPartner:
    partner_id: str
    name: str
    kind: PartnerKind
    email: str


# Fictional organizations, one per region of the simulator's partners (in its order: Southeast, Texas,
# Gulf Coast, Southwest, Northeast), so each refers cases from real facilities near it.
DEMO_PARTNERS = (
    DemoPartner(
        "southeast-detention-project",
        "Southeast Detention Project",
        PartnerKind.detention_project,
        "intake@southeast-detention-project.example.org",
    ),
    DemoPartner(
        "rio-grande-law-clinic",
        "Rio Grande Law School Immigration Clinic",
        PartnerKind.clinic,
        "clinic@rio-grande-law-clinic.example.org",
    ),
    DemoPartner(
        "gulf-coast-pro-bono",
        "Gulf Coast Pro Bono Partners LLP",
        PartnerKind.law_firm,
        "probono@gulf-coast-pro-bono.example.com",
    ),
    DemoPartner(
        "desert-southwest-bar",
        "Desert Southwest Bar Association",
        PartnerKind.bar_association,
        "volunteer@desert-southwest-bar.example.org",
    ),
    DemoPartner(
        "northeast-defenders",
        "Northeast Immigrant Defense Network",
        PartnerKind.other,
        "referrals@northeast-defenders.example.org",
    ),
)

CASE_MIX: tuple[tuple[CaseKind, float], ...] = (
    ("placeable", 80),
    ("rare_language", 5),
    ("paused_facility", 5),
    ("hearing_in_2_days", 5),
    ("rejected", 5),
)
RARE_LANGUAGE = "ixl"
"""Ixil, a Mayan language of Guatemala's highlands: the simulator's volunteers never speak it."""
# Hard cases get a hearing within 14 days, so that matching escalates them at its next check.
HARD_CASE_HEARING_DAYS = (6, 13)


@dataclass(frozen=True)
class DemoCase:
    kind: CaseKind
    partner_id: str
    submission: CaseOpenedSubmission


class DemoPlan:
    """What the demo sends, decided up front from a seed (pure: the unit tests read it)."""

    def __init__(
        self,
        partner_ids: Sequence[str],
        *,
        today: date,
        seed: int,
        run_tag: str,
    ) -> None:
        self.partner_ids = tuple(partner_ids)
        self.today = today
        self.run_tag = run_tag
        # Volunteers are the same every run (registering them again changes nothing); clients are
        # new ones each run, or they would be merged by A-number into the last run's cases.
        self._people = Network(self.partner_ids, today=today, seed=seed)
        self._clients = Network(self.partner_ids, today=today, seed=f"{seed}:{run_tag}")
        self._rng = random.Random(f"{seed}:{run_tag}:mix")  # noqa: S311 (not secrets)
        self.paused_facility: str | None = None
        self._mix: list[tuple[CaseKind, float]] = [(k, w) for k, w in CASE_MIX if k != "paused_facility"]

    def facility_to_pause(self) -> str:
        """A facility where the first partner's cases are (the one the demo pauses)."""
        return min(f.code for f in self._people.facilities(self.partner_ids[0]))

    def facility_paused(self, code: str) -> None:
        """``code`` is paused: some cases go there (without a paused facility, none are of that kind)."""
        self.paused_facility = code
        self._mix = list(CASE_MIX)

    def volunteers(self, count: int) -> Iterator[tuple[str, VolunteerRegisteredSubmission]]:
        """``count`` volunteers, spread evenly over the partners."""
        for n in range(count):
            partner_id = self.partner_ids[n % len(self.partner_ids)]
            yield partner_id, self._people.volunteer(partner_id)

    def cases(self, count: int) -> Iterator[DemoCase]:
        for n in range(1, count + 1):
            kind: CaseKind = self._rng.choices([k for k, _ in self._mix], [w for _, w in self._mix])[0]
            yield self._case(kind, f"demo-{self.run_tag}-{n:05d}")

    def _case(self, kind: CaseKind, external_id: str) -> DemoCase:
        rng, today = self._rng, self.today
        partner_id = self.partner_ids[0] if kind == "paused_facility" else rng.choice(self.partner_ids)
        if kind == "placeable":
            days = rng.randint(5, 14) if rng.random() < 0.25 else rng.randint(15, 60)
        elif kind == "hearing_in_2_days":
            days = 2
        elif kind == "rejected":
            days = -rng.randint(3, 30)  # intake's rules refuse a hearing in the past
        else:
            days = rng.randint(*HARD_CASE_HEARING_DAYS)
        case = self._clients.case(partner_id, hearing=today + timedelta(days=days), external_id=external_id)
        if kind == "rare_language":
            needs = [str(n) for n in case.needs if n != "interpreter"]
            client = case.client.model_copy(update={"country_of_nationality": "GT"})
            case = _revalidate(
                case,
                client=client,
                languages=[RARE_LANGUAGE],
                needs=["interpreter", *needs],
                country_conditions=["GT"] if case.country_conditions else [],
            )
        elif kind == "paused_facility":
            assert self.paused_facility is not None
            code = self.paused_facility
            case = _revalidate(case, facility_code=code, court_code=self._clients.court_of(code))
        return DemoCase(kind, partner_id, case)


def _revalidate(case: CaseOpenedSubmission, **changes: Any) -> CaseOpenedSubmission:
    return CaseOpenedSubmission.model_validate(case.model_dump() | changes)


def run_tag(now: datetime | None = None) -> str:
    """A short, time-ordered tag for this run's case ids (``20261206t0412``)."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dt%H%M%S").lower()


# -- sending -----------------------------------------------------------------------------------------


class Sender(Protocol):
    async def send(self, partner_id: str, record: KafkaRecord) -> str:
        """Send one partner record; returns what became of it (``sent``, ``accepted``, ``rejected``...)."""
        ...

    async def close(self) -> None: ...


class KafkaSender:
    """Publishes on the partner's ``partner.<id>.submissions`` topic."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    @classmethod
    async def start(cls, bootstrap_servers: str) -> KafkaSender:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True)
        await producer.start()
        return cls(producer)

    async def send(self, partner_id: str, record: KafkaRecord) -> str:
        await self._producer.send_and_wait(
            record.topic, record.value, key=record.key, headers=list(record.headers)
        )
        return "sent"

    async def close(self) -> None:
        await self._producer.stop()


class HttpSender:
    """``POST /v1/submissions`` in CloudEvents binary mode: the Kafka record's headers and value."""

    def __init__(self, intake_url: str, keys: dict[str, str]) -> None:
        self._client = httpx.AsyncClient(base_url=intake_url, timeout=30)
        self._keys = keys

    async def send(self, partner_id: str, record: KafkaRecord) -> str:
        headers = {name.replace("_", "-"): value.decode() for name, value in record.headers}
        headers["Authorization"] = f"Bearer {self._keys[partner_id]}"
        response = await self._client.post("/v1/submissions", content=record.value, headers=headers)
        if response.status_code == 422:
            return "rejected"
        response.raise_for_status()
        return "duplicate" if response.json().get("duplicate") else "accepted"

    async def close(self) -> None:
        await self._client.aclose()


def _record(partner_id: str, submission: Any) -> KafkaRecord:
    return encode(submission, source=f"/partners/{partner_id}", event_id=uuid.uuid4())


# -- partners and facility ---------------------------------------------------------------------------


async def ensure_partners(
    runtime: ServiceRuntime, repository: PartnerRepository, partners: Sequence[DemoPartner], *, keys: bool
) -> dict[str, str]:
    """Create the partners that do not exist yet (with their topics); with ``keys``, an API key for
    each (a new one for a partner that existed: only hashes are stored)."""
    issued: dict[str, str] = {}
    await runtime.migrate()
    for partner in partners:
        try:
            key = await create_partner(
                runtime,
                repository,
                partner.partner_id,
                name=partner.name,
                kind=partner.kind,
                email=partner.email,
            )
        except PartnerExists:
            if keys:
                async with runtime.sessions() as session, session.begin():
                    key = await repository.issue_key(session, partner.partner_id)
            else:
                continue
        issued[partner.partner_id] = key
    return issued if keys else {}


async def set_facility(intake_url: str, settings: ServiceSettings, code: str, *, paused: bool) -> bool:
    """Pause placements at ``code`` (as staff would when its phones are cut) or reopen it, through
    intake's admin API; False if intake refused or did not answer."""
    token = issue_staff_token(settings, "lastline-demo", role="admin", ttl=timedelta(minutes=5))
    body: dict[str, str] = {"status": "open"}
    if paused:
        body = {"status": "paused", "reason": "phone_access_cut", "note": "Demo: phones down since Monday"}
    try:
        async with httpx.AsyncClient(base_url=intake_url, timeout=30) as client:
            response = await client.put(
                f"/v1/facilities/{code}/status", json=body, headers={"Authorization": f"Bearer {token}"}
            )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


# -- progress ----------------------------------------------------------------------------------------


class Report:
    """A progress bar on a terminal; a line now and then otherwise (a log file, a pipe)."""

    def __init__(self, *, bar: bool | None = None) -> None:
        self.console = Console(stderr=False)
        self.bar = self.console.is_terminal if bar is None else bar
        self.progress = Progress(
            TextColumn("{task.description:<11}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}"),
            console=self.console,
            disable=not self.bar,
        )
        self.counts: Counter[str] = Counter()
        self._tasks: dict[str, tuple[TaskID, int]] = {}
        self._last_line = 0.0

    def __enter__(self) -> Report:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def say(self, text: str) -> None:
        if self.bar:
            self.progress.console.print(text)
        else:
            print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)

    def task(self, name: str, total: int) -> None:
        self._tasks[name] = (self.progress.add_task(name, total=total, detail=""), total)

    def advance(self, name: str, outcome: str) -> None:
        self.counts[f"{name}:{outcome}"] += 1
        task, total = self._tasks[name]
        done = sum(v for k, v in self.counts.items() if k.startswith(f"{name}:"))
        self.progress.update(task, advance=1, detail=self.detail(name))
        if not self.bar and (done == total or time.monotonic() - self._last_line >= 10):
            self._last_line = time.monotonic()
            self.say(f"{name} {done}/{total} {self.detail(name)}")

    def answered(self, outcome: str) -> None:
        self.counts[f"answers:{outcome}"] += 1
        if "cases" in self._tasks:
            self.progress.update(self._tasks["cases"][0], detail=self.detail("cases"))
        if not self.bar and time.monotonic() - self._last_line >= 10:
            self._last_line = time.monotonic()
            self.say(f"volunteers answered: {self.detail('answers')}")

    def detail(self, name: str) -> str:
        parts = [
            f"{k.split(':', 1)[1]} {v}" for k, v in sorted(self.counts.items()) if k.startswith(f"{name}:")
        ]
        if name == "cases":
            answers = self.detail("answers")
            parts += [f"· answers: {answers}"] if answers else []
        return " ".join(parts)


# -- the run -----------------------------------------------------------------------------------------


@dataclass
class Options:
    partners: tuple[str, ...] = ()
    """Partner ids; none: the demo network's partners."""
    volunteers: int = 300
    cases: int = 300
    rate: float = 0.5
    """Cases per second, on average (each gap is random, between half and one and a half times)."""
    via: Via = "kafka"
    intake_url: str = "http://127.0.0.1:8001"
    api_key: str | None = None
    """Send as the one partner this key belongs to (``--via http``) without touching the database."""
    seed: int = 7
    answer_from: str | None = None
    """The mail catcher's URL: the volunteers answer the proposals emailed there."""
    answer_within_s: float = 8.0
    accept_share: float = 0.85
    matching_url: str | None = None
    """Where the answers go when the links' public address is not reachable from here (Docker)."""
    stay: bool = False
    """Keep answering proposals after the last case until stopped."""
    linger_s: float = 30.0
    """Without ``stay``: keep answering this long after the last case."""
    bar: bool | None = None
    tag: str = field(default_factory=run_tag)


def _partners(ids: Sequence[str]) -> list[DemoPartner]:
    if not ids:
        return list(DEMO_PARTNERS)
    known = {p.partner_id: p for p in DEMO_PARTNERS}
    return [
        known.get(pid)
        or DemoPartner(pid, pid.replace("-", " ").title(), PartnerKind.other, f"ops@{pid}.example.org")
        for pid in ids
    ]


async def run(runtime: ServiceRuntime, repository: PartnerRepository, options: Options) -> Counter[str]:
    """The whole demo; returns the counts (``cases:accepted``, ``answers:accepted``, ...)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settings = runtime.settings
    # One line per request would bury the progress (and copy the signed links into the log).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    partners = _partners(options.partners)
    partner_ids = [p.partner_id for p in partners]
    report = Report(bar=options.bar)
    if options.api_key is not None:
        if len(partners) != 1 or options.via != "http":
            raise ValueError("--api-key sends over HTTP as one partner: add --via http and its --partner")
        keys = {partner_ids[0]: options.api_key}
    else:
        keys = await ensure_partners(runtime, repository, partners, keys=options.via == "http")
        await runtime.engine.dispose()
        report.say(f"partners: {', '.join(partner_ids)}")
    today = network_today(getattr(settings, "network_timezone", "America/New_York"))()
    plan = DemoPlan(partner_ids, today=today, seed=options.seed, run_tag=options.tag)
    if options.api_key is None:  # pausing is staff's: not for a partner's key
        facility = plan.facility_to_pause()
        if await set_facility(options.intake_url, settings, facility, paused=True):
            plan.facility_paused(facility)
            report.say(f"facility {facility} paused (its phones are cut): its cases cannot be placed")
        else:
            report.say(f"could not pause {facility} through {options.intake_url}: no paused-facility cases")

    sender: Sender = (
        await KafkaSender.start(settings.kafka_bootstrap_servers)
        if options.via == "kafka"
        else HttpSender(options.intake_url, keys)
    )
    answering: asyncio.Task[None] | None = None
    with report:
        if options.answer_from:
            volunteers = Volunteers(
                options.answer_from,
                accept_share=options.accept_share,
                answer_within_s=options.answer_within_s,
                seed=options.seed,
                matching_url=options.matching_url,
            )
            answering = asyncio.create_task(volunteers.run(stop, report.answered))
        try:
            await _send_all(plan, options, sender, report, stop)
            if answering is not None and not stop.is_set():
                if options.stay:
                    report.say("all cases sent; the volunteers keep answering until stopped")
                    await stop.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), options.linger_s)
        finally:
            stop.set()
            if answering is not None:
                await asyncio.gather(answering, return_exceptions=True)
            await sender.close()
            # Phones restored: a stopped demo leaves no facility paused on the shared topics.
            paused = plan.paused_facility
            if paused and await set_facility(options.intake_url, settings, paused, paused=False):
                report.say(f"facility {paused} reopened")
    return report.counts


async def _send_all(
    plan: DemoPlan, options: Options, sender: Sender, report: Report, stop: asyncio.Event
) -> None:
    report.task("volunteers", options.volunteers)
    report.task("cases", options.cases)
    for partner_id, volunteer in plan.volunteers(options.volunteers):
        if stop.is_set():
            return
        report.advance("volunteers", await sender.send(partner_id, _record(partner_id, volunteer)))
    rng = random.Random(options.seed)  # noqa: S311 (not secrets)
    for case in plan.cases(options.cases):
        if stop.is_set():
            return
        report.advance("cases", await sender.send(case.partner_id, _record(case.partner_id, case.submission)))
        report.counts[f"kinds:{case.kind}"] += 1
        gap = rng.uniform(0.5, 1.5) / options.rate
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), gap)
