"""The whole platform under load: partners' submissions through intake, matching, notifications and
reporting, each its own process, beside a raw aiokafka consume-and-produce loop in the same run.

A load generator publishes valid volunteer registrations and case openings (every case matchable: the
first volunteers speak each case language and work remotely) on 3 partners' ``submissions`` topics, at a
set rate or all at once. For each submission the bench follows its way through the system:

- intake: its canonical event on ``volunteers`` or ``cases`` (Kafka timestamp: published by the relay);
- matching: the case's first ``match-proposed`` on ``matches`` (Kafka timestamp) that the run's own
  matching made (other runs' matching services propose on the run's cases too);
- notifications: that proposal's email accepted by an in-process aiosmtpd server (the proposal id read
  from the accept link of the message's text part, parsed with the ``email`` package);
- reporting: the first event on the dashboard's stream (``/dashboard/stream``) after the reporting
  transaction that applied the event (its inbox row's time; underestimates by at most that
  transaction's duration, as the stream carries no event ids).

A submission is through when the last of these happened; events/s end to end is the submissions of a
phase over the time from the first published to the last through. Each service runs under its own
name, schema and consumer groups, started at the end of the shared topics (their history is skipped).
Per-process CPU (``/proc/<pid>/stat``) and the peak consumer lag of each group show what limits it.

``python -m bench.platform --rate 100 --duration 60 --burst 0`` runs one steady phase alone; with no
``--rate`` it runs the default phases (1,000/s for 3 s, 100/s for 20 s, a burst of 3,000).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import email
import email.message
import email.policy
import os
import queue
import random
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiosmtpd.controller import Controller

from bench.intake import raw_loop
from bench.notifications import free_port
from bench.results import Figure, machine
from lastline_infra import InfraEndpoints, Layout, create_topics
from lastline_infra.kafka import kafka_pid
from lastline_infra.platform import ServiceProcess, wait_all_ready
from lastline_infra.postgres import postgres_pid
from lastline_shared import reference
from lastline_shared.clock import network_today
from lastline_shared.contracts.enums import CaseType, ExperienceLevel, PracticeArea, VolunteerRole
from lastline_shared.contracts.envelope import KafkaRecord, encode
from lastline_shared.contracts.submissions import CaseOpenedSubmission, Client, VolunteerRegisteredSubmission
from lastline_shared.contracts.topics import (
    REJECTIONS_PATTERN,
    SUBMISSIONS_PATTERN,
    partner_topic_partitions,
    shared_topic_partitions,
    submissions_topic,
)
from lastline_shared.db import asyncpg_dsn
from lastline_shared.kafka_admin import end_offsets, ensure_topics, start_group_at_end

PARTNERS = 3
PARTITIONS = 12
SEED_VOLUNTEERS = 300
CASES_SHARE = 0.2
DEFAULT_RATES = ((1000.0, 3.0), (100.0, 20.0))  # (submissions/s, seconds)
BURST = 3_000
# A phase that is not through by then is reported with what got through.
DRAIN_S = float(os.environ.get("BENCH_PLATFORM_DRAIN_S", "180"))
LANGUAGES = ["es"] * 7 + ["en", "pt", "fr", "ht"]
CASE_TYPES = (CaseType.ASYLUM, CaseType.BOND, CaseType.REMOVAL_DEFENSE)
FACILITIES = [f for f in reference.all_facilities() if f.court][:12]
SERVICES = ("intake", "matching", "notifications", "reporting")
READY_WITHIN_S = 300.0  # four services migrating at once on 2 cores that other work shares
IDLE_S = 10.0  # CPU with no load: the services' own timers and pollers, others' traffic on shared topics


# -- the load -----------------------------------------------------------------------------------


@dataclass
class Submission:
    partner: str
    external_id: str
    is_case: bool
    record: KafkaRecord
    sent: float = 0.0  # time.time() when handed to the producer

    @property
    def key(self) -> tuple[str, str]:
        return self.partner, self.external_id


class Load:
    """Valid registrations and case openings; every case is one some volunteer can take."""

    def __init__(self, run: str, partners: Sequence[str], today: date, cases_share: float) -> None:
        self.run, self.partners, self.today, self.cases_share = run, partners, today, cases_share
        self.rng = random.Random(7)
        self.n = 0

    def _partner(self) -> str:
        return self.partners[self.n % len(self.partners)]

    def volunteer(self, language: str | None = None) -> Submission:
        """An experienced attorney in every practice area; ``language`` given: remote and speaking it."""
        rng, self.n = self.rng, self.n + 1
        spoken = language or ("es" if rng.random() < 0.7 else rng.choice(LANGUAGES))
        submission = VolunteerRegisteredSubmission(
            external_id=f"v{self.n}",
            name=f"Volunteer {self.n}",
            email=f"v{self.n}.{self.run}@example.org",
            roles=(VolunteerRole.ATTORNEY,),
            languages=tuple(dict.fromkeys(("en", spoken))),
            experience_level=rng.choice((ExperienceLevel.EXPERIENCED, ExperienceLevel.EXPERT)),
            practice_areas=tuple(PracticeArea),
            eoir_registered=True,
            max_active_cases=100,
            facilities_reachable=tuple(f.code for f in rng.sample(FACILITIES, 2)),
            remote=language is not None or rng.random() < 0.5,
        )
        return self._submission(submission, is_case=False)

    def case(self) -> Submission:
        rng, self.n = self.rng, self.n + 1
        facility = rng.choice(FACILITIES)
        assert facility.court is not None
        submission = CaseOpenedSubmission(
            external_id=f"c{self.n}",
            client=Client(
                given_name=rng.choice(("Ana", "José", "María", "Luis", "Rosa")),
                family_name=rng.choice(("García", "López", "Pérez", "Ramírez", "Cruz")),
                a_number=f"2{self.n:08d}",
                date_of_birth=self.today - timedelta(days=rng.randint(18 * 365, 60 * 365)),
                country_of_nationality="GT",
            ),
            facility_code=facility.code,
            court_code=facility.court,
            case_type=rng.choice(CASE_TYPES),
            languages=(rng.choice(LANGUAGES),),
            next_hearing_date=self.today + timedelta(days=rng.randint(30, 120)),
            detained_since=self.today - timedelta(days=rng.randint(3, 300)),
        )
        return self._submission(submission, is_case=True)

    def _submission(self, submission: Any, *, is_case: bool) -> Submission:
        partner = self._partner()
        record = encode(submission, source=f"/partners/{partner}")
        return Submission(partner, submission.external_id, is_case, record)

    def seed(self, count: int) -> list[Submission]:
        """Remote volunteers for every case language first, so that every case can be placed."""
        languages = sorted(set(LANGUAGES))
        return [self.volunteer(languages[i % len(languages)]) for i in range(count)]

    def mix(self, count: int) -> list[Submission]:
        return [
            self.case() if self.rng.random() < self.cases_share else self.volunteer() for _ in range(count)
        ]


async def publish(producer: AIOKafkaProducer, subs: Sequence[Submission], rate: float | None) -> None:
    """Each submission at its time (``rate``/s) or all as fast as the producer takes them."""
    started = time.time()
    pending = []
    for i, sub in enumerate(subs):
        if rate is not None and (delay := started + i / rate - time.time()) > 0:
            await asyncio.sleep(delay)
        sub.sent = time.time()
        r = sub.record
        pending.append(await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers)))
    await asyncio.gather(*pending)


# -- following each submission ------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """An event on Kafka: its CloudEvents id and source (the reporting inbox's key) and timestamp."""

    ce_id: str
    source: str
    at: float


@dataclass(frozen=True)
class Proposed(Seen):
    proposal_id: str
    volunteer_id: str


@dataclass
class Trace:
    """What happened to the run's submissions, as seen from outside the services.

    Other runs' services share the topics (and their sources: intake publishes as ``/services/intake``
    whatever its name), so the run's events are told apart by content: canonical events by the
    partner's reference, proposals by the case being the run's own. Other runs' matching services see
    the run's cases and volunteers on those topics too and propose on them as well (``attempt`` 1,
    often to the same volunteer), and the run's notifications emails those too. So a proposal counts
    only once the run's own matching's ``proposals`` table has it (its row is committed with the outbox
    event, so before the event is on Kafka).
    """

    wanted: set[tuple[str, str]] = field(default_factory=set)
    canonical: dict[tuple[str, str], Seen] = field(default_factory=dict)
    case_of: dict[tuple[str, str], str] = field(default_factory=dict)  # submission key -> case_id
    proposals: dict[str, list[Proposed]] = field(default_factory=dict)  # case_id -> in order
    own: set[str] = field(default_factory=set)  # proposal ids the run's matching made
    foreign: set[str] = field(default_factory=set)  # made by another run's matching
    # Put by the SMTP server's thread while the bench's loop reads: a queue, so that no message put
    # during a read is skipped (an index over a list once skipped those, ~10% of the emails).
    mail: queue.SimpleQueue[tuple[float, bytes]] = field(default_factory=queue.SimpleQueue)
    mail_read: int = 0  # messages taken from ``mail``
    mail_other: int = 0  # of which without a proposal's accept link (other templates)
    emails: dict[str, float] = field(default_factory=dict)  # proposal_id -> accepted
    applied: dict[str, float] = field(default_factory=dict)  # ce_id -> reporting transaction start
    stream: list[float] = field(default_factory=list)  # dashboard stream events

    def observe(self, r: ConsumerRecord[bytes, bytes]) -> None:
        headers = {k: bytes(v).decode() for k, v in r.headers}
        kind = headers.get("ce_type")
        if kind not in ("volunteer-registered", "case-opened", "match-proposed") or not r.value:
            return
        data = orjson.loads(r.value)
        seen = (headers.get("ce_id", ""), headers.get("ce_source", ""), r.timestamp / 1000)
        if kind == "match-proposed":
            proposed = Proposed(*seen, data["proposal_id"], data["volunteer_id"])
            self.proposals.setdefault(data["case_id"], []).append(proposed)
            return
        refs = data["referrals"] if kind == "case-opened" else [data.get("registered_by")]
        for ref in refs:
            key = (ref["partner_id"], ref["external_id"]) if ref else ("", "")
            if key in self.wanted and key not in self.canonical:
                self.canonical[key] = Seen(*seen)
                if kind == "case-opened":
                    self.case_of[key] = data["case_id"]

    def read_mail(self) -> None:
        while True:
            try:
                accepted, content = self.mail.get_nowait()
            except queue.Empty:
                return
            self.mail_read += 1
            proposal = proposal_of(content)
            if proposal is None:
                self.mail_other += 1
            else:
                self.emails.setdefault(proposal, accepted)  # a message resent: its first copy

    def proposal(self, sub: Submission) -> Proposed | None:
        """The case's first proposal by the run's matching."""
        proposals = self.proposals.get(self.case_of.get(sub.key, ""), ())
        return next((p for p in proposals if p.proposal_id in self.own), None)

    def unchecked(self, subs: Iterable[Submission]) -> list[str]:
        """Proposals on ``subs``' cases not yet told own or foreign."""
        return [
            p.proposal_id
            for sub in subs
            if sub.is_case
            for p in self.proposals.get(self.case_of.get(sub.key, ""), ())
            if p.proposal_id not in self.own and p.proposal_id not in self.foreign
        ]

    def shown(self, ce_id: str) -> float | None:
        """The first dashboard stream event after reporting applied ``ce_id``."""
        applied = self.applied.get(ce_id)
        if applied is None:
            return None
        i = bisect.bisect_right(self.stream, applied)
        return self.stream[i] if i < len(self.stream) else None


def proposal_of(content: bytes) -> str | None:
    """The proposal id in a match-proposed email's accept link (the token's payload, not verified).

    The message is parsed as a mail client would (MIME parts, quoted-printable soft line breaks, base64),
    the text part preferred; other emails (placements, retractions, reminders) have no accept link."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)  # what the default policy builds
    body = message.get_body(("plain", "html"))
    text = body.get_content() if body is not None else ""
    match = re.search(r"/v1/proposals/([\w.-]+)/accept", text if isinstance(text, str) else "")
    if match is None:
        return None
    payload = jwt.decode(match.group(1), options={"verify_signature": False})
    return str(payload.get("proposal_id"))


class Mailbox:
    """aiosmtpd handler: each message with when it was accepted (decoded later, off the SMTP thread)."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.trace.mail.put((time.time(), bytes(envelope.content)))
        return "250 OK"


async def watch_topics(bootstrap: str, trace: Trace, start: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        while True:
            for records in (await consumer.getmany(timeout_ms=200, max_records=2000)).values():
                for r in records:
                    trace.observe(r)
    finally:
        await consumer.stop()


async def watch_dashboard(url: str, trace: Trace, connected: asyncio.Event) -> None:
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", f"{url}/dashboard/stream") as stream,
    ):
        async for line in stream.aiter_lines():
            if line.startswith("event: projected"):
                trace.stream.append(time.time())
                connected.set()


async def read_applied(
    conn: Any, schema: str, consumer: str, source: str, ids: list[str]
) -> dict[str, float]:
    rows = await conn.fetch(
        f'SELECT event_id, extract(epoch FROM received_at)::float8 AS at FROM "{schema}".inbox '
        "WHERE consumer = $1 AND source = $2 AND event_id = ANY($3::text[])",
        consumer,
        source,
        ids,
    )
    return {row["event_id"]: row["at"] for row in rows}


# -- what limits it: CPU per process and consumer lag per group -----------------------------------


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state first)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU of ``pid`` (all threads); ``children``: plus its reaped and live children
    (PostgreSQL's backends are children of the postmaster)."""
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        f = _stat(pid)
    except OSError:
        return 0.0
    total = int(f[11]) + int(f[12])
    if children:
        total += int(f[13]) + int(f[14])
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    child = _stat(entry)
                except OSError:
                    continue
                if int(child[1]) == pid:
                    total += int(child[11]) + int(child[12])
    return total / ticks


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, every process included."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(values[:8]) - idle) / ticks, sum(values[:8]) / ticks


@dataclass
class Processes:
    pids: dict[str, tuple[int, bool]]  # name -> (pid, with children)

    def sample(self) -> dict[str, float]:
        sample = {name: cpu_seconds(pid, children=ch) for name, (pid, ch) in self.pids.items()}
        sample["machine (every process)"] = machine_busy()[0]
        return sample


class Lag:
    """Records not yet committed by each consumer group, sampled; the peak is kept per phase."""

    def __init__(self, bootstrap: str, groups: dict[str, list[TopicPartition]]) -> None:
        self.groups = groups
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.ends = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.peak: dict[str, int] = {}

    async def start(self) -> None:
        await self.admin.start()
        await self.ends.start()

    async def stop(self) -> None:
        await self.ends.stop()
        await self.admin.close()

    async def sample(self) -> None:
        for group, partitions in self.groups.items():
            done = await self.admin.list_consumer_group_offsets(group, partitions=partitions)
            ends = await self.ends.end_offsets(partitions)
            lag = sum(max(0, end - done[tp].offset) for tp, end in ends.items() if tp in done)
            self.peak[group] = max(self.peak.get(group, 0), lag)

    async def run(self) -> None:
        while True:
            with contextlib.suppress(KafkaError, OSError):  # a sample missed is no reason to stop
                await self.sample()
            await asyncio.sleep(1.0)


# -- the platform -------------------------------------------------------------------------------


@dataclass
class Platform:
    run: str
    infra: InfraEndpoints
    partners: list[str]
    services: dict[str, ServiceProcess]
    schemas: dict[str, str]
    groups: dict[str, list[TopicPartition]]

    @property
    def reporting_consumer(self) -> str:
        return f"{self.services['reporting'].env['REPORTING_SERVICE_NAME']}.facts"


async def _matching_topics(bootstrap: str, pattern: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return [t for t in await admin.list_topics() if re.match(pattern, t)]
    finally:
        await admin.close()


async def _create_partners(infra: InfraEndpoints, partners: list[str], env: dict[str, str]) -> None:
    async def create(partner: str) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lastline_intake",
            "partners",
            "create",
            partner,
            "--name",
            partner,
            "--kind",
            "clinic",
            "--email",
            "ops@example.org",
            env=os.environ | env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"partners create {partner}: {err.decode()[-2000:]}")

    await create(partners[0])  # the first migrates intake's schema; the others then only add a partner
    await asyncio.gather(*(create(p) for p in partners[1:]))


async def start_platform(infra: InfraEndpoints, smtp_port: int, log_dir: Path) -> Platform:
    run = uuid.uuid4().hex[:6]
    bootstrap = infra.kafka_bootstrap
    names = {s: f"{s}-bench-{run}" for s in SERVICES}
    schemas = {s: f"bench_{s}_{run}" for s in SERVICES}
    partners = [f"bench-{run}-{n}" for n in range(PARTNERS)]
    envs = {
        s: {
            f"{s.upper()}_SERVICE_NAME": names[s],
            f"{s.upper()}_DB_SCHEMA": schemas[s],
            # The superuser's URL: the service roles may not create schemas.
            f"{s.upper()}_DATABASE_URL": infra.database_url,
            f"{s.upper()}_HTTP_PORT": str(free_port()),
            f"{s.upper()}_LOG_LEVEL": "WARNING",
        }
        for s in SERVICES
    }
    envs["notifications"]["NOTIFICATIONS_SMTP_PORT"] = str(smtp_port)
    await ensure_topics(bootstrap, shared_topic_partitions(PARTITIONS))
    await _create_partners(infra, partners, envs["intake"])
    # Every consumer group starts at the current end of its topics: the shared topics' history (and
    # other runs' partner topics) is skipped, the run's own partner topics are still empty.
    submissions = await _matching_topics(bootstrap, SUBMISSIONS_PATTERN)
    rejections = await _matching_topics(bootstrap, REJECTIONS_PATTERN)
    starts = {
        f"lastline-{names['intake']}.submissions": submissions,
        f"lastline-{names['matching']}.main": ["volunteers", "cases", "facilities"],
        f"lastline-{names['notifications']}.people": ["volunteers", "cases"],
        f"lastline-{names['notifications']}.matches": ["matches"],
        f"lastline-{names['notifications']}.rejections": rejections,
        f"lastline-{names['reporting']}.facts": [
            "volunteers",
            "cases",
            "facilities",
            "matches",
            "notifications",
        ],
        f"lastline-{names['reporting']}.rejections": rejections,
    }
    await asyncio.gather(*(start_group_at_end(bootstrap, g, topics) for g, topics in starts.items()))
    watched = {
        f"lastline-{names['intake']}.submissions": [submissions_topic(p) for p in partners],
        f"lastline-{names['matching']}.main": ["volunteers", "cases"],
        f"lastline-{names['notifications']}.people": ["volunteers", "cases"],
        f"lastline-{names['notifications']}.matches": ["matches"],
        f"lastline-{names['reporting']}.facts": ["volunteers", "cases", "matches", "notifications"],
    }
    groups = {g: list(await end_offsets(bootstrap, topics)) for g, topics in watched.items()}
    services = {s: ServiceProcess.configure(s, infra, log_dir, os.environ | envs[s]) for s in SERVICES}
    for service in services.values():
        service.start()
    platform = Platform(run, infra, partners, services, schemas, groups)
    await wait_all_ready(list(services.values()), within_s=READY_WITHIN_S)
    return platform


async def stop_platform(platform: Platform) -> None:
    await asyncio.gather(*(s.stop(grace_s=15) for s in platform.services.values()))
    conn = await asyncpg.connect(asyncpg_dsn(platform.infra.database_url))
    try:
        for schema in platform.schemas.values():
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


# -- a phase --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    label: str
    subs: Sequence[Submission]
    rate: float | None
    published_rate: float
    through: int  # submissions through every service
    through_rate: float  # submissions/s, first published to last through
    stage_rates: dict[str, float]  # per service: its events / (last done - first published)
    latencies: dict[str, list[float]]  # ms
    cpu: dict[str, float]  # CPU seconds per process over the phase (publishing and draining)
    lag: dict[str, int]
    seconds: float
    missing: dict[str, int]  # stage -> submissions not through that had not reached it
    foreign: int = 0  # proposals on the phase's cases by other runs' matching services
    foreign_emailed: int = 0  # of which the run's notifications emailed (work the bench did not ask)

    def cores(self, process: str) -> float:
        return self.cpu[process] / self.seconds

    def cpu_ms_per_submission(self, process: str) -> float:
        """CPU the process spent over the phase per submission: its idle work included (timers,
        pollers, other runs' events on the shared topics; printed as "idle"), so an upper bound."""
        return self.cpu[process] * 1000 / len(self.subs)


def _through(trace: Trace, sub: Submission) -> tuple[float | None, dict[str, float]]:
    """When ``sub`` was through every service (None: not yet), and when each stage was done."""
    canonical = trace.canonical.get(sub.key)
    if canonical is None:
        return None, {}
    stages = {"intake": canonical.at}
    shown = trace.shown(canonical.ce_id)
    if shown is not None:
        stages["reporting"] = shown
    if sub.is_case:
        proposal = trace.proposal(sub)
        if proposal is None:
            return None, stages
        stages["matching"] = proposal.at
        if (mailed := trace.emails.get(proposal.proposal_id)) is not None:
            stages["notifications"] = mailed
        if (dashboard := trace.shown(proposal.ce_id)) is not None:
            stages["dashboard"] = dashboard
            stages["reporting"] = max(stages.get("reporting", dashboard), dashboard)
        needed = {"intake", "matching", "notifications", "reporting", "dashboard"}
    else:
        needed = {"intake", "reporting"}
    return (max(stages.values()) if needed <= stages.keys() else None), stages


async def _resolve(platform: Platform, conn: Any, trace: Trace, subs: Sequence[Submission]) -> None:
    """Ask matching which proposals it made, and reporting's inbox which of the events seen so far it
    has applied."""
    trace.read_mail()
    if unchecked := trace.unchecked(subs):
        rows = await conn.fetch(
            f'SELECT proposal_id::text FROM "{platform.schemas["matching"]}".proposals '
            "WHERE proposal_id = ANY($1::uuid[])",
            unchecked,
        )
        trace.own |= {row["proposal_id"] for row in rows}
        trace.foreign |= set(unchecked) - trace.own
    by_source: dict[str, list[str]] = {}
    for sub in subs:
        events = [trace.canonical.get(sub.key), trace.proposal(sub) if sub.is_case else None]
        for seen in events:
            if seen is not None and seen.ce_id not in trace.applied:
                by_source.setdefault(seen.source, []).append(seen.ce_id)
    schema = platform.schemas["reporting"]
    for source, ids in by_source.items():
        if ids:
            trace.applied |= await read_applied(conn, schema, platform.reporting_consumer, source, ids)


def _rate(count: int, expected: int, first: float, last: float, ended: float) -> float:
    """Events/s from the first published to the last done; if some never got done, to the end of
    the phase instead (what got through in the time it had)."""
    return count / max(1e-3, (last if count >= expected else ended) - first)


async def _show_deliveries(conn: Any, schema: str, unmailed: list[str]) -> None:
    """Why emails are missing: notifications' email deliveries by status, attempts and last error, the
    events it holds until it knows their case or volunteer, and the deliveries of ``unmailed``
    (match-proposed ce_ids without an email)."""
    rows = await conn.fetch(
        "SELECT status, attempts, left(coalesce(last_error, ''), 120) AS error, count(*) AS n "
        f"FROM \"{schema}\".deliveries WHERE channel = 'email' GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 8"
    )
    held = await conn.fetchval(f'SELECT count(*) FROM "{schema}".held_events')
    mine = await conn.fetch(
        f'SELECT status, count(*) AS n FROM "{schema}".deliveries '
        "WHERE source_event_id = ANY($1::text[]) GROUP BY 1",
        unmailed,
    )
    of_mine = ", ".join(f"{r['status']} {r['n']}" for r in mine) or "no delivery"
    print(
        f"  notifications' email deliveries: {'; '.join(str(dict(r)) for r in rows)}; events held for "
        f"their case or volunteer: {held}; the {len(unmailed)} proposals without an email: {of_mine}",
        flush=True,
    )


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))] if ordered else float("nan")
    )


