"""The demo's plan: the intended mix of volunteers and cases, valid where it must be, hard where it should."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from lastline_intake import rules
from lastline_intake.demo import (
    CASE_MIX,
    DEMO_PARTNERS,
    HARD_CASE_HEARING_DAYS,
    RARE_LANGUAGE,
    DemoCase,
    DemoPlan,
)
from lastline_intake.demo_volunteers import proposal_links
from lastline_shared import reference
from lastline_shared.contracts.enums import CaseNeed

TODAY = date(2026, 3, 2)
PARTNERS = [p.partner_id for p in DEMO_PARTNERS]


def plan(tag: str = "t1") -> DemoPlan:
    demo = DemoPlan(PARTNERS, today=TODAY, seed=7, run_tag=tag)
    demo.facility_paused(demo.facility_to_pause())
    return demo


@pytest.fixture(scope="module")
def cases() -> list[DemoCase]:
    return list(plan().cases(1000))


def test_cases_follow_the_mix(cases: list[DemoCase]) -> None:
    kinds = Counter(case.kind for case in cases)
    total = sum(weight for _, weight in CASE_MIX)
    for kind, weight in CASE_MIX:
        assert abs(kinds[kind] / len(cases) - weight / total) < 0.04, (kind, kinds)
    assert len({case.submission.external_id for case in cases}) == len(cases)
    assert {case.partner_id for case in cases} == set(PARTNERS)


def test_each_kind_is_what_it_says(cases: list[DemoCase]) -> None:
    paused = plan().facility_to_pause()
    low, high = HARD_CASE_HEARING_DAYS
    for case in cases:
        s = case.submission
        problems = {reason.code for reason in rules.check_submission(s, TODAY)}
        assert reference.facility(s.facility_code) is not None
        assert reference.court(s.court_code) is not None
        assert s.next_hearing_date is not None
        days = (s.next_hearing_date - TODAY).days
        if case.kind == "rejected":
            assert "hearing_in_past" in problems
            continue
        assert problems == set(), (case.kind, problems)
        if case.kind == "placeable":
            assert 5 <= days <= 60
        elif case.kind == "hearing_in_2_days":
            assert days == 2
        else:
            assert low <= days <= high  # within 14 days: matching escalates it at its next check
        if case.kind == "rare_language":
            assert s.languages == (RARE_LANGUAGE,)
            assert s.needs[0] is CaseNeed.INTERPRETER
            assert s.client.country_of_nationality == "GT"
        if case.kind == "paused_facility":
            assert (s.facility_code, case.partner_id) == (paused, PARTNERS[0])


def test_volunteers_are_a_realistic_spread_that_never_speaks_the_rare_language() -> None:
    volunteers = list(plan().volunteers(300))
    assert len({v.email.lower() for _, v in volunteers}) == 300
    assert Counter(pid for pid, _ in volunteers) == dict.fromkeys(PARTNERS, 60)
    roles = Counter(str(role) for _, v in volunteers for role in v.roles)
    assert roles["attorney"] > 100
    assert {"interpreter", "law_student", "accredited_representative", "mentor"} <= set(roles)
    assert len({v.experience_level for _, v in volunteers}) == 4
    languages = {lang for _, v in volunteers for lang in v.languages}
    assert {"eng", "spa"} <= languages
    assert RARE_LANGUAGE not in languages
    reach = {code for _, v in volunteers for code in v.facilities_reachable}
    assert len(reach) > 20
    assert all(reference.facility(code) for code in reach)


def test_volunteers_are_the_same_every_run_and_clients_are_new() -> None:
    first, second = plan("run1"), plan("run2")
    assert [v for _, v in first.volunteers(50)] == [v for _, v in second.volunteers(50)]
    a = [c.submission for c in first.cases(50)]
    b = [c.submission for c in second.cases(50)]
    assert {c.client.a_number for c in a} & {c.client.a_number for c in b} <= {None}
    assert not {c.external_id for c in a} & {c.external_id for c in b}


def test_without_a_paused_facility_no_case_goes_there() -> None:
    demo = DemoPlan(PARTNERS, today=TODAY, seed=7, run_tag="t1")
    kinds = Counter(case.kind for case in demo.cases(300))
    assert kinds["paused_facility"] == 0
    assert kinds["rare_language"] > 0


def test_proposal_links_are_found_in_the_plain_text() -> None:
    base = "http://127.0.0.1:8002/v1/proposals/eyJhbGciOi.eyJwcm9w.c2lnbmF0dXJl"
    text = f"Accept this case:\n{base}/accept\n\nDecline:\n{base}/decline\n"
    assert proposal_links({"text": text, "html": None}) == [base]
    assert proposal_links({"text": "Your case packet: http://127.0.0.1:8001/v1/case-packets/x"}) == []
    assert proposal_links({"text": None, "html": f'<a href="{base}/accept">Accept</a>'}) == [base]
