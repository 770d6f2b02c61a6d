"""The contract models: vocabularies, normalisation, strictness and the no-PII rule."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar
from uuid import uuid4

import pytest
from pydantic import BaseModel, ValidationError

from lastline_shared.contracts import INTERNAL_EVENTS, PARTNER_SUBMISSIONS, TOPICS
from lastline_shared.contracts.base import Contract
from lastline_shared.contracts.cases import CaseOpened
from lastline_shared.contracts.enums import (
    CaseNeed,
    CaseType,
    ExperienceLevel,
    FacilityStatus,
    PracticeArea,
    VolunteerRole,
)
from lastline_shared.contracts.examples import example_events, example_submissions
from lastline_shared.contracts.facilities import FacilityStatusChanged
from lastline_shared.contracts.submissions import CaseOpenedSubmission
from lastline_shared.contracts.volunteers import VolunteerRegistered, VolunteerUpdated

C = TypeVar("C", bound=Contract)


def example(cls: type[C]) -> C:
    found = next(e for e in [*example_events(), *example_submissions()] if type(e) is cls)
    assert isinstance(found, cls)
    return found


def as_json(event: Contract, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(event.model_dump_json())
    data.update(changes)
    return data


def errors(cls: type[BaseModel], data: dict[str, Any]) -> list[tuple[str, tuple[int | str, ...]]]:
    with pytest.raises(ValidationError) as caught:
        cls.model_validate_json(json.dumps(data))
    return [(e["type"], e["loc"]) for e in caught.value.errors()]


# -- the catalogue --------------------------------------------------------------------------


def test_every_registered_type_has_exactly_one_model_per_side() -> None:
    internal = sorted((m.topic, m.event_type) for m in INTERNAL_EVENTS)
    partner = sorted((m.topic, m.event_type) for m in PARTNER_SUBMISSIONS)
    registered = sorted(
        (spec.name, t) for spec in TOPICS.values() for t in spec.event_types if not spec.partner_facing
    )
    registered_partner = sorted(
        (spec.name, t) for spec in TOPICS.values() for t in spec.event_types if spec.partner_facing
    )
    assert internal == registered
    assert partner == registered_partner


@pytest.mark.parametrize("model", [*INTERNAL_EVENTS, *PARTNER_SUBMISSIONS], ids=lambda m: m.__name__)
def test_models_declare_type_topic_version_and_key(model: type[Contract]) -> None:
    assert model.schema_version == 1
    assert model.key_field == TOPICS[model.topic].key_field
    assert model.key_field in model.model_fields
    assert model.model_config.get("frozen") is True
    assert model.model_config.get("extra") == "forbid"
    expected = f"urn:lastline:{'partner:' if model.partner_facing else ''}{model.event_type}:v1"
    assert model.dataschema() == expected


def test_examples_cover_every_type_once() -> None:
    assert [type(e) for e in example_events()] == list(INTERNAL_EVENTS)
    assert [type(e) for e in example_submissions("acme")] == list(PARTNER_SUBMISSIONS)


def test_aggregate_id_is_the_key_field() -> None:
    case = example(CaseOpened)
    assert case.aggregate_id() == str(case.case_id)
    facility = example(FacilityStatusChanged)
    assert facility.aggregate_id() == "STWRTGA"
    assert example_submissions("acme")[0].aggregate_id() == "acme-vol-0017"


def test_a_model_whose_topic_lacks_its_key_field_is_refused_at_definition() -> None:
    from typing import ClassVar

    from lastline_shared.contracts.base import Event

    with pytest.raises(TypeError, match="key field"):

        class Broken(Event):
            event_type: ClassVar[str] = "case-closed"
            topic: ClassVar[str] = "cases"
            outcome: str


def test_models_are_immutable() -> None:
    case = example(CaseOpened)
    with pytest.raises(ValidationError):
        case.court_code = "ATL"  # type: ignore[misc]


# -- vocabularies that meet -------------------------------------------------------------------


def test_case_types_are_practice_areas_and_needs_are_roles() -> None:
    assert {t.practice_area for t in CaseType} <= set(PracticeArea)
    assert {n.role for n in CaseNeed} <= set(VolunteerRole)


def test_experience_levels_are_ordered_novice_to_expert() -> None:
    assert ExperienceLevel.NOVICE.rank < ExperienceLevel.INTERMEDIATE.rank
    assert ExperienceLevel.EXPERIENCED.rank < ExperienceLevel.EXPERT.rank


# -- normalisation and strictness -------------------------------------------------------------


def test_languages_accept_639_1_639_3_and_639_2b_and_store_639_3() -> None:
    case = CaseOpened.model_validate_json(
        json.dumps(as_json(example(CaseOpened), languages=["ES", "mam", "fre", "quc"]))
    )
    assert case.languages == ("spa", "mam", "fra", "quc")


@pytest.mark.parametrize("code", ["xx", "qqq", "e", "spanish", "es-MX"])
def test_unknown_language_codes_are_rejected(code: str) -> None:
    found = errors(CaseOpened, as_json(example(CaseOpened), languages=[code]))
    assert found[0][1] == ("languages", 0)
    assert found[0][0] in {"language_code", "string_pattern_mismatch"}


def test_the_same_language_twice_is_rejected_even_in_two_spellings() -> None:
    found = errors(CaseOpened, as_json(example(CaseOpened), languages=["es", "spa"]))
    assert found == [("duplicate_items", ("languages",))]


def test_bar_admissions_check_states_and_federal_court_ids() -> None:
    volunteer = example(VolunteerRegistered)
    data = as_json(volunteer)
    data["bar_admissions"] = {"states": ["ga", "DC", "PR"], "federal_courts": ["gand", "ca11"]}
    parsed = VolunteerRegistered.model_validate_json(json.dumps(data))
    assert parsed.bar_admissions.states == ("GA", "DC", "PR")
    data["bar_admissions"] = {"states": ["XX"], "federal_courts": ["Northern District"]}
    assert sorted(errors(VolunteerRegistered, data)) == [
        ("string_pattern_mismatch", ("bar_admissions", "federal_courts", 0)),
        ("us_jurisdiction", ("bar_admissions", "states", 0)),
    ]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("max_active_cases", "3", "int_type"),
        ("max_active_cases", 3.5, "int_type"),
        ("max_active_cases", -1, "greater_than_equal"),
        ("remote", 1, "bool_type"),
        ("remote", "true", "bool_type"),
        ("name", 42, "string_type"),
        ("name", "   ", "string_pattern_mismatch"),
        ("email", "not-an-address", "email"),
        ("experience_level", "guru", "enum"),
        ("roles", [], "too_short"),
        ("volunteer_id", "not-a-uuid", "uuid_parsing"),
    ],
)
def test_scalars_are_strict(field: str, value: object, code: str) -> None:
    found = errors(VolunteerRegistered, as_json(example(VolunteerRegistered), **{field: value}))
    assert found == [(code, (field,))]


def test_dates_must_be_iso_strings_not_timestamps() -> None:
    found = errors(CaseOpened, as_json(example(CaseOpened), next_hearing_date=1767225600))
    assert found == [("date_type", ("next_hearing_date",))]


def test_times_need_an_offset() -> None:
    data = as_json(example(FacilityStatusChanged), effective_at="2026-03-02T15:30:00")
    assert errors(FacilityStatusChanged, data) == [("timezone_aware", ("effective_at",))]


def test_a_paused_facility_needs_a_reason() -> None:
    data = as_json(example(FacilityStatusChanged), status="paused", reason=None)
    assert errors(FacilityStatusChanged, data) == [("reason_required", ())]
    data = as_json(example(FacilityStatusChanged), status="open", reason=None)
    assert FacilityStatusChanged.model_validate(data).status is FacilityStatus.OPEN


def test_updates_carry_the_whole_profile() -> None:
    assert set(VolunteerRegistered.model_fields) == set(VolunteerUpdated.model_fields)


# -- partner-facing submissions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("a_number", "stored"),
    [("A201234567", "201234567"), ("a201234567", "201234567"), ("201234567", "201234567")],
)
def test_a_numbers_are_nine_digits_with_an_optional_a(a_number: str, stored: str) -> None:
    data = as_json(example(CaseOpenedSubmission))
    data["client"]["a_number"] = a_number
    assert CaseOpenedSubmission.model_validate_json(json.dumps(data)).client.a_number == stored


@pytest.mark.parametrize("a_number", ["20123456", "A-201-234-567", "B201234567", "2012345678", 201234567])
def test_malformed_a_numbers_are_rejected(a_number: object) -> None:
    data = as_json(example(CaseOpenedSubmission))
    data["client"]["a_number"] = a_number
    [(code, loc)] = errors(CaseOpenedSubmission, data)
    assert loc == ("client", "a_number")
    assert code in {"string_pattern_mismatch", "string_type"}


def test_a_date_of_birth_cannot_be_in_the_future() -> None:
    data = as_json(example(CaseOpenedSubmission))
    data["client"]["date_of_birth"] = "2999-01-01"
    assert errors(CaseOpenedSubmission, data) == [("date_in_future", ("client", "date_of_birth"))]


def test_submissions_reject_unknown_fields_and_oversized_text() -> None:
    data = as_json(example(CaseOpenedSubmission), ssn="123-45-6789", notes="x" * 4001)
    assert sorted(errors(CaseOpenedSubmission, data)) == [
        ("extra_forbidden", ("ssn",)),
        ("string_too_long", ("notes",)),
    ]


def test_external_ids_are_restricted_to_a_safe_alphabet() -> None:
    data = as_json(example(CaseOpenedSubmission), external_id="Jane Doe / 1994")
    assert errors(CaseOpenedSubmission, data) == [("string_pattern_mismatch", ("external_id",))]


# -- no client PII in internal events ---------------------------------------------------------

PII_NAME = re.compile(
    r"(^|_)(name|names|a_number|alien|birth|dob|ssn|phone|email|address|client|contact)(_|$)"
)
# Volunteers consented to share their own name and email with the network.
VOLUNTEER_OWN = {"name", "email"}


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every field name, nested models included."""
    paths: list[str] = []
    for name, info in model.model_fields.items():
        paths.append(f"{prefix}{name}")
        for arg in _model_args(info.annotation):
            paths += field_paths(arg, f"{prefix}{name}.")
    return paths


