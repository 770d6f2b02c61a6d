"""Intake's rules beyond the schema, and the normalisers applied to accepted submissions.

The contracts already check types, sizes and formats (A-number pattern, emails, ISO codes); these rules
need reference data or today's date: facility and court codes exist, dates make sense, phone numbers
are real numbers. Every problem comes back as a :class:`Reason` so a partner can fix the feed; no
message repeats a submitted value, since rejections go back on the partner's topic and may be logged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import date
from typing import TypeVar

import phonenumbers

from lastline_shared import reference
from lastline_shared.contracts.base import Submission
from lastline_shared.contracts.envelope import Reason
from lastline_shared.contracts.submissions import (
    CaseClosedSubmission,
    CaseSubmission,
    VolunteerSubmission,
    VolunteerWithdrawnSubmission,
)

SUGGESTIONS = 3
"""How many known codes an ``unknown_facility`` or ``unknown_court`` message suggests."""

_PHONE_HINT = "use the international format with the country code, such as +1 404 555 0123"

# -- normalisers ------------------------------------------------------------------------------

_A_NUMBER_SEPARATORS = re.compile(r"[\s.-]")
_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")  # the contracts' ExternalId


def looks_like_external_id(text: str) -> bool:
    """Whether a record key could be a partner's external id (to name it in a rejection)."""
    return _EXTERNAL_ID.match(text) is not None


def normalise_a_number(raw: str) -> str:
    """An A-number as its 9 digits: ``A-123-456-789`` and ``a 123 456 789`` give ``123456789``.

    The leading ``A`` and separators (spaces, dashes, dots) are dropped. Older 8-digit A-numbers are
    zero-padded to 9 (``A12345678`` gives ``012345678``), the form USCIS and EOIR use, so one person
    has one normalised number. Raises ``ValueError`` (without the value) for anything else.
    """
    text = raw.strip()
    if text[:1] in ("A", "a"):
        text = text[1:]
    digits = _A_NUMBER_SEPARATORS.sub("", text)
    if not (digits.isascii() and digits.isdigit() and len(digits) in (8, 9)):
        raise ValueError("not an A-number: expected 8 or 9 digits, optionally prefixed by A")
    return digits.zfill(9)