@dataclass
class Harness:
    """The running platform and everything that loads and watches it."""

    platform: Platform
    trace: Trace
    producer: AIOKafkaProducer
    processes: Processes
    lag: Lag
    watchers: list[asyncio.Task[None]]
    idle_cores: dict[str, float] = field(default_factory=dict)

    async def measure_idle(self) -> None:
        before = self.processes.sample()
        await asyncio.sleep(IDLE_S)
        after = self.processes.sample()
        self.idle_cores = {p: (after[p] - before[p]) / IDLE_S for p in after}

    def check(self) -> None:
        """Fail at once if a service or a watcher died rather than wait for the deadline."""
        for service in self.platform.services.values():
            if (code := service.exit_code()) is not None:
                raise RuntimeError(f"{service.name} exited ({code}); {service.log_tail()}")
        for task in self.watchers:
            if task.done():
                raise RuntimeError(f"a watcher stopped: {task.exception()!r}")


async def phase(h: Harness, label: str, subs: list[Submission], rate: float | None) -> Outcome:
    platform, trace, processes, lag = h.platform, h.trace, h.processes, h.lag
    trace.wanted |= {s.key for s in subs}
    lag.peak = {}
    cpu_before, wall_before = processes.sample(), time.time()
    sampler = asyncio.create_task(lag.run())
    conn = await asyncpg.connect(asyncpg_dsn(platform.infra.database_url))
    try:
        await publish(h.producer, subs, rate)
        published = time.time()
        deadline = published + DRAIN_S
        pending = list(subs)
        while pending and time.time() < deadline:
            await asyncio.sleep(0.5)
            try:
                await _resolve(platform, conn, trace, pending)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                # Other work on this machine restarts the shared PostgreSQL now and then.
                print(
                    f"  reading matching's or reporting's tables failed ({error!r}); reconnecting", flush=True
                )
                await conn.close(timeout=2)
                conn = await asyncpg.connect(asyncpg_dsn(platform.infra.database_url))
                continue
            pending = [s for s in pending if _through(trace, s)[0] is None]
            h.check()
        trace.read_mail()
        unmailed = [
            p.ce_id for s in pending if (p := trace.proposal(s)) and p.proposal_id not in trace.emails
        ]
        if unmailed:
            await _show_deliveries(conn, platform.schemas["notifications"], unmailed)
            print(
                f"  the bench's SMTP server took {trace.mail_read:,} messages since the start: "
                f"{len(trace.emails):,} proposals' emails, {trace.mail_other:,} others",
                flush=True,
            )
    finally:
        sampler.cancel()
        conn.terminate()
    ended = time.time()
    cpu_after, wall = processes.sample(), ended - wall_before
    first = min(s.sent for s in subs)
    done = {id(s): _through(trace, s) for s in subs}
    ends = [t for t, _ in done.values() if t is not None]
    stage_rates: dict[str, float] = {}
    for stage in ("intake", "matching", "notifications", "reporting"):
        expected = len(subs) if stage in ("intake", "reporting") else sum(s.is_case for s in subs)
        times = [stages[stage] for _, stages in done.values() if stage in stages]
        if times:
            stage_rates[stage] = _rate(len(times), expected, first, max(times), ended)
    missing: dict[str, int] = {}
    for sub in subs:
        end, stages = done[id(sub)]
        if end is None:
            wanted = ("intake", "matching", "notifications", "dashboard") if sub.is_case else ("intake",)
            for stage in (*wanted, "reporting"):
                if stage not in stages:
                    missing[stage] = missing.get(stage, 0) + 1
    foreign = {
        p.proposal_id
        for s in subs
        if s.is_case
        for p in trace.proposals.get(trace.case_of.get(s.key, ""), ())
        if p.proposal_id in trace.foreign
    }
    latencies: dict[str, list[float]] = {"intake": [], "matching": [], "notifications": [], "dashboard": []}
    for sub in subs:
        _, stages = done[id(sub)]
        for stage, at in stages.items():
            if stage in latencies and (sub.is_case or stage == "intake"):
                latencies[stage].append((at - sub.sent) * 1000)
    return Outcome(
        label=label,
        subs=subs,
        rate=rate,
        published_rate=len(subs) / max(1e-3, max(s.sent for s in subs) - first),
        through=len(ends),
        through_rate=_rate(len(ends), len(subs), first, max(ends), ended) if ends else 0.0,
        stage_rates=stage_rates,
        latencies=latencies,
        cpu={name: cpu_after[name] - cpu_before[name] for name in cpu_after},
        lag=dict(lag.peak),
        seconds=wall,
        missing=missing,
        foreign=len(foreign),
        foreign_emailed=len(foreign & trace.emails.keys()),
    )


