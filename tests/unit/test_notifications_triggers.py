"""What triggers what (pure planning), retry backoff, and webhook signatures a partner can verify."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from lastline_notifications.deliveries import RetryPolicy
from lastline_notifications.projections import CaseSummary, Referral
from lastline_notifications.triggers import Subscriptions, Trigger, plan, webhook_destination
from lastline_notifications.webhooks import body_of, new_secret, signed_headers
from lastline_shared.contracts.base import Event
from lastline_shared.contracts.enums import EscalationLevel, RetractionReason
from lastline_shared.contracts.examples import EXAMPLE_PARTNER, example_events

EVENTS = {type(e).__name__: e for e in example_events()}
CASE = CaseSummary(
    case_id=EVENTS["CaseOpened"].case_id,  # type: ignore[attr-defined]
    status="open",
    facility_code="STWRTGA",
    court_code="LUM",
    case_type="asylum",
    languages=("mam", "spa"),
    next_hearing_date=date(2026, 3, 16),
    referrals=(Referral(EXAMPLE_PARTNER, "case-2026-0042"),),
)
HOOK = uuid.uuid4()
SUBSCRIBED = Subscriptions(
    {EXAMPLE_PARTNER: [(HOOK, frozenset({"placed", "rejected", "escalated", "closed"}))]}
)


def planned(
    event: Event, subscriptions: Subscriptions = SUBSCRIBED, oncall_emails: tuple[str, ...] = ()
) -> list[tuple[str, str, str]]:
    trigger = Trigger(str(uuid.uuid4()), event.event_type, datetime.now(UTC), event)
    return [
        (p.channel.value, p.recipient_kind.value, p.template)
        for p in plan(trigger, CASE, subscriptions, oncall_emails)
    ]


def test_each_trigger_reaches_the_people_concerned() -> None:
    assert planned(EVENTS["MatchProposed"]) == [("email", "volunteer", "match_proposed")]
    assert planned(EVENTS["MatchMade"]) == [
        ("email", "volunteer", "match_made"),
        ("staff_inbox", "staff", "inbox_placement"),
        ("webhook", "partner", "webhook_placed"),
    ]
    assert planned(EVENTS["MentorAssigned"]) == [
        ("email", "volunteer", "mentor_assigned_mentor"),
        ("email", "volunteer", "mentor_assigned_mentee"),
    ]
    assert planned(EVENTS["MatchExpired"]) == [("email", "volunteer", "proposal_expired")]
    assert planned(EVENTS["MatchRetracted"]) == [("email", "volunteer", "proposal_retracted")]
    withdrew = EVENTS["MatchRetracted"].model_copy(update={"reason": RetractionReason.VOLUNTEER_WITHDREW})
    assert planned(withdrew) == []
    assert planned(EVENTS["MatchEnded"]) == [
        ("email", "volunteer", "match_ended"),
        ("staff_inbox", "staff", "inbox_match_ended"),
    ]
    assert planned(EVENTS["VolunteerWithdrawn"]) == [("email", "volunteer", "volunteer_withdrawn")]
    assert planned(EVENTS["CaseClosed"]) == [("webhook", "partner", "webhook_closed")]
    for quiet in ("MatchAccepted", "MatchDeclined", "VolunteerRegistered", "CaseOpened", "NotificationSent"):
        assert planned(EVENTS[quiet]) == []


def test_escalations_go_to_the_inbox_and_at_three_days_to_oncall() -> None:
    escalated = EVENTS["CaseEscalated"]
    assert planned(escalated, oncall_emails=("a@x.org",)) == [
        ("staff_inbox", "staff", "inbox_escalation"),
        ("webhook", "partner", "webhook_escalated"),
    ]
    urgent = escalated.model_copy(update={"level": EscalationLevel.DAYS_3, "days_to_hearing": 3})
    assert planned(urgent, oncall_emails=("a@x.org", "b@x.org"))[-2:] == [
        ("email", "staff", "escalation_oncall"),
        ("email", "staff", "escalation_oncall"),
    ]


def test_rejections_go_to_the_partners_webhook_else_to_staff() -> None:
    rejected = EVENTS["SubmissionRejected"]
    assert planned(rejected) == [("webhook", "partner", "webhook_rejected")]
    assert planned(rejected, Subscriptions()) == [("staff_inbox", "staff", "inbox_rejection")]
    only_placed = Subscriptions({EXAMPLE_PARTNER: [(HOOK, frozenset({"placed"}))]})
    assert planned(rejected, only_placed) == [("staff_inbox", "staff", "inbox_rejection")]


def test_webhook_payload_names_the_partners_own_case_id_and_no_client_pii() -> None:
    trigger = Trigger(str(uuid.uuid4()), "match-made", datetime.now(UTC), EVENTS["MatchMade"])
    [hook] = [p for p in plan(trigger, CASE, SUBSCRIBED) if p.channel == "webhook"]
    assert hook.destination == webhook_destination(HOOK)
    payload = hook.context["payload"]
    assert payload["type"] == "case.placed"
    assert payload["data"]["external_id"] == "case-2026-0042"
    assert set(payload["data"]) == {"case_id", "match_id", "role", "placed_at", "external_id"}


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(base_s=10, max_s=100)
    for attempt, step in ((1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (9, 100)):
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert len(set(delays)) > 100  # jittered
    assert (policy.attempts_for("email"), policy.attempts_for("webhook")) == (6, 8)


def test_signature_verifies_with_the_reference_library_and_binds_id_time_and_body() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    body = body_of({"type": "case.placed", "data": {"case_id": "x", "name": "Añil"}})
    headers = signed_headers(secret, "msg_1", body, datetime.now(UTC))
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers)["data"]["name"] == "Añil"
    for changed in (
        {"webhook-id": "msg_2"},
        {"webhook-timestamp": str(int(datetime.now(UTC).timestamp()) - 1)},
    ):
        with pytest.raises(Exception, match="signature"):
            Webhook(secret).verify(body, {**headers, **changed})
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(body, headers)
    old = signed_headers(secret, "msg_1", body, datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(Exception, match="too old"):
        Webhook(secret).verify(body, old)
