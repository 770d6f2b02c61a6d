"""Submissions in, decisions and canonical events out: one path for Kafka batches and HTTP requests.

A batch is applied in the caller's transaction in four steps, each a handful of statements whatever
the batch size:

1. claim: every submission gets a ``submissions`` row; ``(partner_id, event_id)`` is unique, so a
   redelivered or resent submission is a duplicate and has no second effect;
2. load: the records the batch touches (partners' references, volunteers by email, open cases by
   A-number blind index, held updates), locked ``FOR UPDATE`` in id order so that two intake
   instances serialise on a record instead of overwriting each other;
3. decide, in memory and in arrival order: validate beyond the schema, normalise, create, link,
   update, hold or reject, collecting the internal events and ``submission-rejected`` events;
4. flush: upsert what changed, record the decisions, quarantine the rejected, write the outbox.

A race with another instance on a unique key (two partners referring one client at once) fails the
batch with an ``IntegrityError``; the consumer retries it event by event and the retry sees the
other's row. Client PII leaves this module only encrypted.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import structlog
from sqlalchemy import bindparam, delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from lastline_intake import rules
from lastline_intake.case_pii import CasePii, decrypt_case_pii, encrypt_case_pii, referral_pii
from lastline_intake.decisions import Decision, Received, RecordKind, Result
from lastline_intake.partners import PartnerRepository
from lastline_intake.pii import Keyring, blind_index
from lastline_intake.tables import IntakeTables
from lastline_shared.contracts.base import Contract, Submission
from lastline_shared.contracts.cases import CaseClosed, CaseOpened, CaseUpdated
from lastline_shared.contracts.catalog import SUBMISSION_BY_TYPE
from lastline_shared.contracts.enums import CaseChange
from lastline_shared.contracts.envelope import DecodeError, Envelope, KafkaRecord, Reason, encode
from lastline_shared.contracts.profiles import CaseFacts, PartnerRef, VolunteerSkills
from lastline_shared.contracts.rejections import RejectionReason, SubmissionRejected, Suggestion
from lastline_shared.contracts.submissions import (
    CaseClosedSubmission,
    CaseOpenedSubmission,
    CaseSubmission,
    VolunteerRegisteredSubmission,
    VolunteerSubmission,
    VolunteerWithdrawnSubmission,
)
from lastline_shared.contracts.volunteers import VolunteerRegistered, VolunteerUpdated, VolunteerWithdrawn
from lastline_shared.outbox import Outbox

log = structlog.get_logger(__name__)

SOURCE = "/services/intake"
_REGISTRATIONS = (VolunteerRegisteredSubmission, CaseOpenedSubmission)
_FACT_CHANGES: dict[str, CaseChange] = {
    "next_hearing_date": CaseChange.HEARING_MOVED,
    "next_hearing_kind": CaseChange.HEARING_MOVED,
    "facility_code": CaseChange.TRANSFERRED,
    "court_code": CaseChange.COURT_CHANGED,
    "case_type": CaseChange.CASE_TYPE_CHANGED,
    "languages": CaseChange.LANGUAGES_CHANGED,
    "complexity_flags": CaseChange.COMPLEXITY_CHANGED,
    "needs": CaseChange.NEEDS_CHANGED,
    "country_conditions": CaseChange.NEEDS_CHANGED,
    "detained_since": CaseChange.CUSTODY_CHANGED,
}
_HINTS = {
    "unknown_facility": "use an ICE detention facility code such as STWRTGA (Stewart Detention Center)",
    "unknown_court": "use an EOIR immigration court code such as ATL (Atlanta)",
    "invalid_phone": "use the international format with the country code, such as +1 404 555 0123",
    "language_code": 'use an ISO 639 code such as "es" or "spa"',
}


def _skills(submission: VolunteerSubmission) -> dict[str, Any]:
    return {name: getattr(submission, name) for name in VolunteerSkills.model_fields}


def _facts(submission: CaseSubmission) -> dict[str, Any]:
    return {name: getattr(submission, name) for name in CaseFacts.model_fields}


@dataclass(slots=True)
class _Volunteer:
    volunteer_id: UUID
    email_key: str
    status: str
    profile: dict[str, Any]
    version: int
    dirty: bool = False


@dataclass(slots=True)
class _Case:
    case_id: UUID
    status: str
    a_number_index: str | None
    facts: dict[str, Any]
    pii_blob: bytes | None
    version: int
    outcome: str | None = None
    closed_on: date | None = None
    pii: CasePii | None = None
    dirty: bool = False


@dataclass(slots=True)
class _Held:
    submission_id: UUID
    event_id: str
    traceparent: str | None
    submission: Submission
    received_at: datetime
    stored: bool  # a row in held_submissions (from an earlier batch)


@dataclass
class _Work:
    """One batch's loaded state and pending writes."""

    now: datetime
    today: date
    partners: set[str] = field(default_factory=set)
    volunteer_refs: dict[tuple[str, str], UUID] = field(default_factory=dict)
    volunteers_by_email: dict[str, UUID] = field(default_factory=dict)
    volunteers: dict[UUID, _Volunteer] = field(default_factory=dict)
    case_refs: dict[tuple[str, str], UUID] = field(default_factory=dict)
    cases_by_a_number: dict[str, UUID] = field(default_factory=dict)
    cases: dict[UUID, _Case] = field(default_factory=dict)
    held: dict[tuple[RecordKind, str, str], list[_Held]] = field(default_factory=dict)
    new_volunteer_refs: list[dict[str, Any]] = field(default_factory=list)
    new_case_refs: list[dict[str, Any]] = field(default_factory=list)
    held_rows: list[dict[str, Any]] = field(default_factory=list)
    released_held: list[UUID] = field(default_factory=list)
    quarantine_rows: list[dict[str, Any]] = field(default_factory=list)
    records: list[KafkaRecord] = field(default_factory=list)
    decisions: dict[UUID, Decision] = field(default_factory=dict)
    """Decisions to record, including those of held submissions released by this batch."""