def _describe(outcome: Outcome, platform: Platform) -> None:
    subs = outcome.subs
    cases = sum(s.is_case for s in subs)
    print(
        f"\n{outcome.label}: {len(subs):,} submissions ({cases:,} cases) published at "
        f"{outcome.published_rate:,.0f}/s; {outcome.through:,} through all four services at "
        f"{outcome.through_rate:,.1f}/s",
        flush=True,
    )
    print("  per stage, events/s: " + ", ".join(f"{k} {v:,.1f}" for k, v in outcome.stage_rates.items()))
    for stage, values in outcome.latencies.items():
        if values:
            cut = ", ".join(f"p{q} {_pct(values, q):,.0f}" for q in (50, 90, 99))
            print(f"  submission -> {stage}: {cut} ms ({len(values):,})")
    if outcome.missing:
        print(
            "  not through, still waiting for: " + ", ".join(f"{k} {v:,}" for k, v in outcome.missing.items())
        )
    if outcome.foreign:
        print(
            f"  proposals on the run's cases by other runs' matching services (not counted): "
            f"{outcome.foreign:,}, {outcome.foreign_emailed:,} of them emailed by the run's notifications"
        )
    by_use = sorted(outcome.cpu, key=lambda p: -outcome.cpu[p])
    print(
        f"  CPU over {outcome.seconds:.0f}s, cores (ms per submission): "
        + ", ".join(f"{p} {outcome.cores(p):.2f} ({outcome.cpu_ms_per_submission(p):.1f})" for p in by_use)
    )
    groups = {g: g.removeprefix("lastline-").replace(f"-bench-{platform.run}", "") for g in outcome.lag}
    print("  peak consumer lag: " + ", ".join(f"{groups[g]} {v:,}" for g, v in outcome.lag.items()))


