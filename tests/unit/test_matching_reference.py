"""The federal district of every facility (where a detained client's habeas petition is filed)."""

from __future__ import annotations

import json
import re

import pytest

from lastline_shared import reference
from lastline_shared.reference import Catalog


def test_every_facility_names_its_federal_district() -> None:
    for facility in reference.all_facilities():
        district = facility.federal_district
        assert district is not None, facility.code
        assert re.fullmatch(r"[a-z]{2,3}d", district), facility.code
        assert district.startswith(facility.state.lower()), facility.code


@pytest.mark.parametrize(
    ("code", "district"),
    [
        ("STWRTGA", "gamd"),  # Lumpkin, Stewart County: M.D. Ga.
        ("IRWINGA", "gamd"),  # Ocilla: M.D. Ga.
        ("FIPCMGA", "gasd"),  # Folkston, Charlton County: S.D. Ga.
        ("KRO", "flsd"),
        ("GLADEFL", "flmd"),  # Moore Haven, Glades County: M.D. Fla. (Fort Myers)
        ("STCDFTX", "txwd"),  # Pearsall, Frio County: W.D. Tex. (San Antonio)
        ("PIC", "txsd"),  # Los Fresnos: S.D. Tex. (Brownsville)
        ("PRLDCTX", "txnd"),  # Alvarado, Johnson County: N.D. Tex.
        ("POLKCTX", "txed"),  # Livingston, Polk County: E.D. Tex.
        ("EDNDCTX", "txnd"),  # Eden, Concho County: N.D. Tex. (San Angelo)
        ("ADLNTCA", "cacd"),
        ("CACFMES", "caed"),  # Bakersfield: E.D. Cal.
        ("MSVPCPA", "pawd"),  # Moshannon Valley sits in Clearfield County: W.D. Pa., not M.D.
        ("ORANGNY", "nysd"),  # Goshen, Orange County: S.D.N.Y.
        ("JENADLA", "lawd"),
        ("ADAMSMS", "mssd"),
    ],
)
def test_known_districts(code: str, district: str) -> None:
    facility = reference.facility(code)
    assert facility is not None
    assert facility.federal_district == district


def _catalog(**facility: object) -> Catalog:
    place = {"code": "FAC1", "name": "F", "city": "X", "state": "GA", "latitude": 32, "longitude": -84}
    return Catalog.from_json(json.dumps([place | facility]).encode(), b"[]")


def test_the_loader_checks_districts() -> None:
    assert _catalog(federal_district="gand").facilities["FAC1"].federal_district == "gand"
    assert _catalog().facilities["FAC1"].federal_district is None  # optional for a new entry
    with pytest.raises(ValueError, match="circuit"):
        _catalog(federal_district="ca11")
    with pytest.raises(ValueError, match="not a district of GA"):
        _catalog(federal_district="flsd")
    with pytest.raises(ValueError, match="String should match pattern"):
        _catalog(federal_district="N.D. Ga.")
    assert _catalog(state="MP", federal_district="nmid").facilities["FAC1"].federal_district == "nmid"