class SubmissionProcessor:
    """Applies submissions in the caller's transaction; see the module docstring."""

    def __init__(
        self,
        tables: IntakeTables,
        partners: PartnerRepository,
        outbox: Outbox,
        keyring: Keyring,
        index_key: bytes,
        *,
        today: Callable[[], date],
    ) -> None:
        self._t = tables
        self._partners = partners
        self._outbox = outbox
        self._keyring = keyring
        self._index_key = index_key
        self._today = today

    # -- the batch ------------------------------------------------------------------------------

    async def process(self, session: AsyncSession, batch: Sequence[Received]) -> list[Decision]:
        """Decide every submission of ``batch``; the decisions come back in the same order."""
        now = datetime.now(UTC)
        work = _Work(now=now, today=self._today())
        ids = [uuid4() for _ in batch]
        claimed, firsts = await self._claim(session, batch, ids)
        fresh = [(sid, r) for sid, r in zip(ids, batch, strict=True) if sid in claimed]
        await self._load(session, work, [r for _, r in fresh])
        for submission_id, received in fresh:
            self._decide(work, submission_id, received)
        await self._flush(session, work)
        out: list[Decision] = []
        earlier = await self._earlier(
            session, batch=batch, ids=ids, claimed=claimed, firsts=firsts, work=work
        )
        for submission_id, received in zip(ids, batch, strict=True):
            if submission_id in claimed:
                out.append(work.decisions[submission_id])
            else:
                out.append(earlier[(received.partner_id or "", received.event_id or "")])
        return out

    async def _claim(
        self, session: AsyncSession, batch: Sequence[Received], ids: list[UUID]
    ) -> tuple[set[UUID], dict[tuple[str, str], UUID]]:
        """Insert a row per new submission; returns the ids claimed and, per identity, the first id."""
        t = self._t.submissions
        rows: list[dict[str, Any]] = []
        firsts: dict[tuple[str, str], UUID] = {}
        for submission_id, received in zip(ids, batch, strict=True):
            identity = (received.partner_id, received.event_id)
            if identity[0] is not None and identity[1] is not None:
                key = (identity[0], identity[1])
                if key in firsts:
                    continue  # a second copy in this batch
                firsts[key] = submission_id
            rows.append(
                {
                    "submission_id": submission_id,
                    "partner_id": received.partner_id,
                    "event_id": received.event_id,
                    "event_type": received.event_type,
                    "external_id": _external_id(received.item),
                    "channel": received.channel,
                    "received_at": received.received_at,
                    "status": "processing",
                }
            )
        if not rows:
            return set(), firsts
        # Executemany of one cached statement: no per-batch compilation of a huge VALUES list.
        statement = (
            insert(t)
            .on_conflict_do_nothing(index_elements=["partner_id", "event_id"])
            .returning(t.c.submission_id)
        )
        claimed = set((await session.execute(statement, rows)).scalars())
        return claimed, firsts

    async def _earlier(
        self,
        session: AsyncSession,
        *,
        batch: Sequence[Received],
        ids: list[UUID],
        claimed: set[UUID],
        firsts: dict[tuple[str, str], UUID],
        work: _Work,
    ) -> dict[tuple[str, str], Decision]:
        """The decisions of submissions seen before (in an earlier batch or earlier in this one)."""
        wanted = {
            (r.partner_id or "", r.event_id or "")
            for sid, r in zip(ids, batch, strict=True)
            if sid not in claimed
        }
        found: dict[tuple[str, str], Decision] = {}
        in_batch = {key: firsts[key] for key in wanted if firsts.get(key) in claimed}
        for key, first in in_batch.items():
            decision = work.decisions[first]
            found[key] = _as_duplicate(decision)
        rest = wanted - in_batch.keys()
        if rest:
            t = self._t.submissions
            rows = await session.execute(select(t).where(tuple_(t.c.partner_id, t.c.event_id).in_(rest)))
            for row in rows.mappings():
                found[(row["partner_id"], row["event_id"])] = _as_duplicate(decision_from_row(row))
        return found

    # -- loading --------------------------------------------------------------------------------

    async def _load(self, session: AsyncSession, work: _Work, batch: list[Received]) -> None:
        envelopes = [r.item for r in batch if isinstance(r.item, Envelope)]
        partner_ids = {r.partner_id for r in batch if r.partner_id is not None}
        if partner_ids:
            p = self._partners.partners
            query = select(p.c.partner_id).where(p.c.partner_id.in_(partner_ids), p.c.active)
            work.partners = set((await session.execute(query)).scalars())
        volunteer_keys: set[tuple[str, str]] = set()
        case_keys: set[tuple[str, str]] = set()
        emails: set[str] = set()
        a_numbers: set[str] = set()
        registrations: set[tuple[RecordKind, str, str]] = set()
        for envelope in envelopes:
            data, partner_id = envelope.data, envelope.partner_id or ""
            external_id = str(getattr(data, "external_id", ""))
            if isinstance(data, VolunteerSubmission | VolunteerWithdrawnSubmission):
                volunteer_keys.add((partner_id, external_id))
                if isinstance(data, VolunteerSubmission):
                    emails.add(rules.normalise_email(data.email))
                if isinstance(data, VolunteerRegisteredSubmission):
                    registrations.add(("volunteer", partner_id, external_id))
            elif isinstance(data, CaseSubmission | CaseClosedSubmission):
                case_keys.add((partner_id, external_id))
                if isinstance(data, CaseSubmission) and data.client.a_number:
                    a_numbers.add(self._a_number_index(data.client.a_number))
                if isinstance(data, CaseOpenedSubmission):
                    registrations.add(("case", partner_id, external_id))
        await self._load_volunteers(session, work, volunteer_keys, emails)
        await self._load_cases(session, work, case_keys, a_numbers)
        if registrations:
            await self._load_held(session, work, registrations)

    async def _load_volunteers(
        self, session: AsyncSession, work: _Work, refs: set[tuple[str, str]], emails: set[str]
    ) -> None:
        t = self._t
        volunteer_ids: set[UUID] = set()
        if refs:
            rows = await session.execute(
                select(t.volunteer_refs).where(
                    tuple_(t.volunteer_refs.c.partner_id, t.volunteer_refs.c.external_id).in_(refs)
                )
            )
            for row in rows.mappings():
                work.volunteer_refs[(row["partner_id"], row["external_id"])] = row["volunteer_id"]
                volunteer_ids.add(row["volunteer_id"])
        if emails:
            query = select(t.volunteers.c.volunteer_id).where(t.volunteers.c.email_key.in_(emails))
            volunteer_ids.update((await session.execute(query)).scalars())
        if volunteer_ids:
            query = (
                select(t.volunteers)
                .where(t.volunteers.c.volunteer_id.in_(volunteer_ids))
                .order_by(t.volunteers.c.volunteer_id)
                .with_for_update()
            )
            for row in (await session.execute(query)).mappings():
                volunteer = _Volunteer(
                    row["volunteer_id"], row["email_key"], row["status"], row["profile"], row["version"]
                )
                work.volunteers[volunteer.volunteer_id] = volunteer
                work.volunteers_by_email[volunteer.email_key] = volunteer.volunteer_id

    async def _load_cases(
        self, session: AsyncSession, work: _Work, refs: set[tuple[str, str]], a_numbers: set[str]
    ) -> None:
        t = self._t
        case_ids: set[UUID] = set()
        if refs:
            rows = await session.execute(
                select(t.case_refs).where(
                    tuple_(t.case_refs.c.partner_id, t.case_refs.c.external_id).in_(refs)
                )
            )
            for row in rows.mappings():
                work.case_refs[(row["partner_id"], row["external_id"])] = row["case_id"]
                case_ids.add(row["case_id"])
        if a_numbers:
            rows = await session.execute(
                select(t.cases.c.case_id).where(
                    t.cases.c.a_number_index.in_(a_numbers), t.cases.c.status == "open"
                )
            )
            case_ids.update(rows.scalars())
        if case_ids:
            query = (
                select(t.cases)
                .where(t.cases.c.case_id.in_(case_ids))
                .order_by(t.cases.c.case_id)
                .with_for_update()
            )
            for row in (await session.execute(query)).mappings():
                case = _Case(
                    case_id=row["case_id"],
                    status=row["status"],
                    a_number_index=row["a_number_index"],
                    facts=row["facts"],
                    pii_blob=row["pii"],
                    version=row["version"],
                    outcome=row["outcome"],
                    closed_on=row["closed_on"],
                )
                work.cases[case.case_id] = case
                if case.status == "open" and case.a_number_index is not None:
                    work.cases_by_a_number[case.a_number_index] = case.case_id

    async def _load_held(
        self, session: AsyncSession, work: _Work, registrations: set[tuple[RecordKind, str, str]]
    ) -> None:
        h = self._t.held
        query = (
            select(h)
            .where(tuple_(h.c.record_kind, h.c.partner_id, h.c.external_id).in_(registrations))
            .order_by(h.c.received_at)
            .with_for_update()  # retention may be dropping the same rows
        )
        for row in (await session.execute(query)).mappings():
            model = SUBMISSION_BY_TYPE[row["event_type"]]
            payload = self._keyring.decrypt(row["payload"], aad=_held_aad(row["submission_id"]))
            held = _Held(
                submission_id=row["submission_id"],
                event_id=row["event_id"],
                traceparent=row["traceparent"],
                submission=model.model_validate_json(payload),
                received_at=row["received_at"],
                stored=True,
            )
            key = (row["record_kind"], row["partner_id"], row["external_id"])
            work.held.setdefault(key, []).append(held)

    def _a_number_index(self, a_number: str) -> str:
        return blind_index(rules.normalise_a_number(a_number), self._index_key)

    # -- deciding -------------------------------------------------------------------------------

    def _decide(self, work: _Work, submission_id: UUID, received: Received) -> None:
        item = received.item
        base = Decision(
            submission_id=submission_id,
            status="rejected",
            partner_id=received.partner_id,
            event_id=received.event_id,
            event_type=received.event_type,
            external_id=_external_id(item),
            received_at=received.received_at,
            decided_at=work.now,
        )
        if isinstance(item, DecodeError):
            self._reject(work, base, received, item.reasons)
            return
        partner_id = item.partner_id
        if partner_id is None or partner_id not in work.partners:
            reason = Reason("", "unknown_partner", "No active partner owns this topic; ask Lastline staff")
            self._reject(work, base, received, (reason,))
            return
        submission = item.data
        assert isinstance(submission, Submission)
        problems = rules.check_submission(submission, work.today)
        if problems:
            self._reject(work, base, received, tuple(problems))
            return
        context = _Context(work, base, partner_id, item.traceparent)
        outcome = self._apply(context, submission)
        if isinstance(outcome, tuple):
            self._reject(work, base, received, outcome)
            return
        work.decisions[submission_id] = outcome
        if outcome.result == "held":
            self._hold(
                work,
                decision=outcome,
                partner_id=partner_id,
                submission=submission,
                traceparent=item.traceparent,
                received_at=received.received_at,
            )

    def _apply(self, context: _Context, submission: Submission) -> Decision | tuple[Reason, ...]:
        if isinstance(submission, VolunteerSubmission):
            return self._volunteer(context, rules.normalise_volunteer(submission))
        if isinstance(submission, VolunteerWithdrawnSubmission):
            return self._withdraw(context, submission)
        if isinstance(submission, CaseSubmission):
            return self._case(context, rules.normalise_case(submission))
        if isinstance(submission, CaseClosedSubmission):
            return self._close(context, submission)
        raise TypeError(f"no rule for {type(submission).__name__}")

    def _hold(
        self,
        work: _Work,
        *,
        decision: Decision,
        partner_id: str,
        submission: Submission,
        traceparent: str | None,
        received_at: datetime,
    ) -> None:
        assert decision.record_kind is not None
        assert decision.external_id is not None
        held = _Held(
            decision.submission_id, decision.event_id or "", traceparent, submission, received_at, False
        )
        work.held.setdefault((decision.record_kind, partner_id, decision.external_id), []).append(held)
        work.held_rows.append(
            {
                "submission_id": decision.submission_id,
                "record_kind": decision.record_kind,
                "partner_id": partner_id,
                "external_id": decision.external_id,
                "event_type": submission.event_type,
                "event_id": decision.event_id or "",
                "traceparent": traceparent,
                "payload": self._keyring.encrypt(
                    submission.model_dump_json().encode(), aad=_held_aad(decision.submission_id)
                ),
                "received_at": received_at,
            }
        )

    def _release_held(self, context: _Context, kind: RecordKind, external_id: str) -> None:
        """Apply the updates that waited for this registration, in the order they arrived."""
        work = context.work
        for held in work.held.pop((kind, context.partner_id, external_id), []):
            base = Decision(
                submission_id=held.submission_id,
                status="rejected",
                partner_id=context.partner_id,
                event_id=held.event_id,
                event_type=held.submission.event_type,
                external_id=external_id,
                received_at=held.received_at,
                decided_at=work.now,
            )
            outcome = self._apply(_Context(work, base, context.partner_id, held.traceparent), held.submission)
            if isinstance(outcome, tuple):
                # Valid when it arrived, in conflict now (an email taken meanwhile): recorded, not retried.
                outcome = _replace(base, status="rejected", reasons=outcome)
            if held.stored:
                work.released_held.append(held.submission_id)
            else:  # held and released in this batch: never stored
                work.held_rows = [r for r in work.held_rows if r["submission_id"] != held.submission_id]
            work.decisions[held.submission_id] = outcome

    # -- volunteers -----------------------------------------------------------------------------

    def _volunteer(self, context: _Context, submission: VolunteerSubmission) -> Decision | tuple[Reason, ...]:
        work, partner_id = context.work, context.partner_id
        ref = (partner_id, submission.external_id)
        email_key = rules.normalise_email(submission.email)
        volunteer_id = work.volunteer_refs.get(ref)
        registering = isinstance(submission, VolunteerRegisteredSubmission)
        if volunteer_id is None and not registering:
            return context.decided("accepted", "held", "volunteer", None)
        linked = False
        if volunteer_id is None:
            volunteer_id = work.volunteers_by_email.get(email_key)
            linked = volunteer_id is not None
        if volunteer_id is None:
            volunteer_id = uuid4()
            profile = VolunteerRegistered(
                volunteer_id=volunteer_id,
                name=submission.name,
                email=submission.email.strip(),
                registered_by=PartnerRef(partner_id=partner_id, external_id=submission.external_id),
                **_skills(submission),
            )
            volunteer = _Volunteer(volunteer_id, email_key, "active", _profile(profile), 0, dirty=True)
            work.volunteers[volunteer_id] = volunteer
            work.volunteers_by_email[email_key] = volunteer_id
            self._add_volunteer_ref(work, ref, volunteer_id)
            context.emit(profile)
            self._release_held(context, "volunteer", submission.external_id)
            return context.decided("accepted", "created", "volunteer", volunteer_id)
        volunteer = work.volunteers[volunteer_id]
        owner = work.volunteers_by_email.get(email_key)
        if owner is not None and owner != volunteer_id:
            message = "Another volunteer in the network has this email address; volunteers are one per email"
            return (Reason("email", "email_taken", message),)
        registered_by = volunteer.profile.get("registered_by")
        profile_fields: dict[str, Any] = {
            "volunteer_id": volunteer_id,
            "name": submission.name,
            "email": submission.email.strip(),
            "registered_by": registered_by,
            **_skills(submission),
        }
        reactivated = registering and volunteer.status == "withdrawn"
        event_model = VolunteerRegistered if reactivated else VolunteerUpdated
        event = event_model.model_validate(profile_fields)
        changed = _profile(event) != volunteer.profile
        if changed or reactivated or volunteer.email_key != email_key:
            work.volunteers_by_email.pop(volunteer.email_key, None)
            work.volunteers_by_email[email_key] = volunteer_id
            volunteer.email_key = email_key
            volunteer.profile = _profile(event)
            volunteer.status = "active"
            volunteer.version += 1
            volunteer.dirty = True
            context.emit(event)
        new_ref = ref not in work.volunteer_refs
        if new_ref:
            self._add_volunteer_ref(work, ref, volunteer_id)
        if registering:
            self._release_held(context, "volunteer", submission.external_id)
        result: Result = "merged" if linked else "updated" if changed or reactivated else "unchanged"
        return context.decided("accepted", result, "volunteer", volunteer_id)

    def _add_volunteer_ref(self, work: _Work, ref: tuple[str, str], volunteer_id: UUID) -> None:
        work.volunteer_refs[ref] = volunteer_id
        work.new_volunteer_refs.append(
            {"partner_id": ref[0], "external_id": ref[1], "volunteer_id": volunteer_id}
        )

    def _withdraw(self, context: _Context, submission: VolunteerWithdrawnSubmission) -> Decision:
        work = context.work
        volunteer_id = work.volunteer_refs.get((context.partner_id, submission.external_id))
        if volunteer_id is None:
            return context.decided("accepted", "held", "volunteer", None)
        volunteer = work.volunteers[volunteer_id]
        if volunteer.status == "withdrawn":
            return context.decided("accepted", "unchanged", "volunteer", volunteer_id)
        volunteer.status = "withdrawn"
        volunteer.version += 1
        volunteer.dirty = True
        context.emit(VolunteerWithdrawn(volunteer_id=volunteer_id, reason=submission.reason))
        return context.decided("accepted", "withdrawn", "volunteer", volunteer_id)

    # -- cases ----------------------------------------------------------------------------------

    def _case(self, context: _Context, submission: CaseSubmission) -> Decision | tuple[Reason, ...]:
        work, partner_id = context.work, context.partner_id
        ref = (partner_id, submission.external_id)
        opening = isinstance(submission, CaseOpenedSubmission)
        a_index = self._a_number_index(submission.client.a_number) if submission.client.a_number else None
        case_id = work.case_refs.get(ref)
        if case_id is None and not opening:
            return context.decided("accepted", "held", "case", None)
        if case_id is not None and work.cases[case_id].status == "closed":
            message = "This case is closed; refer the client again under a new external_id"
            return (Reason("external_id", "case_closed", message),)
        linked = False
        if case_id is None and a_index is not None:
            case_id = work.cases_by_a_number.get(a_index)
            linked = case_id is not None
        if case_id is None:
            return self._open_case(context, submission, a_index)
        case = work.cases[case_id]
        if a_index is not None and work.cases_by_a_number.get(a_index, case_id) != case_id:
            message = "Another open case in the network has this A-number; ask Lastline staff to merge them"
            return (Reason("client.a_number", "a_number_conflict", message),)
        facts = {**case.facts, **_json(_facts(submission))}
        changes = {change for name, change in _FACT_CHANGES.items() if facts[name] != case.facts[name]}
        referrals = list(case.facts["referrals"])
        new_ref = ref not in work.case_refs
        if new_ref:
            referrals.append({"partner_id": partner_id, "external_id": submission.external_id})
            facts["referrals"] = referrals
            changes.add(CaseChange.REFERRAL_ADDED)
            work.case_refs[ref] = case_id
            work.new_case_refs.append(
                {"partner_id": partner_id, "external_id": submission.external_id, "case_id": case_id}
            )
        pii = self._case_pii(case).with_submission(partner_id, submission)
        pii_changed = pii != case.pii
        if a_index is not None and a_index != case.a_number_index:
            if case.a_number_index is not None:
                work.cases_by_a_number.pop(case.a_number_index, None)
            work.cases_by_a_number[a_index] = case_id
            case.a_number_index = a_index
            pii_changed = True
        if changes or pii_changed:
            case.pii = pii
            case.facts = facts
            case.version += 1
            case.dirty = True
        if changes:
            context.emit(
                CaseUpdated.model_validate(
                    {**facts, "case_id": case_id, "changes": sorted(changes, key=list(CaseChange).index)}
                )
            )
        if opening:
            self._release_held(context, "case", submission.external_id)
        result: Result = "merged" if linked else "updated" if changes or pii_changed else "unchanged"
        return context.decided("accepted", result, "case", case_id)

    def _open_case(self, context: _Context, submission: CaseSubmission, a_index: str | None) -> Decision:
        work, partner_id = context.work, context.partner_id
        case_id = uuid4()
        event = CaseOpened(
            case_id=case_id,
            referrals=(PartnerRef(partner_id=partner_id, external_id=submission.external_id),),
            **_facts(submission),
        )
        pii = CasePii(client=submission.client, referrals=(referral_pii(partner_id, submission),))
        case = _Case(
            case_id=case_id,
            status="open",
            a_number_index=a_index,
            facts=_profile(event, exclude={"case_id"}),
            pii_blob=None,
            version=0,
            pii=pii,
            dirty=True,
        )
        work.cases[case_id] = case
        if a_index is not None:
            work.cases_by_a_number[a_index] = case_id
        work.case_refs[(partner_id, submission.external_id)] = case_id
        work.new_case_refs.append(
            {"partner_id": partner_id, "external_id": submission.external_id, "case_id": case_id}
        )
        context.emit(event)
        self._release_held(context, "case", submission.external_id)
        return context.decided("accepted", "created", "case", case_id)

    def _close(self, context: _Context, submission: CaseClosedSubmission) -> Decision:
        work = context.work
        case_id = work.case_refs.get((context.partner_id, submission.external_id))
        if case_id is None:
            return context.decided("accepted", "held", "case", None)
        case = work.cases[case_id]
        if case.status == "closed":
            return context.decided("accepted", "unchanged", "case", case_id)
        case.status = "closed"
        case.outcome = submission.outcome.value
        case.closed_on = submission.closed_on
        case.version += 1
        case.dirty = True
        if case.a_number_index is not None:
            work.cases_by_a_number.pop(case.a_number_index, None)
        context.emit(CaseClosed(case_id=case_id, outcome=submission.outcome, closed_on=submission.closed_on))
        return context.decided("accepted", "closed", "case", case_id)

    def _case_pii(self, case: _Case) -> CasePii:
        if case.pii is None:
            if case.pii_blob is None:
                raise ValueError("the case's client details were erased")
            case.pii = decrypt_case_pii(self._keyring, case.case_id, case.pii_blob)
        return case.pii

    # -- rejecting ------------------------------------------------------------------------------

    def _reject(self, work: _Work, base: Decision, received: Received, reasons: Sequence[Reason]) -> None:
        decision = _replace(base, status="rejected", reasons=tuple(reasons))
        work.decisions[base.submission_id] = decision
        item = received.item
        if isinstance(item, DecodeError):
            value, key, headers = item.value, item.key, item.headers
            topic = item.topic
        else:
            value, key, headers = item.data.model_dump_json().encode(), item.key, item.headers
            topic = item.topic
        work.quarantine_rows.append(
            {
                "submission_id": base.submission_id,
                "partner_id": received.partner_id,
                "channel": received.channel,
                "topic": topic,
                "partition": received.partition,
                "offset": received.offset,
                "record_key": key,
                "headers": [
                    # decode() rejected a name with U+0000; jsonb cannot hold it, so it is replaced.
                    {"name": name.replace("\x00", "\ufffd"), "value": base64.b64encode(raw or b"").decode()}
                    for name, raw in headers
                ],
                "value_encrypted": (
                    self._keyring.encrypt(value, aad=quarantine_aad(base.submission_id)) if value else None
                ),
                "value_bytes": len(value or b""),
                "reasons": [_reason_json(r) for r in reasons],
                "received_at": received.received_at,
            }
        )
        if received.partner_id is None or received.partner_id not in work.partners:
            # No partner to tell, and no rejections topic to tell them on: kept for staff only.
            log.warning(
                "submission rejected without a partner to tell", submission_id=str(base.submission_id)
            )
            return
        rejected = SubmissionRejected(
            submission_id=base.submission_id,
            partner_id=received.partner_id,
            event_id=(received.event_id or "")[:200] or None,
            submission_type=(received.event_type or "")[:200] or None,
            external_id=base.external_id,
            reasons=tuple(
                RejectionReason(path=r.path[:300], code=r.code, message=r.message) for r in reasons[:100]
            ),
            suggestions=tuple(_suggestions(reasons)),
        )
        work.records.append(encode(rejected, source=SOURCE))

    # -- flushing -------------------------------------------------------------------------------

    async def _flush(self, session: AsyncSession, work: _Work) -> None:
        t = self._t
        volunteers = [v for v in work.volunteers.values() if v.dirty]
        if volunteers:
            statement = insert(t.volunteers)
            excluded = statement.excluded
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["volunteer_id"],
                    set_={
                        "email_key": excluded.email_key,
                        "status": excluded.status,
                        "profile": excluded.profile,
                        "version": excluded.version,
                        "updated_at": func.now(),
                    },
                ),
                [
                    {
                        "volunteer_id": v.volunteer_id,
                        "email_key": v.email_key,
                        "status": v.status,
                        "profile": v.profile,
                        "version": v.version,
                    }
                    for v in volunteers
                ],
            )
        cases = [c for c in work.cases.values() if c.dirty]
        if cases:
            rows = []
            for case in cases:
                blob = case.pii_blob
                if case.pii is not None:
                    blob = encrypt_case_pii(self._keyring, case.case_id, case.pii)
                rows.append(
                    {
                        "case_id": case.case_id,
                        "status": case.status,
                        "a_number_index": case.a_number_index,
                        "facts": case.facts,
                        "pii": blob,
                        "pii_key_id": self._keyring.active_key_id if case.pii is not None else None,
                        "outcome": case.outcome,
                        "closed_on": case.closed_on,
                        "version": case.version,
                    }
                )
            statement = insert(t.cases)
            excluded = statement.excluded
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["case_id"],
                    set_={
                        "status": excluded.status,
                        "a_number_index": excluded.a_number_index,
                        "facts": excluded.facts,
                        "pii": excluded.pii,
                        "pii_key_id": excluded.pii_key_id,
                        "outcome": excluded.outcome,
                        "closed_on": excluded.closed_on,
                        "version": excluded.version,
                        "updated_at": func.now(),
                    },
                ),
                rows,
            )
        if work.new_volunteer_refs:
            await session.execute(insert(t.volunteer_refs), work.new_volunteer_refs)
        if work.new_case_refs:
            await session.execute(insert(t.case_refs), work.new_case_refs)
        if work.held_rows:
            await session.execute(insert(t.held), work.held_rows)
        if work.released_held:
            await session.execute(delete(t.held).where(t.held.c.submission_id.in_(work.released_held)))
        if work.quarantine_rows:
            await session.execute(insert(t.quarantine), work.quarantine_rows)
        if work.decisions:
            s = t.submissions
            await session.execute(
                update(s)
                .where(s.c.submission_id == bindparam("b_submission_id"))
                .values(
                    status=bindparam("b_status"),
                    result=bindparam("b_result"),
                    record_kind=bindparam("b_record_kind"),
                    record_id=bindparam("b_record_id"),
                    reasons=bindparam("b_reasons"),
                    decided_at=bindparam("b_decided_at"),
                ),
                [
                    {
                        "b_submission_id": d.submission_id,
                        "b_status": d.status,
                        "b_result": d.result,
                        "b_record_kind": d.record_kind,
                        "b_record_id": d.record_id,
                        "b_reasons": [_reason_json(r) for r in d.reasons] or None,
                        "b_decided_at": d.decided_at,
                    }
                    for d in work.decisions.values()
                ],
            )
        if work.records:
            await self._outbox.add(session, work.records)

    # -- reading --------------------------------------------------------------------------------

    async def decision(
        self,
        session: AsyncSession,
        partner_id: str,
        *,
        submission_id: UUID | None = None,
        event_id: str | None = None,
    ) -> Decision | None:
        """A partner's submission by intake's id or by its own event id; None if not theirs."""
        s = self._t.submissions
        query = select(s).where(s.c.partner_id == partner_id)
        if submission_id is not None:
            query = query.where(s.c.submission_id == submission_id)
        elif event_id is not None:
            query = query.where(s.c.event_id == event_id)
        else:
            raise ValueError("pass submission_id or event_id")
        row = (await session.execute(query)).mappings().first()
        return decision_from_row(row) if row is not None else None