def figures_of(outcome: Outcome, baseline: float, cases_share: float) -> list[Figure]:
    subs = outcome.subs
    cases = sum(s.is_case for s in subs)
    where = machine()
    load = (
        f"{len(subs):,} submissions ({cases:,} case openings, the rest volunteer registrations; cases "
        f"share {cases_share:.0%}) on {PARTNERS} partners' topics, "
        f"published at {outcome.published_rate:,.0f}/s; "
        f"{outcome.through:,} through all four services (separate processes) within {DRAIN_S:.0f}s"
    )
    name = f"platform {outcome.label}"
    figures = [
        Figure(
            f"{name}: submissions through all services",
            outcome.through_rate,
            "events/s",
            "raw aiokafka consume + produce + commit",
            baseline,
            where,
            load,
        )
    ]
    what = {
        "intake": "canonical event",
        "matching": "match-proposed",
        "notifications": "email accepted",
        "dashboard": "dashboard stream",
    }
    for stage, values in outcome.latencies.items():
        for q in (50, 90, 99) if stage != "intake" else (50, 99):
            if values:
                figures.append(
                    Figure(
                        f"{name}: submission -> {what[stage]}, p{q}",
                        _pct(values, q),
                        "ms",
                        None,
                        None,
                        where,
                        load,
                    )
                )
    if outcome.rate is None:
        for stage, rate in outcome.stage_rates.items():
            figures.append(Figure(f"{name}: {stage} done", rate, "events/s", None, None, where, load))
        for process in outcome.cpu:
            cost = outcome.cpu_ms_per_submission(process)
            figures.append(
                Figure(f"{name}: CPU per submission, {process}", cost, "ms", None, None, where, load)
            )
    return figures