def _model_args(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()):
        found += _model_args(arg)
    return found


def pii_paths(model: type[BaseModel]) -> list[str]:
    return [p for p in field_paths(model) if PII_NAME.search(p.rsplit(".", 1)[-1])]


def test_the_pii_pattern_catches_the_partner_models_client_fields() -> None:
    flagged = set(pii_paths(CaseOpenedSubmission))
    assert {
        "client",
        "client.given_name",
        "client.family_name",
        "client.a_number",
        "client.date_of_birth",
        "client.contact.phone",
        "client.contact.email",
        "client.contact.mailing_address",
    } <= flagged


@pytest.mark.parametrize("model", INTERNAL_EVENTS, ids=lambda m: m.__name__)
def test_internal_events_have_no_client_pii_fields(model: type[Contract]) -> None:
    allowed = VOLUNTEER_OWN if model.topic == "volunteers" else set()
    assert [path for path in pii_paths(model) if path not in allowed] == []


@pytest.mark.parametrize("model", INTERNAL_EVENTS, ids=lambda m: m.__name__)
def test_internal_events_refuse_extra_fields(model: type[Contract]) -> None:
    event = next(e for e in example_events() if type(e) is model)
    data = as_json(event, client_name="Jane Doe")
    assert errors(model, data) == [("extra_forbidden", ("client_name",))]


def test_case_events_cannot_smuggle_a_client_object() -> None:
    case = example(CaseOpened)
    data = as_json(case, client={"given_name": "Jane", "a_number": "201234567"})
    assert errors(CaseOpened, data) == [("extra_forbidden", ("client",))]


def test_a_new_case_id_is_just_a_uuid() -> None:
    data = as_json(example(CaseOpened), case_id=str(uuid4()))
    assert isinstance(CaseOpened.model_validate(data), CaseOpened)
