"""Constrained scalar types shared by every contract.

Strings, numbers and booleans are strict (no ``"5"`` for 5, no ``1`` for ``true``), and dates and times
are ISO strings (or ``date``/``datetime`` objects), never Unix timestamps: a contract that coerces hides
a partner's bug until it bites downstream. Dates, times, UUIDs and enums still accept their string form
in Python mode, so a dict parsed from JSON (as FastAPI validates bodies) validates like the raw JSON.

Language codes: ISO 639-1 (``es``), ISO 639-3 (``spa``, ``mam``) and ISO 639-2/B (``fre``) are
accepted, in any case, and normalised to **ISO 639-3**, the only part of ISO 639 that names every
language detained people speak (Mam, K'iche' and Q'anjob'al have no two-letter code).
"""

from __future__ import annotations

import functools
import re
from datetime import date
from functools import cache
from typing import Annotated, TypeVar
from uuid import UUID

import pycountry
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    Strict,
    StringConstraints,
)
from pydantic.networks import validate_email
from pydantic_core import PydanticCustomError

T = TypeVar("T")

PARTNER_ID_PATTERN = r"^[a-z0-9-]{2,40}$"


def _unique(items: tuple[T, ...]) -> tuple[T, ...]:
    if len(set(items)) != len(items):
        raise PydanticCustomError("duplicate_items", "Items must be unique")
    return items


UniqueTuple = Annotated[
    tuple[T, ...], AfterValidator(_unique), Field(json_schema_extra={"uniqueItems": True})
]
"""A tuple whose items are distinct (a set with a stable order, so encoding is deterministic)."""


@cache
def _language_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for language in pycountry.languages:
        for attr in ("alpha_3", "alpha_2", "bibliographic"):
            code = getattr(language, attr, None)
            if code:
                index.setdefault(code, language.alpha_3)
    return index


def _language(code: str) -> str:
    normalised = _language_index().get(code.lower())
    if normalised is None:
        raise PydanticCustomError("language_code", "Unknown ISO 639 language code")
    return normalised


@cache
def _us_jurisdictions() -> frozenset[str]:
    # States, DC and the territories with their own bars (PR, GU, VI, ...).
    return frozenset(s.code.removeprefix("US-") for s in pycountry.subdivisions if s.country_code == "US")


def _us_jurisdiction(code: str) -> str:
    upper = code.upper()
    if upper not in _us_jurisdictions():
        raise PydanticCustomError("us_jurisdiction", "Unknown US state or territory code")
    return upper


@cache
def _countries() -> frozenset[str]:
    return frozenset(country.alpha_2 for country in pycountry.countries)


def _country(code: str) -> str:
    upper = code.upper()
    if upper not in _countries():
        raise PydanticCustomError("country_code", "Unknown ISO 3166-1 alpha-2 country code")
    return upper


def _email(value: str) -> str:
    normalised = _validated_email(value)
    if normalised is None:
        raise PydanticCustomError("email", "Not a valid email address")
    return normalised


@functools.lru_cache(maxsize=65_536)
def _validated_email(value: str) -> str | None:
    # The same addresses (referral contacts, volunteers) come again and again; validation is slow.
    try:
        return validate_email(value)[1]  # email-validator's checks; the domain comes back lower case
    except PydanticCustomError:
        return None


def _a_number(value: str) -> str:
    return value[1:] if value[:1] in ("A", "a") else value


def _no_timestamp_date(value: object) -> object:
    if isinstance(value, int | float):
        raise PydanticCustomError("date_type", "Input should be a date as YYYY-MM-DD")
    return value


def _no_timestamp_datetime(value: object) -> object:
    if isinstance(value, int | float):
        raise PydanticCustomError("datetime_type", "Input should be an RFC 3339 date-time")
    return value


def _not_future(day: date) -> date:
    if day > date.today():
        raise PydanticCustomError("date_in_future", "Date must not be in the future")
    return day


