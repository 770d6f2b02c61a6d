"""What triggers what: from one event (and what the projections know) to the deliveries it causes.

Pure functions, decided once in the consumer's transaction. A delivery's ``context`` holds what the
message needs beyond the projections (read again at send time: the recipient's current address and
language, the case's current hearing date). Nothing here is client PII: none reaches notifications.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from lastline_notifications.projections import CaseSummary
from lastline_shared.contracts.base import Contract
from lastline_shared.contracts.cases import CaseClosed
from lastline_shared.contracts.enums import (
    EscalationLevel,
    NotificationChannel,
    RecipientKind,
    RetractionReason,
)
from lastline_shared.contracts.matches import (
    CaseEscalated,
    MatchEnded,
    MatchExpired,
    MatchMade,
    MatchProposed,
    MatchRetracted,
    MentorAssigned,
)
from lastline_shared.contracts.rejections import SubmissionRejected
from lastline_shared.contracts.volunteers import VolunteerWithdrawn

EMAIL = NotificationChannel.EMAIL
WEBHOOK = NotificationChannel.WEBHOOK
INBOX = NotificationChannel.STAFF_INBOX
SMTP_DESTINATION = "smtp"
INBOX_DESTINATION = "inbox"
STAFF_INBOX_RECIPIENT = "staff-inbox"

# Webhook event kinds partners subscribe to, and the Standard Webhooks ``type`` each sends.
WEBHOOK_TYPES = {
    "placed": "case.placed",
    "rejected": "submission.rejected",
    "escalated": "case.escalated",
    "closed": "case.closed",
}


def webhook_destination(subscription_id: UUID) -> str:
    return f"webhook:{subscription_id}"


@dataclass(frozen=True, slots=True)
class Trigger:
    """The event being handled, with its identity (a redelivery has the same ``event_id``)."""

    event_id: str
    event_type: str
    time: datetime
    data: Contract | None
    """None for what no event caused (a hearing reminder)."""


@dataclass(frozen=True, slots=True)
class InboxEntry:
    kind: str
    title: str
    details: dict[str, Any]
    case_id: UUID | None = None
    facility_code: str | None = None
    partner_id: str | None = None
    level: int | None = None
    next_hearing_date: date | None = None


@dataclass(frozen=True, slots=True)
class Planned:
    channel: NotificationChannel
    destination: str
    recipient_kind: RecipientKind
    recipient_id: str
    template: str
    case_id: UUID | None = None
    context: dict[str, Any] = field(default_factory=dict)
    inbox: InboxEntry | None = None


@dataclass(frozen=True)
class Subscriptions:
    """Active webhook subscriptions: partner id -> [(subscription id, kinds)]."""

    by_partner: Mapping[str, Sequence[tuple[UUID, frozenset[str]]]] = field(default_factory=dict)

    def endpoints(self, partner_id: str, kind: str) -> list[UUID]:
        return [sid for sid, kinds in self.by_partner.get(partner_id, ()) if kind in kinds]

    def has_any(self, partner_id: str) -> bool:
        return bool(self.by_partner.get(partner_id))


def _email(template: str, volunteer_id: UUID, case_id: UUID | None, **context: Any) -> Planned:
    return Planned(
        EMAIL,
        SMTP_DESTINATION,
        RecipientKind.VOLUNTEER,
        str(volunteer_id),
        template,
        case_id,
        _jsonable(context),
    )


def _inbox(trigger: Trigger, entry: InboxEntry) -> Planned:
    return Planned(
        INBOX,
        INBOX_DESTINATION,
        RecipientKind.STAFF,
        STAFF_INBOX_RECIPIENT,
        f"inbox_{entry.kind}",
        entry.case_id,
        {},
        entry,
    )


def _webhooks(
    trigger: Trigger,
    subscriptions: Subscriptions,
    partner_ids: Sequence[str],
    kind: str,
    data: Mapping[str, Any],
    *,
    case: CaseSummary | None = None,
) -> list[Planned]:
    planned = []
    for partner_id in dict.fromkeys(partner_ids):
        body = dict(data)
        if case is not None:
            body["external_id"] = case.external_id(partner_id)
        payload = {
            "type": WEBHOOK_TYPES[kind],
            "timestamp": trigger.time.isoformat(),
            "data": _jsonable(body),
        }
        for subscription_id in subscriptions.endpoints(partner_id, kind):
            planned.append(
                Planned(
                    WEBHOOK,
                    webhook_destination(subscription_id),
                    RecipientKind.PARTNER,
                    partner_id,
                    f"webhook_{kind}",
                    getattr(trigger.data, "case_id", None),
                    {"payload": payload},
                )
            )
    return planned


def _referrers(case: CaseSummary | None) -> list[str]:
    return [r.partner_id for r in case.referrals] if case is not None else []


def plan(
    trigger: Trigger,
    case: CaseSummary | None,
    subscriptions: Subscriptions,
    oncall_emails: Sequence[str] = (),
) -> list[Planned]:
    """The deliveries ``trigger`` causes (none for events that tell nobody anything)."""
    e = trigger.data
    if isinstance(e, MatchProposed):
        return [
            _email(
                "match_proposed",
                e.volunteer_id,
                e.case_id,
                proposal_id=e.proposal_id,
                role=e.role,
                reasons=list(e.reasons),
                expires_at=e.expires_at,
                mentor_needed=e.mentor_needed,
            )
        ]
    if isinstance(e, MatchMade):
        facility = case.facility_code if case else None
        return [
            _email("match_made", e.volunteer_id, e.case_id, match_id=e.match_id, role=e.role),
            _inbox(
                trigger,
                InboxEntry(
                    "placement",
                    f"Placed: {e.role.value.replace('_', ' ')} on a case at {facility or 'unknown'}",
                    _jsonable(
                        {
                            "match_id": e.match_id,
                            "volunteer_id": e.volunteer_id,
                            "role": e.role,
                            "overridden_by": e.overridden_by,
                        }
                    ),
                    case_id=e.case_id,
                    facility_code=facility,
                    partner_id=_referrers(case)[0] if case and case.referrals else None,
                ),
            ),
            *_webhooks(
                trigger,
                subscriptions,
                _referrers(case),
                "placed",
                {"case_id": e.case_id, "match_id": e.match_id, "role": e.role, "placed_at": trigger.time},
                case=case,
            ),
        ]
    if isinstance(e, MentorAssigned):
        ids = {"match_id": e.match_id, "mentor_id": e.mentor_id, "mentee_id": e.mentee_id}
        return [
            _email("mentor_assigned_mentor", e.mentor_id, e.case_id, other_volunteer_id=e.mentee_id, **ids),
            _email("mentor_assigned_mentee", e.mentee_id, e.case_id, other_volunteer_id=e.mentor_id, **ids),
        ]
    if isinstance(e, CaseEscalated):
        return _escalated(trigger, e, case, subscriptions, oncall_emails)
    if isinstance(e, MatchExpired):
        return [_email("proposal_expired", e.volunteer_id, e.case_id, proposal_id=e.proposal_id, role=e.role)]
    if isinstance(e, MatchRetracted):
        if e.reason == RetractionReason.VOLUNTEER_WITHDREW:
            return []  # they know: they withdrew
        return [
            _email(
                "proposal_retracted",
                e.volunteer_id,
                e.case_id,
                proposal_id=e.proposal_id,
                role=e.role,
                reason=e.reason,
            )
        ]
    if isinstance(e, MatchEnded):
        return [
            _email(
                "match_ended", e.volunteer_id, e.case_id, match_id=e.match_id, role=e.role, reason=e.reason
            ),
            _inbox(
                trigger,
                InboxEntry(
                    "match_ended",
                    f"Placement ended ({e.reason.value.replace('_', ' ')})",
                    _jsonable({"match_id": e.match_id, "volunteer_id": e.volunteer_id, "role": e.role}),
                    case_id=e.case_id,
                    facility_code=case.facility_code if case else None,
                ),
            ),
        ]
    if isinstance(e, VolunteerWithdrawn):
        return [_email("volunteer_withdrawn", e.volunteer_id, None, reason=e.reason)]
    if isinstance(e, CaseClosed):
        return _webhooks(
            trigger,
            subscriptions,
            _referrers(case),
            "closed",
            {"case_id": e.case_id, "outcome": e.outcome, "closed_on": e.closed_on},
            case=case,
        )
    if isinstance(e, SubmissionRejected):
        return _rejected(trigger, e, subscriptions)
    return []


def _escalated(
    trigger: Trigger,
    e: CaseEscalated,
    case: CaseSummary | None,
    subscriptions: Subscriptions,
    oncall_emails: Sequence[str],
) -> list[Planned]:
    facts = _jsonable(
        {
            "case_id": e.case_id,
            "level": int(e.level),
            "next_hearing_date": e.next_hearing_date,
            "days_to_hearing": e.days_to_hearing,
            "facility_code": e.facility_code,
            "missing": list(e.missing),
            "causes": list(e.causes),
            "proposals_open": e.proposals_open,
            "proposals_declined": e.proposals_declined,
            "proposals_expired": e.proposals_expired,
        }
    )
    missing = ", ".join(role.value.replace("_", " ") for role in e.missing)
    planned = [
        _inbox(
            trigger,
            InboxEntry(
                "escalation",
                f"Hearing in {e.days_to_hearing} days, still no {missing}",
                facts,
                case_id=e.case_id,
                facility_code=e.facility_code,
                partner_id=_referrers(case)[0] if case and case.referrals else None,
                level=int(e.level),
                next_hearing_date=e.next_hearing_date,
            ),
        ),
        *_webhooks(trigger, subscriptions, _referrers(case), "escalated", facts, case=case),
    ]
    if e.level == EscalationLevel.DAYS_3:
        for n, address in enumerate(oncall_emails):
            planned.append(
                Planned(
                    EMAIL,
                    SMTP_DESTINATION,
                    RecipientKind.STAFF,
                    f"oncall-{n}",
                    "escalation_oncall",
                    e.case_id,
                    {**facts, "to": address},
                )
            )
    return planned


def _rejected(trigger: Trigger, e: SubmissionRejected, subscriptions: Subscriptions) -> list[Planned]:
    data = e.model_dump(mode="json")
    webhooks = _webhooks(trigger, subscriptions, [e.partner_id], "rejected", data)
    if webhooks:
        return webhooks
    codes = sorted({reason.code for reason in e.reasons})
    return [
        _inbox(
            trigger,
            InboxEntry(
                "rejection",
                f"Rejected {e.submission_type or 'submission'} from {e.partner_id}: {', '.join(codes)}",
                data,
                partner_id=e.partner_id,
            ),
        )
    ]


def _jsonable(value: Any) -> Any:
    """JSON-ready copies of event values (UUIDs, dates, enums as their strings)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
