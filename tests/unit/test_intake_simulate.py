"""The traffic simulator: deterministic, realistic, and its expected outcomes agree with intake's
decoder and rules (the e2e stream test checks them against the running service)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import date, timedelta

import pytest

from lastline_intake import rules
from lastline_intake.simulate import _BAD, INJECTIONS, Traffic, simulate
from lastline_shared import reference
from lastline_shared.contracts.envelope import Envelope, decode, encode
from lastline_shared.contracts.submissions import (
    CaseOpenedSubmission,
    CaseSubmission,
    VolunteerRegisteredSubmission,
    VolunteerSubmission,
)

TODAY = date(2026, 3, 2)
PARTNERS = ("clinic-a", "firm-b", "project-c")


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    return simulate(PARTNERS, total=3000, today=TODAY, malformed_ratio=0.25, seed=11)


def test_same_arguments_same_bytes_and_another_seed_differs() -> None:
    a = simulate(PARTNERS, total=200, today=TODAY, seed=1)
    assert a.records() == simulate(PARTNERS, total=200, today=TODAY, seed=1).records()
    assert a.records() != simulate(PARTNERS, total=200, today=TODAY, seed=2).records()


@pytest.mark.parametrize(
    ("total", "ratio"), [(1, 0.0), (10, 0.1), (997, 0.1), (500, 0.0), (40, 1.0), (60, 0.97)]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_total_and_share_of_rejections(total: int, ratio: float, seed: int) -> None:
    # A rejected update of a closed case brings its valid registration and closure along: never
    # more of them than the total leaves room for.
    traffic = simulate(PARTNERS[:2], total=total, today=TODAY, malformed_ratio=ratio, seed=seed)
    assert len(traffic.items) == total
    assert len(traffic.rejected()) == round(total * ratio)


def test_every_expectation_agrees_with_decode_and_rules(traffic: Traffic) -> None:
    for item in traffic.items:
        record, expected = item.record, item.expected
        decoded = decode(record.topic, record.key, list(record.headers), record.value)
        event_id = decoded.id if isinstance(decoded, Envelope) else decoded.event_id
        assert event_id == item.event_id, item.kind
        if expected.stage == "decode":
            assert not isinstance(decoded, Envelope), item.kind
            assert expected.codes <= {r.code for r in decoded.reasons}, (item.kind, decoded.reasons)
            continue
        assert isinstance(decoded, Envelope), (item.kind, getattr(decoded, "reasons", None))
        assert decoded.partner_id == item.partner_id
        problems = {r.code for r in rules.check_submission(decoded.data, TODAY)}  # type: ignore[arg-type]
        if expected.stage == "rules":
            assert expected.codes <= problems, (item.kind, problems)
        else:  # accepted, or rejected for the record's state (a closed case): valid on its own
            assert problems == set(), (item.kind, problems)
            assert item.submission is not None
            assert encode(item.submission, source=f"/partners/{item.partner_id}").value == record.value


def test_accepted_items_each_cause_one_canonical_event(traffic: Traffic) -> None:
    for item in traffic.accepted():
        assert item.expected.event_type is not None
        kind = item.kind.split("-")[0]
        assert item.expected.event_type.startswith(kind)
    events = traffic.expected_events()
    assert events["volunteer-registered"] == traffic.volunteers
    assert events["case-opened"] == traffic.cases
    assert set(events) == {
        "volunteer-registered",
        "volunteer-updated",
        "volunteer-withdrawn",
        "case-opened",
        "case-updated",
        "case-closed",
    }


def test_the_malformed_corpus_covers_every_kind(traffic: Traffic) -> None:
    kinds = Counter(item.kind for item in traffic.rejected())
    assert set(kinds) == {f"malformed:{kind}" for kind, *_ in _BAD}
    stages = Counter(item.expected.stage for item in traffic.rejected())
    assert stages.keys() == {"decode", "rules", "state"}
    codes = {code for item in traffic.rejected() for code in item.expected.codes}
    assert {
        "invalid_json",
        "invalid_encoding",
        "too_deeply_nested",
        "string_too_long",
        "unknown_event_type",
        "missing_header",
        "unsupported_specversion",
        "string_pattern_mismatch",
        "language_code",
        "missing",
        "unknown_facility",
        "hearing_in_past",
        "case_closed",
    } <= codes
    # A record without a readable ce_id cannot be recognised when it comes again.
    assert {i.kind for i in traffic.items if i.event_id is None} == {
        "malformed:missing-ce-id",
        "malformed:bad-ce-id",
    }


def test_hostile_text_is_valid_input(traffic: Traffic) -> None:
    hostile = [item for item in traffic.items if "injection" in item.tags]
    assert any(item.expected.status == "accepted" for item in hostile)
    names = {
        item.submission.name
        for item in traffic.accepted()
        if isinstance(item.submission, VolunteerSubmission) and "injection" in item.tags
    }
    assert names
    assert names <= set(INJECTIONS)


def test_records_use_real_places_and_sensible_dates(traffic: Traffic) -> None:
    languages: Counter[str] = Counter()
    for item in traffic.accepted():
        submission = item.submission
        if isinstance(submission, CaseSubmission):
            assert reference.facility(submission.facility_code) is not None
            assert reference.court(submission.court_code) is not None
            assert submission.next_hearing_date is not None
            assert submission.next_hearing_date >= TODAY + timedelta(days=14)
            assert submission.detained_since is None or submission.detained_since < TODAY
            assert submission.client.date_of_birth is not None
            assert submission.client.date_of_birth < TODAY - timedelta(days=15 * 365)
            languages.update(submission.languages)
        elif isinstance(submission, VolunteerSubmission):
            assert all(reference.facility(code) for code in submission.facilities_reachable)
            assert "eng" in submission.languages
    # ISO 639-3 after validation: Spanish most, then Mayan languages and Haitian Creole among others.
    assert languages.most_common(1)[0][0] == "spa"
    assert {"mam", "quc", "hat", "por"} <= languages.keys()


def test_registrations_shared_by_two_partners_and_updates_before_registration(traffic: Traffic) -> None:
    by_a_number: defaultdict[str, set[str]] = defaultdict(set)
    by_email: defaultdict[str, set[str]] = defaultdict(set)
    for item in traffic.accepted():
        submission = item.submission
        if isinstance(submission, CaseOpenedSubmission) and submission.client.a_number:
            by_a_number[rules.normalise_a_number(submission.client.a_number)].add(item.partner_id)
        if isinstance(submission, VolunteerRegisteredSubmission):
            by_email[submission.email.lower()].add(item.partner_id)
    assert any(len(partners) == 2 for partners in by_a_number.values())
    written = {
        (i.submission.client.a_number or "-")[:1]
        for i in traffic.accepted()
        if isinstance(i.submission, CaseSubmission)
    }
    assert written == {"A", "2", "-"}  # with and without the A (as on papers, as in databases), or unknown
    assert any(len(partners) == 2 for partners in by_email.values())
    assert traffic.cases == len(by_a_number) + sum(
        1
        for i in traffic.accepted()
        if isinstance(i.submission, CaseOpenedSubmission) and i.submission.client.a_number is None
    )

    held = [item for item in traffic.items if "held" in item.tags]
    assert held
    position = {id(item): n for n, item in enumerate(traffic.items)}
    for item in held:
        assert item.kind.endswith("-updated")
        registration = next(
            other
            for other in traffic.items
            if other.record.key == item.record.key
            and other.partner_id == item.partner_id
            and other.kind.endswith(("-registered", "-opened"))
        )
        assert position[id(item)] < position[id(registration)]


def test_client_pii_is_found_and_never_namesakes(traffic: Traffic) -> None:
    pii = traffic.client_pii()
    assert pii
    # Nothing outside a client's own record contains their names: not places, volunteers or texts.
    innocent = [
        *(place.label() for place in (*reference.all_facilities(), *reference.all_courts())),
        *INJECTIONS,
        *(
            json.dumps([item.submission.name, item.submission.email])
            for item in traffic.accepted()
            if isinstance(item.submission, VolunteerSubmission)
        ),
    ]
    assert traffic.pii_in("\n".join(innocent)) == set()
    case = next(i for i in traffic.accepted() if isinstance(i.submission, CaseOpenedSubmission))
    family, *_ = case.client_pii
    text = json.dumps({"log": f"client {case.client_pii[1]}", "a": case.client_pii[-2:]})
    assert {family, *case.client_pii[-2:]} <= traffic.pii_in(text)