def text(max_length: int) -> StringConstraints:
    """Constraints for free text of at most ``max_length`` characters, never blank."""
    return StringConstraints(min_length=1, max_length=max_length, pattern=r"\S")


_CONTROL_IN_LINE = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_controls(pattern: re.Pattern[str], allowed: str) -> AfterValidator:
    """Control characters (a terminal escape, a form feed pasted from a PDF) would reach emails, web
    pages and staff screens as they are: refused, with a code of their own."""

    def check(value: str) -> str:
        found = pattern.search(value)
        if found is not None:
            raise PydanticCustomError(
                "control_character",
                "Text must not contain control characters{allowed} (found U+{code:04X})",
                {"allowed": allowed, "code": ord(found.group())},
            )
        return value

    return AfterValidator(check)


ShortText = Annotated[str, Strict(), text(200), _no_controls(_CONTROL_IN_LINE, "")]
"""One line: a name, a title."""
LongText = Annotated[
    str, Strict(), text(4000), _no_controls(_CONTROL_IN_TEXT, " other than tab and line breaks")
]
"""Notes and addresses: tabs and line breaks allowed."""
Flag = Annotated[bool, Strict()]
Count = Annotated[int, Strict(), Field(ge=0)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_no_timestamp_datetime)]
"""An RFC 3339 date-time with its UTC offset."""
Day = Annotated[date, BeforeValidator(_no_timestamp_date)]
"""A calendar date, ``YYYY-MM-DD``."""
PastDay = Annotated[Day, AfterValidator(_not_future)]

CaseId = UUID
VolunteerId = UUID

PartnerId = Annotated[str, Strict(), StringConstraints(pattern=PARTNER_ID_PATTERN)]
"""A partner's slug: 2 to 40 of ``a-z``, ``0-9`` and ``-``."""

ExternalId = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
"""A partner's own id for a record (at most 128 of ``A-Za-z0-9._:-``); never client PII."""

FacilityCode = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9_-]{1,31}$")]
"""A detention facility code (ICE's DETLOC, such as ``STWRTGA``); intake checks it exists."""

CourtCode = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Z0-9]{2,10}$")]
"""An immigration court code (EOIR's, such as ``LUM`` or ``ATL``); intake checks it exists."""

FederalCourt = Annotated[str, Strict(), StringConstraints(pattern=r"^(ca(?:[1-9]|1[01]|dc|fc)|[a-z]{2,3}d)$")]
"""A federal court id in CourtListener's form: district ``gand``, ``nysd``; circuit ``ca11``."""

LanguageCode = Annotated[
    str, Strict(), StringConstraints(pattern=r"^[A-Za-z]{2,3}$"), AfterValidator(_language)
]
"""An ISO 639 code (639-1, 639-2/B or 639-3), stored as its ISO 639-3 code."""

UsJurisdiction = Annotated[
    str, Strict(), StringConstraints(pattern=r"^[A-Za-z]{2}$"), AfterValidator(_us_jurisdiction)
]
"""A US state, DC or territory, by its two-letter code (stored upper case)."""

CountryCode = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Za-z]{2}$"), AfterValidator(_country)]
"""An ISO 3166-1 alpha-2 country code (stored upper case)."""

Email = Annotated[
    str,
    Strict(),
    StringConstraints(max_length=254),
    AfterValidator(_email),
    Field(json_schema_extra={"format": "email"}),
]
"""An email address (at most 254 characters), checked by email-validator."""

Phone = Annotated[str, Strict(), StringConstraints(pattern=r"^\+?[0-9(][0-9 ().-]{5,24}$")]
"""A phone number, digits with optional ``+``, spaces, dots, dashes and brackets."""

ANumber = Annotated[str, Strict(), StringConstraints(pattern=r"^[Aa]?[0-9]{9}$"), AfterValidator(_a_number)]
"""An alien registration number: 9 digits, optionally prefixed by ``A``; stored as the 9 digits."""

Code = Annotated[str, Strict(), StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
"""A machine-readable code in snake_case."""
