"""Human names for codes: facilities and courts from the reference data, languages from ISO 639."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

import pycountry

from lastline_shared.reference import all_courts, all_facilities


@dataclass(frozen=True)
class Place:
    name: str
    city: str | None = None
    state: str | None = None


@cache
def _reference_facilities() -> Mapping[str, Place]:
    return {f.code: Place(f.name, f.city, f.state) for f in all_facilities()}


@cache
def _reference_courts() -> Mapping[str, Place]:
    return {c.code: Place(c.name, c.city, c.state) for c in all_courts()}


@cache
def _language(code: str) -> str:
    language = pycountry.languages.get(alpha_3=code)
    return str(language.name) if language is not None else code


def humanize(code: str) -> str:
    """``removal_defense`` -> ``Removal defense``."""
    text = code.replace("_", " ")
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Labels:
    """Names to show; by default from the reference data, loaded on first use (tests pass their own)."""

    facilities: Mapping[str, Place] | None = None
    courts: Mapping[str, Place] | None = None

    def facility(self, code: str) -> Place:
        places = self.facilities if self.facilities is not None else _reference_facilities()
        return places.get(code) or Place(code)

    def court(self, code: str) -> Place:
        places = self.courts if self.courts is not None else _reference_courts()
        return places.get(code) or Place(code)

    def language(self, code: str) -> str:
        return _language(code)

    def label(self, dimension: str, key: str) -> str:
        if dimension == "facility":
            return self.facility(key).name
        if dimension == "court":
            return self.court(key).name
        if dimension == "language":
            return self.language(key)
        if dimension in ("case_type", "role", "experience", "outcome"):
            return humanize(key)
        return key