# -- the benchmark ------------------------------------------------------------------------------


async def run(
    infra: InfraEndpoints,
    rates: Sequence[tuple[float, float]] = DEFAULT_RATES,
    burst: int = BURST,
    cases_share: float = CASES_SHARE,
    seed_volunteers: int = SEED_VOLUNTEERS,
) -> list[Figure]:
    bootstrap = infra.kafka_bootstrap
    log_dir = Path(tempfile.mkdtemp(prefix="bench-platform-"))
    trace = Trace()
    smtp = Controller(Mailbox(trace), hostname="127.0.0.1", port=free_port())
    smtp.start()
    started = time.monotonic()
    platform = await start_platform(infra, smtp.port, log_dir)
    print(f"platform ready in {time.monotonic() - started:.0f}s (logs in {log_dir})", flush=True)
    sink = f"bench-{platform.run}-raw-sink"
    await create_topics(bootstrap, {sink: PARTITIONS})
    today = network_today("America/New_York")()
    load = Load(platform.run, platform.partners, today, cases_share)
    lag = Lag(bootstrap, platform.groups)
    layout = Layout.default()
    pids = {name: (s.pid or 0, False) for name, s in platform.services.items()}
    if (kafka := kafka_pid(layout)) is not None:
        pids["kafka"] = (kafka, False)
    if (postgres := postgres_pid(layout)) is not None:
        pids["postgres"] = (postgres, True)
    pids["bench (load + observers + SMTP)"] = (os.getpid(), False)
    processes = Processes(pids)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    start = await end_offsets(bootstrap, ["volunteers", "cases", "matches"])
    connected = asyncio.Event()
    url = platform.services["reporting"].address.url
    tasks = [
        asyncio.create_task(watch_topics(bootstrap, trace, start)),
        asyncio.create_task(watch_dashboard(url, trace, connected)),
    ]
    h = Harness(platform, trace, producer, processes, lag, tasks)
    outcomes: list[Outcome] = []
    published = 0
    try:
        await producer.start()
        await lag.start()
        await asyncio.wait_for(connected.wait(), 30)
        seed = await phase(h, "seed", load.seed(seed_volunteers), None)
        published += len(seed.subs)
        print(f"seeded {seed.through:,} volunteers in {seed.seconds:.0f}s", flush=True)
        await h.measure_idle()
        print("idle, cores: " + ", ".join(f"{p} {c:.2f}" for p, c in h.idle_cores.items()), flush=True)
        plans: list[tuple[str, list[Submission], float | None]] = [
            (f"at {rate:,.0f}/s", load.mix(round(rate * seconds)), rate) for rate, seconds in rates
        ]
        if burst:
            plans.append(("as fast as possible", load.mix(burst), None))
        for label, subs, rate in plans:
            outcome = await phase(h, label, subs, rate)
            published += len(subs)
            _describe(outcome, platform)
            outcomes.append(outcome)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
        await lag.stop()
        await stop_platform(platform)
        smtp.stop()
    # The baseline on the same records, once the services are gone.
    try:
        baseline = await raw_loop(
            bootstrap, [submissions_topic(p) for p in platform.partners], sink, published
        )
        print(f"raw aiokafka consume + produce + commit: {baseline:,.0f} records/s", flush=True)
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            mine = [t for p in platform.partners for t in partner_topic_partitions(p)]
            await admin.delete_topics([t for t in [*mine, sink] if t in existing])
        finally:
            await admin.close()
    return [f for outcome in outcomes for f in figures_of(outcome, baseline, cases_share)]


def main(argv: Iterable[str] | None = None) -> None:
    from bench.results import report
    from lastline_infra import ensure_up

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate", type=float, action="append", help="submissions/s of a steady phase (repeatable)"
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of each --rate phase")
    parser.add_argument("--burst", type=int, default=BURST, help="submissions published at once (0: none)")
    parser.add_argument("--cases-share", type=float, default=CASES_SHARE, help="share of case openings")
    parser.add_argument("--seed-volunteers", type=int, default=SEED_VOLUNTEERS)
    args = parser.parse_args(None if argv is None else list(argv))
    rates = [(r, args.duration) for r in args.rate] if args.rate else list(DEFAULT_RATES)

    async def bench() -> list[Figure]:
        return await run(await ensure_up(), rates, args.burst, args.cases_share, args.seed_volunteers)

    report(asyncio.run(bench()))


if __name__ == "__main__":
    main()