@dataclass(slots=True)
class _Context:
    """One submission being applied: where its decision and events go."""

    work: _Work
    base: Decision
    partner_id: str
    traceparent: str | None

    def emit(self, event: Contract) -> None:
        self.work.records.append(encode(event, source=SOURCE, traceparent=self.traceparent))

    def decided(self, status: str, result: Result, kind: RecordKind, record_id: UUID | None) -> Decision:
        return _replace(self.base, status=status, result=result, record_kind=kind, record_id=record_id)


def _replace(decision: Decision, **changes: Any) -> Decision:
    return replace(decision, **changes)


def _as_duplicate(decision: Decision) -> Decision:
    return _replace(decision, duplicate=True)


def _external_id(item: Envelope | DecodeError) -> str | None:
    if isinstance(item, Envelope):
        value = getattr(item.data, "external_id", None)
        return str(value) if value is not None else None
    if item.key is None:
        return None
    try:
        text = item.key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if rules.looks_like_external_id(text) else None


def _held_aad(submission_id: UUID) -> bytes:
    return f"held:{submission_id}".encode()


def quarantine_aad(submission_id: UUID) -> bytes:
    """What a quarantined value's encryption is bound to."""
    return f"quarantine:{submission_id}".encode()


def _profile(event: Contract, exclude: set[str] | None = None) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude=exclude)


