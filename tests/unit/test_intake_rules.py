"""Intake's rules beyond the schema (reference codes, dates, phones, placeholder A-numbers) and the
normalisers, on the partner-facing submission models."""

from __future__ import annotations

import unicodedata
from datetime import date, timedelta
from typing import Any

import pytest

from lastline_intake.rules import (
    check_case,
    check_submission,
    check_volunteer,
    normalise_a_number,
    normalise_case,
    normalise_email,
    normalise_name,
    normalise_phone,
    normalise_volunteer,
)
from lastline_shared.contracts.envelope import Reason
from lastline_shared.contracts.examples import NOW, example_submissions
from lastline_shared.contracts.submissions import (
    CaseClosedSubmission,
    CaseOpenedSubmission,
    CaseUpdatedSubmission,
    VolunteerRegisteredSubmission,
    VolunteerUpdatedSubmission,
    VolunteerWithdrawnSubmission,
)

TODAY = NOW.date()  # the examples' story happens on 2026-03-02


def _example(kind: type[Any]) -> Any:
    return next(s for s in example_submissions() if type(s) is kind)


def _case(**changes: Any) -> CaseOpenedSubmission:
    data = _example(CaseOpenedSubmission).model_dump()
    client = {**data["client"], **changes.pop("client", {})}
    return CaseOpenedSubmission.model_validate({**data, **changes, "client": client})


def _volunteer(**changes: Any) -> VolunteerRegisteredSubmission:
    data = _example(VolunteerRegisteredSubmission).model_dump()
    return VolunteerRegisteredSubmission.model_validate({**data, **changes})


def _codes(reasons: list[Reason]) -> list[tuple[str, str]]:
    return [(r.path, r.code) for r in reasons]


@pytest.mark.parametrize(
    "kind",
    [
        CaseOpenedSubmission,
        CaseUpdatedSubmission,
        VolunteerRegisteredSubmission,
        VolunteerUpdatedSubmission,
        VolunteerWithdrawnSubmission,
    ],
)
def test_the_contract_examples_pass(kind: type[Any]) -> None:
    assert check_submission(_example(kind), TODAY) == []


def test_unknown_facility_suggests_the_nearest_codes() -> None:
    reasons = check_case(_case(facility_code="STWRTGX"), TODAY)
    assert _codes(reasons) == [("facility_code", "unknown_facility")]
    assert "STWRTGA (Stewart Detention Center, Lumpkin, GA)" in reasons[0].message
    assert "STWRTGX" not in reasons[0].message  # what was sent is never echoed
    assert reasons[0].message.count(" (") == 3  # three suggestions


def test_unknown_court_suggests_the_nearest_codes() -> None:
    reasons = check_case(_case(court_code="LUMP"), TODAY)
    assert _codes(reasons) == [("court_code", "unknown_court")]
    assert reasons[0].message.startswith("Unknown immigration court code; nearest known: LUM (Stewart")
    assert "LUMP" not in reasons[0].message


def test_hearing_today_is_fine_but_not_yesterday() -> None:
    assert check_case(_case(next_hearing_date=TODAY), TODAY) == []
    assert check_case(_case(next_hearing_date=None), TODAY) == []
    reasons = check_case(_case(next_hearing_date=TODAY - timedelta(days=1)), TODAY)
    assert _codes(reasons) == [("next_hearing_date", "hearing_in_past")]


def test_detained_since_today_is_fine_but_not_tomorrow() -> None:
    assert check_case(_case(detained_since=TODAY), TODAY) == []
    reasons = check_case(_case(detained_since=TODAY + timedelta(days=1)), TODAY)
    assert _codes(reasons) == [("detained_since", "detained_since_in_future")]


def test_the_same_submission_is_judged_by_the_date_given() -> None:
    case = _case()
    assert check_case(case, TODAY) == []
    assert _codes(check_case(case, date(2026, 11, 28))) == [("next_hearing_date", "hearing_in_past")]


@pytest.mark.parametrize("phone", ["000 000 0000", "+1 555 12", "999 999-9999"])
def test_phones_that_are_not_real_numbers_are_rejected_without_echo(phone: str) -> None:
    referral = {"name": "R", "email": "r@example.org", "phone": phone}
    case = _case(client={"contact": {"phone": phone}}, referral_contact=referral)
    reasons = check_case(case, TODAY)
    assert _codes(reasons) == [
        ("client.contact.phone", "invalid_phone"),
        ("referral_contact.phone", "invalid_phone"),
    ]
    assert all(phone not in r.message for r in reasons)
    assert _codes(check_volunteer(_volunteer(phone=phone), TODAY)) == [("phone", "invalid_phone")]


@pytest.mark.parametrize("a_number", ["000000000", "A999999999"])
def test_placeholder_a_numbers_are_rejected(a_number: str) -> None:
    reasons = check_case(_case(client={"a_number": a_number}), TODAY)
    assert _codes(reasons) == [("client.a_number", "placeholder_a_number")]
    assert a_number[-9:] not in reasons[0].message


def test_a_case_without_a_number_or_contact_is_fine() -> None:
    assert check_case(_case(client={"a_number": None, "contact": None}, referral_contact=None), TODAY) == []


def test_every_problem_is_reported_at_once() -> None:
    case = _case(
        facility_code="NOWHERE",
        court_code="ZZZ",
        next_hearing_date=TODAY - timedelta(days=30),
        detained_since=TODAY + timedelta(days=3),
        client={"a_number": "111111111", "contact": {"phone": "000 000 0000"}},
    )
    assert [code for _, code in _codes(check_case(case, TODAY))] == [
        "unknown_facility",
        "unknown_court",
        "hearing_in_past",
        "detained_since_in_future",
        "placeholder_a_number",
        "invalid_phone",
    ]


