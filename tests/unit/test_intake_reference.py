"""The shipped facility and court reference data: loads, is consistent, finds and suggests entries."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from pydantic import ValidationError

from lastline_shared import reference
from lastline_shared.contracts.examples import COURT, FACILITY
from lastline_shared.reference import Catalog, distance_km

MAX_KM_FACILITY_TO_COURT = 600
"""Detained dockets are heard near the facility (or by video from the region): more is a typo."""


def _names(place: reference.Facility | reference.Court) -> str:
    return " | ".join((place.name, *place.aliases)).lower()


def test_ships_enough_real_facilities_and_courts() -> None:
    facilities, courts = reference.all_facilities(), reference.all_courts()
    assert len(facilities) >= 60
    assert len(courts) >= 50
    assert [f.code for f in facilities] == sorted(f.code for f in facilities)
    assert len({c.code for c in courts}) == len(courts)


@pytest.mark.parametrize(
    "name",
    [
        "stewart detention center",
        "irwin county",
        "krome",
        "south texas ice processing center",
        "otay mesa",
        "adelanto",
        "northwest ice processing center",
        "port isabel",
        "el paso service processing center",
        "otero county",
        "lasalle ice processing center",
        "eloy",
        "florence service processing center",
        "elizabeth contract detention facility",
        "moshannon valley",
        "batavia",
        "karnes",
        "dilley",
        "torrance county",
        "winn correctional",
        "richwood",
        "pine prairie",
        "folkston",
        "hutto",
        "montgomery processing center",
        "houston contract detention facility",
        "prairieland",
        "bluebonnet",
        "imperial regional",
        "golden state annex",
        "mesa verde",
        "delaney hall",
    ],
)
def test_known_facilities_are_listed(name: str) -> None:
    assert any(name in _names(f) for f in reference.all_facilities())


@pytest.mark.parametrize(
    ("code", "city"),
    [
        ("ATL", "Atlanta"),
        ("LUM", "Lumpkin"),
        ("KRO", "Miami"),
        ("HOU", "Houston"),
        ("CON", "Conroe"),
        ("PIS", "Los Fresnos"),
        ("EPD", "El Paso"),
        ("OTR", "Chaparral"),
        ("OAK", "Oakdale"),
        ("JEN", "Jena"),
        ("ELO", "Eloy"),
        ("FLO", "Florence"),
        ("OTM", "San Diego"),
        ("ADL", "Adelanto"),
        ("TAC", "Tacoma"),
        ("BTV", "Batavia"),
        ("ELZ", "Elizabeth"),
        ("NYB", "New York"),
        ("NYV", "New York"),
        ("NEW", "Newark"),
        ("CHI", "Chicago"),
        ("DAL", "Dallas"),
    ],
)
def test_known_courts_are_listed(code: str, city: str) -> None:
    court = reference.court(code)
    assert court is not None
    assert court.city == city


def test_the_contract_examples_name_known_codes() -> None:
    stewart = reference.facility(FACILITY)
    assert stewart is not None
    assert (stewart.name, stewart.city, stewart.state, stewart.court) == (
        "Stewart Detention Center",
        "Lumpkin",
        "GA",
        COURT,
    )
    assert reference.court(COURT) is not None


def test_lookups_ignore_case_and_return_none_when_unknown() -> None:
    assert reference.facility("stwrtga") == reference.facility("STWRTGA")
    assert reference.court(" lum ") == reference.court("LUM")
    assert reference.facility("NOPE") is None
    assert reference.court("XXX") is None


def test_every_facility_court_exists_and_is_nearby() -> None:
    linked = [f for f in reference.all_facilities() if f.court is not None]
    assert len(linked) >= 40
    for facility in linked:
        court = reference.court(facility.court or "")
        assert court is not None, facility.code
        assert distance_km(facility, court) < MAX_KM_FACILITY_TO_COURT, facility.code


def test_detained_courts_sit_with_a_facility() -> None:
    # A detained-only court is inside or next to a facility; its coordinates should say so.
    for court in reference.all_courts():
        if court.detained_only:
            nearest = min(distance_km(court, f) for f in reference.all_facilities())
            assert nearest < 30, court.code


def test_reference_data_is_immutable() -> None:
    stewart = reference.facility("STWRTGA")
    assert stewart is not None
    with pytest.raises(ValidationError):
        stewart.name = "Renamed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        reference.default_catalog().facilities["NEW"] = stewart  # type: ignore[index]
    assert isinstance(reference.all_facilities(), tuple)
    assert reference.default_catalog() is reference.default_catalog()  # loaded once


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("STWRTG", "STWRTGA"),  # a dropped letter
        ("STEWART", "STWRTGA"),  # the name instead of the code
        ("Lumpkin", "STWRTGA"),  # the city
        ("LaSalle", "JENADLA"),  # the former name
        ("krome", "KRO"),
        ("Dilley", "STFRCTX"),
        ("Tacoma", "CSCNWWA"),
    ],
)
def test_suggest_facilities_puts_the_likely_one_first(query: str, expected: str) -> None:
    assert reference.suggest_facilities(query)[0].code == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [("LUMP", "LUM"), ("Stewart", "LUM"), ("Varick", "NYV"), ("Krome", "KRO"), ("Conroe", "CON")],
)
def test_suggest_courts_puts_the_likely_one_first(query: str, expected: str) -> None:
    assert reference.suggest_courts(query)[0].code == expected


def test_suggestions_are_n_distinct_and_deterministic() -> None:
    first = reference.suggest_facilities("Texas processing", n=5)
    assert len(first) == len({f.code for f in first}) == 5
    assert reference.suggest_facilities("Texas processing", n=5) == first
    assert reference.suggest_courts("Houston", n=2)[0].code in {"HOU", "HSG"}
    assert len(reference.suggest_courts("Houston", n=2)) == 2
    assert reference.suggest_courts("", n=3) == []
    assert reference.suggest_facilities("Krome", n=0) == []


@dataclass(frozen=True)
class _Point:
    latitude: float
    longitude: float


def test_distance_km_is_haversine() -> None:
    assert distance_km(_Point(0, 0), _Point(0, 1)) == pytest.approx(111.195, abs=0.01)
    assert distance_km(_Point(0, 0), _Point(0, 180)) == pytest.approx(20015.1, abs=0.1)
    atlanta, stewart = reference.court("ATL"), reference.court("LUM")
    assert atlanta is not None
    assert stewart is not None
    assert distance_km(atlanta, stewart) == pytest.approx(distance_km(stewart, atlanta))
    assert 180 < distance_km(atlanta, stewart) < 210  # Atlanta to Lumpkin, as the crow flies
    assert distance_km(stewart, stewart) == 0


# -- the loader's checks, on small hand-made lists ----------------------------------------------


def _place(code: str, **extra: object) -> dict[str, object]:
    return {"code": code, "name": code, "city": "X", "state": "GA", "latitude": 32, "longitude": -84, **extra}


def _catalog(facilities: list[dict[str, object]], courts: list[dict[str, object]]) -> Catalog:
    return Catalog.from_json(json.dumps(facilities).encode(), json.dumps(courts).encode())


def test_loader_accepts_a_consistent_list() -> None:
    catalog = _catalog([_place("FAC1", court="CT1")], [_place("CT1")])
    assert catalog.facility("FAC1") is not None
    assert catalog.suggest_courts("CT", n=1)[0].code == "CT1"


@pytest.mark.parametrize(
    ("facilities", "courts", "problem"),
    [
        ([_place("FAC1"), _place("FAC1")], [], "duplicate facility code"),
        ([], [_place("CT1"), _place("CT1")], "duplicate court code"),
        ([_place("FAC1", court="CT9")], [_place("CT1")], "not in the reference data"),
        ([_place("fac1")], [], "String should match pattern"),  # the contracts' FacilityCode
        ([], [_place("TOO-LONG-CODE")], "String should match pattern"),  # CourtCode
        ([_place("FAC1", state="ZZ")], [], "Unknown US state"),
        ([_place("FAC1", latitude=95)], [], "less than or equal to 90"),
        ([_place("FAC1", extra="field")], [], "Extra inputs"),
    ],
)
def test_loader_rejects_inconsistent_lists(
    facilities: list[dict[str, object]], courts: list[dict[str, object]], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        _catalog(facilities, courts)
