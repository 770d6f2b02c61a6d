"""The catalog of detention facilities and immigration courts that submissions may name.

Built once from the JSON files shipped beside this module (see README.md there), validated on load
(codes in the contracts' formats, unique, every facility's court known) and immutable afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Protocol, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from rapidfuzz import fuzz, utils

from lastline_shared.contracts.primitives import CourtCode, FacilityCode, FederalCourt, UsJurisdiction

EARTH_RADIUS_KM = 6371.0088
"""The mean Earth radius (IUGG), good to about 0.5% for any pair of points."""


class _Place(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    name: str = Field(min_length=1)
    city: str = Field(min_length=1)
    state: UsJurisdiction
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    aliases: tuple[str, ...] = ()
    """Former and short names (``LaSalle ICE Processing Center``, ``Krome``): used by suggestions only."""

    def label(self) -> str:
        """``CODE (Name, City, ST)``, for messages."""
        return f"{self.code} ({self.name}, {self.city}, {self.state})"


class Court(_Place):
    """An EOIR immigration court."""

    code: CourtCode
    detained_only: bool = False
    """Hears only the detained docket of the facilities it serves."""


class Facility(_Place):
    """A detention facility used by ICE."""

    code: FacilityCode
    """ICE's detention location code (DETLOC), such as ``STWRTGA``."""
    court: CourtCode | None = None
    """The immigration court that hears its detained docket, where known."""
    federal_district: FederalCourt | None = None
    """The U.S. district court whose district contains the facility (``gamd`` for Lumpkin, GA), in
    CourtListener's form: where a detained person's habeas petition is filed."""

    @model_validator(mode="after")
    def _district_in_state(self) -> Self:
        district = self.federal_district
        if district is None:
            return self
        if not district.endswith("d"):  # ``ca11``, ``cadc``: circuits hear appeals, not habeas petitions
            raise ValueError(f"{self.code}: federal_district {district!r} is a circuit, not a district")
        # District ids start with their state's code (``txsd``); the Northern Mariana Islands' does not.
        if not district.startswith(_DISTRICT_PREFIX.get(self.state, self.state.lower())):
            raise ValueError(f"{self.code}: federal_district {district!r} is not a district of {self.state}")
        return self


_DISTRICT_PREFIX = {"MP": "nmi"}


class Located(Protocol):
    @property
    def latitude(self) -> float: ...
    @property
    def longitude(self) -> float: ...


def distance_km(a: Located, b: Located) -> float:
    """The great-circle (haversine) distance between two places, in kilometres."""
    lat_a, lat_b = math.radians(a.latitude), math.radians(b.latitude)
    d_lat = lat_b - lat_a
    d_lon = math.radians(b.longitude - a.longitude)
    h = math.sin(d_lat / 2) ** 2 + math.cos(lat_a) * math.cos(lat_b) * math.sin(d_lon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, h)))


P = TypeVar("P", bound=_Place)


def _index(places: Iterable[P], kind: str) -> Mapping[str, P]:
    index: dict[str, P] = {}
    for place in places:
        if place.code in index:
            raise ValueError(f"duplicate {kind} code {place.code!r} in the reference data")
        index[place.code] = place
    return MappingProxyType(dict(sorted(index.items())))


def _search_terms(places: Mapping[str, P]) -> Mapping[str, tuple[str, ...]]:
    """Each place's code, name, city and aliases, lower-cased and stripped of punctuation once."""
    terms: dict[str, tuple[str, ...]] = {}
    for code, place in places.items():
        terms[code] = tuple(utils.default_process(t) for t in (code, place.name, place.city, *place.aliases))
    return MappingProxyType(terms)


def _nearest(query: str, places: Mapping[str, P], terms: Mapping[str, tuple[str, ...]], n: int) -> list[P]:
    """The ``n`` places whose code, name, city or alias is most like ``query`` (ties by code)."""
    wanted = utils.default_process(query)
    if n <= 0 or not wanted:
        return []
    scored = sorted((-max(fuzz.WRatio(wanted, term) for term in terms[code]), code) for code in places)
    return [places[code] for _, code in scored[:n]]


_FACILITIES = TypeAdapter(tuple[Facility, ...])
_COURTS = TypeAdapter(tuple[Court, ...])


@dataclass(frozen=True, slots=True)
class Catalog:
    """Facilities and courts by code; build with :meth:`from_json`."""

    facilities: Mapping[str, Facility]
    courts: Mapping[str, Court]
    facility_terms: Mapping[str, tuple[str, ...]]
    court_terms: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_json(cls, facilities_json: bytes, courts_json: bytes) -> Catalog:
        """Parse and cross-check both lists; raises ``ValueError`` (or pydantic's subclass) if invalid."""
        courts = _index(_COURTS.validate_json(courts_json), "court")
        facilities = _index(_FACILITIES.validate_json(facilities_json), "facility")
        orphans = sorted(f.code for f in facilities.values() if f.court is not None and f.court not in courts)
        if orphans:
            raise ValueError(f"facilities name courts that are not in the reference data: {orphans}")
        return cls(facilities, courts, _search_terms(facilities), _search_terms(courts))

    def facility(self, code: str) -> Facility | None:
        return self.facilities.get(code.strip().upper())

    def court(self, code: str) -> Court | None:
        return self.courts.get(code.strip().upper())

    def suggest_facilities(self, code_or_name: str, n: int = 3) -> list[Facility]:
        return _nearest(code_or_name, self.facilities, self.facility_terms, n)

    def suggest_courts(self, code_or_name: str, n: int = 3) -> list[Court]:
        return _nearest(code_or_name, self.courts, self.court_terms, n)


_PACKAGE = "lastline_shared.reference"


@cache
def default_catalog() -> Catalog:
    """The catalog shipped with Lastline, loaded on first use."""
    files = resources.files(_PACKAGE)
    return Catalog.from_json(
        files.joinpath("facilities.json").read_bytes(), files.joinpath("courts.json").read_bytes()
    )


def facility(code: str) -> Facility | None:
    """The facility with this code (``STWRTGA``), or ``None``."""
    return default_catalog().facility(code)


def court(code: str) -> Court | None:
    """The court with this code (``LUM``), or ``None``."""
    return default_catalog().court(code)


def all_facilities() -> tuple[Facility, ...]:
    """Every facility, by code."""
    return tuple(default_catalog().facilities.values())


def all_courts() -> tuple[Court, ...]:
    """Every court, by code."""
    return tuple(default_catalog().courts.values())


def suggest_facilities(code_or_name: str, n: int = 3) -> list[Facility]:
    """The ``n`` facilities most like a mistyped code or a name, best first."""
    return default_catalog().suggest_facilities(code_or_name, n)


def suggest_courts(code_or_name: str, n: int = 3) -> list[Court]:
    """The ``n`` courts most like a mistyped code or a name, best first."""
    return default_catalog().suggest_courts(code_or_name, n)