def test_closing_dates_must_not_be_in_the_future() -> None:
    closed = _example(CaseClosedSubmission)  # closed on 2026-04-02
    assert check_case(closed, closed.closed_on) == []
    reasons = check_case(closed, closed.closed_on - timedelta(days=1))
    assert _codes(reasons) == [("closed_on", "closed_on_in_future")]


def test_volunteer_facilities_must_be_known_each_with_its_path() -> None:
    volunteer = _volunteer(facilities_reachable=("STWRTGA", "IRWINGX", "KRO", "ZZZZ"))
    reasons = check_volunteer(volunteer, TODAY)
    assert _codes(reasons) == [
        ("facilities_reachable[1]", "unknown_facility"),
        ("facilities_reachable[3]", "unknown_facility"),
    ]
    assert "IRWINGA (Irwin County Detention Center" in reasons[0].message


def test_withdrawals_have_nothing_to_check() -> None:
    assert check_volunteer(_example(VolunteerWithdrawnSubmission), TODAY) == []


# -- normalisers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A-123-456-789", "123456789"),
        ("a123456789", "123456789"),
        ("123 456 789", "123456789"),
        (" A 123.456.789 ", "123456789"),
        ("A12345678", "012345678"),  # legacy 8 digits, zero-padded
        ("12-345-678", "012345678"),
    ],
)
def test_normalise_a_number(raw: str, expected: str) -> None:
    assert normalise_a_number(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "A", "A1234567", "1234567890", "A12345678X", "AA123456789", "١٢٣٤٥٦٧٨٩", "123_456_789"]
)
def test_normalise_a_number_rejects_without_echo(raw: str) -> None:
    with pytest.raises(ValueError, match="expected 8 or 9 digits") as error:
        normalise_a_number(raw)
    assert not any(c.isdigit() for c in str(error.value).replace("8 or 9", ""))


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(404) 331-5033", "US", "+14043315033"),
        ("404.331.5033", "US", "+14043315033"),
        ("+502 2345 6789", "US", "+50223456789"),  # a country code wins over the default region
        ("+44 20 7946 0018", "US", "+442079460018"),
        ("55 1234 5678", "MX", "+525512345678"),
    ],
)
def test_normalise_phone_gives_e164(raw: str, region: str, expected: str) -> None:
    assert normalise_phone(raw, default_region=region) == expected


@pytest.mark.parametrize("raw", ["12", "000 000 0000", "call me maybe", "+999 1234 5678"])
def test_normalise_phone_rejects_without_echo(raw: str) -> None:
    with pytest.raises(ValueError, match="phone number") as error:
        normalise_phone(raw)
    assert raw not in str(error.value)
    assert error.value.__cause__ is None


def test_normalise_name_trims_collapses_and_composes() -> None:
    decomposed = unicodedata.normalize("NFD", "  José \t María\n Pérez  ")
    assert decomposed != unicodedata.normalize("NFC", decomposed)
    assert normalise_name(decomposed) == "José María Pérez"
    assert normalise_name(decomposed) == unicodedata.normalize("NFC", "José María Pérez")
    assert normalise_name("K'iche'") == "K'iche'"


def test_normalise_email_is_a_dedupe_key() -> None:
    assert normalise_email(" Dana.Whitfield@Example.ORG ") == "dana.whitfield@example.org"


def test_normalise_case_cleans_names_and_phones_and_keeps_its_type() -> None:
    case = _case(
        client={
            "given_name": "  Ixchel ",
            "family_name": unicodedata.normalize("NFD", "Pérez   Tzoc"),
            "other_names": ("Ixchel  Perez",),
            "contact": {"phone": "229 555-0142"},
        },
        referral_contact={"name": " Rosa  Alvarez", "email": "rosa@example.org", "phone": "404 555 0123"},
    )
    normalised = normalise_case(case)
    assert type(normalised) is CaseOpenedSubmission
    assert (normalised.client.given_name, normalised.client.family_name) == ("Ixchel", "Pérez Tzoc")
    assert normalised.client.other_names == ("Ixchel Perez",)
    assert normalised.client.contact is not None
    assert normalised.client.contact.phone == "+12295550142"
    assert normalised.referral_contact is not None
    assert (normalised.referral_contact.name, normalised.referral_contact.phone) == (
        "Rosa Alvarez",
        "+14045550123",
    )
    assert normalised.client.a_number == case.client.a_number == "201234567"
    assert normalised.model_dump(exclude={"client", "referral_contact"}) == case.model_dump(
        exclude={"client", "referral_contact"}
    )
    assert normalise_case(normalised) == normalised  # idempotent


def test_normalise_case_without_optional_parts() -> None:
    case = _case(client={"contact": None}, referral_contact=None)
    assert normalise_case(case) == case


def test_normalise_volunteer_cleans_name_and_phone() -> None:
    volunteer = normalise_volunteer(_volunteer(name=" Dana   Whitfield ", phone="404-555-0199"))
    assert type(volunteer) is VolunteerRegisteredSubmission
    assert (volunteer.name, volunteer.phone) == ("Dana Whitfield", "+14045550199")
    assert normalise_volunteer(_volunteer(phone=None)).phone is None
    assert normalise_volunteer(_volunteer(phone="000 000 0000")).phone == "000 000 0000"  # rules reject it
