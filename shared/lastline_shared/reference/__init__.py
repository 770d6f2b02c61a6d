"""Reference data: real ICE detention facilities and EOIR immigration courts, with their locations.

Shipped as JSON beside this package (``facilities.json``, ``courts.json``; README.md says where the data
comes from and how staff extend it) and loaded once on first use.
"""

from lastline_shared.reference.catalog import (
    Catalog,
    Court,
    Facility,
    Located,
    all_courts,
    all_facilities,
    court,
    default_catalog,
    distance_km,
    facility,
    suggest_courts,
    suggest_facilities,
)

__all__ = [
    "Catalog",
    "Court",
    "Facility",
    "Located",
    "all_courts",
    "all_facilities",
    "court",
    "default_catalog",
    "distance_km",
    "facility",
    "suggest_courts",
    "suggest_facilities",
]