def normalise_phone(raw: str, default_region: str = "US") -> str:
    """A phone number in E.164 (``+14045550123``); numbers without a country code are read as
    ``default_region``'s. Raises ``ValueError`` (without the value) if it is not a valid number."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_name(raw: str) -> str:
    """A name in Unicode NFC, trimmed, with each run of whitespace made one space."""
    return " ".join(unicodedata.normalize("NFC", raw).split())


def normalise_email(raw: str) -> str:
    """An email address as a dedupe key: trimmed and lower-cased (mail providers ignore case)."""
    return raw.strip().lower()


def _phone_or_as_is(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        return normalise_phone(raw)
    except ValueError:
        return raw  # the rules reject it; normalising never fails


CaseT = TypeVar("CaseT", bound=CaseSubmission)
VolunteerT = TypeVar("VolunteerT", bound=VolunteerSubmission)


def normalise_case(submission: CaseT) -> CaseT:
    """The submission with names trimmed (NFC) and valid phones in E.164 (the A-number is already
    its 9 digits: the contract strips the ``A``)."""
    client = submission.client
    contact = client.contact
    if contact is not None:
        contact = contact.model_copy(update={"phone": _phone_or_as_is(contact.phone)})
    client = client.model_copy(
        update={
            "given_name": normalise_name(client.given_name),
            "family_name": normalise_name(client.family_name),
            "other_names": tuple(normalise_name(name) for name in client.other_names),
            "contact": contact,
        }
    )
    referral = submission.referral_contact
    if referral is not None:
        referral = referral.model_copy(
            update={"name": normalise_name(referral.name), "phone": _phone_or_as_is(referral.phone)}
        )
    return submission.model_copy(update={"client": client, "referral_contact": referral})


def normalise_volunteer(submission: VolunteerT) -> VolunteerT:
    """The submission with the name trimmed (NFC) and a valid phone in E.164."""
    return submission.model_copy(
        update={"name": normalise_name(submission.name), "phone": _phone_or_as_is(submission.phone)}
    )


# -- rules ------------------------------------------------------------------------------------


def _nearest(places: Sequence[reference.Facility | reference.Court]) -> str:
    return "; ".join(place.label() for place in places)


def _facility_problem(path: str, code: str) -> Reason | None:
    if reference.facility(code) is not None:
        return None
    nearest = _nearest(reference.suggest_facilities(code, SUGGESTIONS))
    return Reason(path, "unknown_facility", f"Unknown facility code; nearest known: {nearest}")


def _court_problem(path: str, code: str) -> Reason | None:
    if reference.court(code) is not None:
        return None
    nearest = _nearest(reference.suggest_courts(code, SUGGESTIONS))
    return Reason(path, "unknown_court", f"Unknown immigration court code; nearest known: {nearest}")


def _phone_problem(path: str, raw: str | None) -> Reason | None:
    if raw is None:
        return None
    try:
        normalise_phone(raw)
    except ValueError:
        return Reason(path, "invalid_phone", f"Not a valid phone number; {_PHONE_HINT}")
    return None


def _a_number_problem(a_number: str | None) -> Reason | None:
    # Partners fill unknown A-numbers with 000000000 and the like; taken as real, they would merge
    # unrelated clients into one case.
    if a_number is None or len(set(a_number)) != 1:
        return None
    message = "Looks like a placeholder (one digit repeated); leave a_number out when it is not known"
    return Reason("client.a_number", "placeholder_a_number", message)


def _case_problems(submission: CaseSubmission, today: date) -> list[Reason | None]:
    problems = [
        _facility_problem("facility_code", submission.facility_code),
        _court_problem("court_code", submission.court_code),
    ]
    if submission.next_hearing_date is not None and submission.next_hearing_date < today:
        message = "The next hearing date is in the past; send the next scheduled hearing, or none"
        problems.append(Reason("next_hearing_date", "hearing_in_past", message))
    if submission.detained_since is not None and submission.detained_since > today:
        message = "The detention start date is in the future"
        problems.append(Reason("detained_since", "detained_since_in_future", message))
    client = submission.client
    problems.append(_a_number_problem(client.a_number))
    if client.contact is not None:
        problems.append(_phone_problem("client.contact.phone", client.contact.phone))
    if submission.referral_contact is not None:
        problems.append(_phone_problem("referral_contact.phone", submission.referral_contact.phone))
    return problems


def check_case(submission: CaseSubmission | CaseClosedSubmission, today: date) -> list[Reason]:
    """Every problem with a case submission that the schema cannot see; ``[]`` if none.

    ``today`` is the date at intake (the caller chooses the time zone: the network's, not UTC's).
    """
    if isinstance(submission, CaseClosedSubmission):
        if submission.closed_on > today:
            return [Reason("closed_on", "closed_on_in_future", "The closing date is in the future")]
        return []
    return [problem for problem in _case_problems(submission, today) if problem is not None]


def check_volunteer(
    submission: VolunteerSubmission | VolunteerWithdrawnSubmission,
    today: date,
) -> list[Reason]:
    """Every problem with a volunteer submission that the schema cannot see; ``[]`` if none.

    ``today`` is unused so far (no volunteer field is a date); it keeps one signature for all checks.
    """
    if isinstance(submission, VolunteerWithdrawnSubmission):
        return []
    problems = [
        _facility_problem(f"facilities_reachable[{i}]", code)
        for i, code in enumerate(submission.facilities_reachable)
    ]
    problems.append(_phone_problem("phone", submission.phone))
    return [problem for problem in problems if problem is not None]


def check_submission(submission: Submission, today: date) -> list[Reason]:
    """:func:`check_case` or :func:`check_volunteer`, whichever fits; ``[]`` for other types."""
    if isinstance(submission, CaseSubmission | CaseClosedSubmission):
        return check_case(submission, today)
    if isinstance(submission, VolunteerSubmission | VolunteerWithdrawnSubmission):
        return check_volunteer(submission, today)
    return []
