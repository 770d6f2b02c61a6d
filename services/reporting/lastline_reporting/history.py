"""A generated event history: what partners, intake, matching and notifications would publish.

Deterministic for a seed, so that tests compare figures with values computed from the same events,
benchmarks replay a known load, and a development dashboard can be filled (:func:`publish`).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import islice

from aiokafka import AIOKafkaProducer

from lastline_reporting.consumers import Topics
from lastline_shared.contracts.base import Event
from lastline_shared.contracts.cases import CaseClosed, CaseOpened, CaseUpdated
from lastline_shared.contracts.enums import (
    CaseChange,
    CaseOutcome,
    CaseType,
    DeclineReason,
    DeliveryFailure,
    EscalationCause,
    EscalationLevel,
    ExperienceLevel,
    FacilityPauseReason,
    FacilityStatus,
    MatchConstraint,
    MatchEndReason,
    NotificationChannel,
    RecipientKind,
    RetractionReason,
    VolunteerRole,
    VolunteerWithdrawalReason,
)
from lastline_shared.contracts.envelope import KafkaRecord, encode
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
from lastline_shared.contracts.profiles import PartnerRef
from lastline_shared.contracts.rejections import RejectionReason, SubmissionRejected
from lastline_shared.contracts.topics import (
    CASES,
    FACILITIES,
    MATCHES,
    NOTIFICATIONS,
    VOLUNTEERS,
)
from lastline_shared.contracts.volunteers import VolunteerRegistered, VolunteerUpdated, VolunteerWithdrawn

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # a Monday
PARTNERS = ("stewart-project", "firm-b", "clinic-c")
PLACES = (("STWRTGA", "LUM"), ("IRWINGA", "ATL"), ("KRO", "KRO"), ("WCCPBFL", "KRO"))
LANGUAGES = ("spa", "mam", "quc", "eng", "hat", "por")
CASE_TYPES = (CaseType.ASYLUM, CaseType.REMOVAL_DEFENSE, CaseType.BOND, CaseType.WITHHOLDING_CAT)
OUTCOMES = (CaseOutcome.RELIEF_GRANTED, CaseOutcome.BOND_GRANTED, CaseOutcome.REMOVED, CaseOutcome.RELEASED)

SOURCES = {
    VOLUNTEERS.name: "/services/intake",
    CASES.name: "/services/intake",
    FACILITIES.name: "/services/intake",
    MATCHES.name: "/services/matching",
    NOTIFICATIONS.name: "/services/notifications",
}


@dataclass(frozen=True)
class Fact:
    """An event as it happened: what, when, and its CloudEvents id."""

    event: Event
    at: datetime
    event_id: uuid.UUID


@dataclass
class History:
    facts: list[Fact] = field(default_factory=list)

    def add(self, event: Event, at: datetime, rng: random.Random) -> None:
        self.facts.append(Fact(event, at, uuid.UUID(int=rng.getrandbits(128), version=4)))

    def ordered(self) -> list[Fact]:
        return sorted(self.facts, key=lambda f: (f.at, f.event_id))

    def records(self, topics: Topics | None = None) -> Iterator[KafkaRecord]:
        """Kafka records in time order, on ``topics`` (rejections on ``<prefix>partner.<id>.rejections``)."""
        topics = topics or Topics()
        shared = (VOLUNTEERS.name, CASES.name, FACILITIES.name, MATCHES.name, NOTIFICATIONS.name)
        names = dict(zip(shared, topics.facts, strict=True))
        for fact in self.ordered():
            event = fact.event
            if isinstance(event, SubmissionRejected):
                topic = rejections_topic(topics, event.partner_id)
                source = "/services/intake"
            else:
                topic = names[event.topic]
                source = SOURCES[event.topic]
            yield encode(event, source=source, event_id=fact.event_id, time=fact.at, topic=topic)


def rejections_topic(topics: Topics, partner_id: str) -> str:
    """The rejections topic of a partner under ``topics``' naming (tests prefix every topic)."""
    prefix = topics.facts[0].removesuffix(VOLUNTEERS.name)
    return f"{prefix}partner.{partner_id}.rejections"


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def generate(cases: int = 200, volunteers: int = 60, *, seed: int = 7, weeks: int = 8) -> History:
    """About 9 events per case, volunteers and notifications included."""
    rng = random.Random(seed)  # noqa: S311  (test data, not secrets)
    history = History()
    span = timedelta(weeks=weeks)

    pool: list[tuple[uuid.UUID, VolunteerRole, ExperienceLevel]] = []
    mentors: list[uuid.UUID] = []
    for i in range(volunteers):
        vid = _uuid(rng)
        role = rng.choice((VolunteerRole.ATTORNEY,) * 4 + (VolunteerRole.INTERPRETER, VolunteerRole.MENTOR))
        level = rng.choice(list(ExperienceLevel))
        roles = (
            (role,) if role is not VolunteerRole.MENTOR else (VolunteerRole.ATTORNEY, VolunteerRole.MENTOR)
        )
        at = START + span * rng.random() * 0.3
        profile = {
            "volunteer_id": vid,
            "name": f"Volunteer {i}",
            "email": f"volunteer{i}@example.org",
            "roles": roles,
            "languages": tuple(rng.sample(LANGUAGES, 2)),
            "experience_level": level,
            "max_active_cases": rng.choice((0, 1, 2, 3)),
            "can_mentor": role is VolunteerRole.MENTOR,
            "registered_by": PartnerRef(partner_id=rng.choice(PARTNERS), external_id=f"vol-{i}"),
        }
        history.add(VolunteerRegistered(**profile), at, rng)
        if rng.random() < 0.3:
            profile["max_active_cases"] = rng.choice((1, 4))
            history.add(VolunteerUpdated(**profile), at + timedelta(days=rng.randint(1, 20)), rng)
        if rng.random() < 0.1:
            reason = rng.choice(list(VolunteerWithdrawalReason))
            history.add(VolunteerWithdrawn(volunteer_id=vid, reason=reason), at + timedelta(days=30), rng)
        pool.append((vid, role, level))
        if role is VolunteerRole.MENTOR:
            mentors.append(vid)
    attorneys = [v for v in pool if v[1] is VolunteerRole.ATTORNEY] or pool

    paused_at = START + span / 2
    history.add(
        FacilityStatusChanged(
            facility_code=PLACES[1][0],
            status=FacilityStatus.PAUSED,
            reason=FacilityPauseReason.PHONE_ACCESS_CUT,
            note="Legal calls suspended since Monday.",
            effective_at=paused_at,
        ),
        paused_at,
        rng,
    )

    for n in range(cases):
        _case(history, rng, n, START + span * rng.random(), attorneys, mentors)

    for _ in range(max(1, cases // 20)):
        partner = rng.choice(PARTNERS)
        code = rng.choice(("string_pattern_mismatch", "missing", "unknown_facility"))
        history.add(
            SubmissionRejected(
                submission_id=_uuid(rng),
                partner_id=partner,
                submission_type="case-opened",
                reasons=(RejectionReason(path="facility_code", code=code, message="Not accepted"),),
            ),
            START + span * rng.random(),
            rng,
        )
    return history


def _case(  # noqa: PLR0917
    history: History,
    rng: random.Random,
    n: int,
    opened: datetime,
    attorneys: Sequence[tuple[uuid.UUID, VolunteerRole, ExperienceLevel]],
    mentors: Sequence[uuid.UUID],
) -> None:
    case_id = _uuid(rng)
    facility, court = rng.choice(PLACES)
    referrals = (PartnerRef(partner_id=rng.choice(PARTNERS), external_id=f"case-{n}"),)
    facts = {
        "case_id": case_id,
        "facility_code": facility,
        "court_code": court,
        "case_type": rng.choice(CASE_TYPES),
        "languages": tuple(rng.sample(LANGUAGES, 2)),
        "next_hearing_date": (opened + timedelta(days=rng.randint(10, 60))).date(),
        "referrals": referrals,
    }
    history.add(CaseOpened(**facts), opened, rng)
    t = opened
    if rng.random() < 0.2:  # transferred to another facility
        t += timedelta(hours=rng.randint(1, 72))
        facts["facility_code"], facts["court_code"] = rng.choice(PLACES)
        history.add(CaseUpdated(**facts, changes=(CaseChange.TRANSFERRED,)), t, rng)

    placed: tuple[uuid.UUID, uuid.UUID, ExperienceLevel] | None = None
    for attempt in range(1, rng.randint(0, 3) + 1):
        t += timedelta(hours=rng.uniform(1, 96))
        vid, _role, level = rng.choice(attorneys)
        proposal = {
            "case_id": case_id,
            "volunteer_id": vid,
            "role": VolunteerRole.ATTORNEY,
            "proposal_id": _uuid(rng),
        }
        history.add(
            MatchProposed(
                **proposal,
                reasons=(MatchConstraint.ROLE_FITS,),
                score=round(rng.random(), 3),
                expires_at=t + timedelta(hours=48),
                attempt=attempt,
            ),
            t,
            rng,
        )
        _notify(history, rng, case_id, vid, t)
        answer = rng.random()
        t += timedelta(hours=rng.uniform(0.5, 48))
        if answer < 0.45:
            history.add(MatchAccepted(**proposal, conflict_attested=True), t, rng)
            match_id = _uuid(rng)
            history.add(
                MatchMade(
                    case_id=case_id,
                    volunteer_id=vid,
                    role=VolunteerRole.ATTORNEY,
                    match_id=match_id,
                    proposal_id=proposal["proposal_id"],
                ),
                t,
                rng,
            )
            placed = (match_id, vid, level)
            if level is ExperienceLevel.NOVICE and mentors:
                history.add(
                    MentorAssigned(
                        case_id=case_id, match_id=match_id, mentor_id=rng.choice(mentors), mentee_id=vid
                    ),
                    t + timedelta(minutes=5),
                    rng,
                )
            break
        if answer < 0.75:
            reason = rng.choice(list(DeclineReason))
            history.add(MatchDeclined(**proposal, reason=reason), t, rng)
        elif answer < 0.95:
            history.add(MatchExpired(**proposal), t, rng)
        else:
            history.add(MatchRetracted(**proposal, reason=RetractionReason.CASE_CHANGED), t, rng)

    if placed is None and rng.random() < 0.5:
        escalation = rng.choice(list(EscalationLevel))
        causes = tuple(rng.sample(list(EscalationCause), rng.randint(0, 2)))
        t += timedelta(hours=rng.uniform(1, 24))
        history.add(
            CaseEscalated(
                case_id=case_id,
                level=escalation,
                next_hearing_date=facts["next_hearing_date"],
                days_to_hearing=int(escalation),
                facility_code=facts["facility_code"],
                missing=(VolunteerRole.ATTORNEY,),
                causes=causes,
            ),
            t,
            rng,
        )
    if placed is not None and rng.random() < 0.15:
        t += timedelta(days=rng.uniform(1, 10))
        match_id, vid, _level = placed
        history.add(
            MatchEnded(
                case_id=case_id,
                volunteer_id=vid,
                role=VolunteerRole.ATTORNEY,
                match_id=match_id,
                reason=MatchEndReason.VOLUNTEER_WITHDREW,
            ),
            t,
            rng,
        )
    if rng.random() < 0.3:
        t += timedelta(days=rng.uniform(1, 30))
        closed_on = date(t.year, t.month, t.day)
        history.add(CaseClosed(case_id=case_id, outcome=rng.choice(OUTCOMES), closed_on=closed_on), t, rng)


def _notify(history: History, rng: random.Random, case_id: uuid.UUID, vid: uuid.UUID, at: datetime) -> None:
    delivery = {
        "notification_id": _uuid(rng),
        "channel": NotificationChannel.EMAIL,
        "template": "match_proposed",
        "recipient_kind": RecipientKind.VOLUNTEER,
        "recipient_id": str(vid),
        "case_id": case_id,
    }
    roll = rng.random()
    if roll < 0.8:
        history.add(NotificationSent(**delivery), at + timedelta(seconds=5), rng)
        return
    history.add(
        NotificationFailed(**delivery, failure=DeliveryFailure.TIMEOUT, will_retry=roll < 0.9),
        at + timedelta(seconds=5),
        rng,
    )
    if roll < 0.9:
        history.add(NotificationSent(**delivery, attempt=2), at + timedelta(minutes=5), rng)


async def publish(bootstrap: str, records: Iterable[KafkaRecord], *, chunk: int = 5000) -> int:
    """Produce ``records`` in order (idempotent producer, acks=all), ``chunk`` in flight at a time;
    a generator is consumed as it goes (a benchmark's million records need not all be in memory).
    Returns how many were produced."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    produced = 0
    try:
        it = iter(records)
        while part := list(islice(it, chunk)):
            futures = [
                await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers)) for r in part
            ]
            for future in futures:
                await future
            produced += len(part)
    finally:
        await producer.stop()
    return produced