def _json(values: dict[str, Any]) -> dict[str, Any]:
    return CaseFacts.model_validate(values).model_dump(mode="json")


def _reason_json(reason: Reason) -> dict[str, str]:
    return {"path": reason.path, "code": reason.code, "message": reason.message}


def _suggestions(reasons: Iterable[Reason]) -> Iterable[Suggestion]:
    seen: set[tuple[str, str]] = set()
    for reason in reasons:
        hint = _HINTS.get(reason.code)
        if hint is None and "language" in reason.path:
            hint = _HINTS["language_code"]
        if hint is not None and (reason.path, hint) not in seen:
            seen.add((reason.path, hint))
            yield Suggestion(path=reason.path[:300], hint=hint)


def decision_from_row(row: Any) -> Decision:
    """A decision as recorded in ``submissions``."""
    status = row["status"]
    return Decision(
        submission_id=row["submission_id"],
        status="accepted" if status == "processing" else status,
        partner_id=row["partner_id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        external_id=row["external_id"],
        result=row["result"],
        record_kind=row["record_kind"],
        record_id=row["record_id"],
        reasons=tuple(Reason(r["path"], r["code"], r["message"]) for r in row["reasons"] or ()),
        received_at=row["received_at"],
        decided_at=row["decided_at"],
    )
