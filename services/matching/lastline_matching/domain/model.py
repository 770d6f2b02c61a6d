"""What matching's rules read about a volunteer, a case and a facility: small immutable values.

Built from the internal contract events (or from the service's stored rows and facts), so the rules
never touch pydantic models, the database or Kafka. Sets are frozensets: the rules test membership
thousands of times per decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from lastline_shared.contracts.cases import CaseSnapshot
from lastline_shared.contracts.enums import (
    CaseNeed,
    CaseType,
    ComplexityFlag,
    ExperienceLevel,
    FacilityPauseReason,
    FacilityStatus,
    PracticeArea,
    VolunteerRole,
)
from lastline_shared.contracts.facilities import FacilityStatusChanged
from lastline_shared.contracts.volunteers import VolunteerProfile
from lastline_shared.reference import Catalog, default_catalog

COMPLEX_FLAGS = frozenset(
    {ComplexityFlag.CRIMINAL_HISTORY, ComplexityFlag.FEDERAL_HABEAS, ComplexityFlag.APPEAL}
)
"""Flags that make a case complex: never a novice alone on it."""
COMPLEX_CASE_TYPES = frozenset({CaseType.FEDERAL_HABEAS, CaseType.BIA_APPEAL, CaseType.PETITION_FOR_REVIEW})
"""Case types that are complex in themselves (habeas, appeals)."""
DEFAULT_MENTOR_CAPACITY = 3
"""Mentees a mentor takes at once unless the service says otherwise (``MATCHING_MENTOR_CAPACITY``)."""


@dataclass(frozen=True, slots=True)
class VolunteerView:
    """A volunteer as the rules see them: skills, reach and current load."""

    id: UUID
    roles: frozenset[VolunteerRole]
    languages: frozenset[str]
    """ISO 639-3 codes."""
    experience_level: ExperienceLevel
    practice_areas: frozenset[PracticeArea]
    max_active_cases: int
    active_load: int = 0
    """Active matches plus open proposals (each proposal reserves a place until answered)."""
    facilities_reachable: frozenset[str] = frozenset()
    """Facilities the volunteer visits in person."""
    remote: bool = False
    federal_courts: frozenset[str] = frozenset()
    """Federal courts of admission (``gamd``, ``ca11``)."""
    eoir_registered: bool = False
    wants_mentor: bool = False
    can_mentor: bool = False
    mentor_capacity: int = 0
    """Mentees the volunteer can take at once (0 unless ``can_mentor``)."""
    mentor_load: int = 0
    """Mentees the volunteer has now."""
    countries_of_expertise: frozenset[str] = frozenset()
    registered_by: str | None = None
    """The partner that registered the volunteer."""

    @property
    def remaining(self) -> int:
        """Places left: the most cases this volunteer can still be offered."""
        return max(0, self.max_active_cases - self.active_load)

    @property
    def novice(self) -> bool:
        return self.experience_level is ExperienceLevel.NOVICE

    @property
    def mentor_room(self) -> bool:
        """Can take one more mentee now."""
        return self.can_mentor and self.mentor_load < self.mentor_capacity

    @classmethod
    def from_profile(
        cls,
        profile: VolunteerProfile,
        *,
        active_load: int = 0,
        mentor_load: int = 0,
        mentor_capacity: int = DEFAULT_MENTOR_CAPACITY,
    ) -> VolunteerView:
        """From ``volunteer-registered`` / ``volunteer-updated`` (the whole profile) and the load that
        matching keeps itself (events say nothing about it)."""
        return cls(
            id=profile.volunteer_id,
            roles=frozenset(profile.roles),
            languages=frozenset(profile.languages),
            experience_level=profile.experience_level,
            practice_areas=frozenset(profile.practice_areas),
            max_active_cases=profile.max_active_cases,
            active_load=active_load,
            facilities_reachable=frozenset(profile.facilities_reachable),
            remote=profile.remote,
            federal_courts=frozenset(profile.bar_admissions.federal_courts),
            eoir_registered=profile.eoir_registered,
            wants_mentor=profile.wants_mentor,
            can_mentor=profile.can_mentor,
            mentor_capacity=mentor_capacity if profile.can_mentor else 0,
            mentor_load=mentor_load,
            countries_of_expertise=frozenset(profile.countries_of_expertise),
            registered_by=profile.registered_by.partner_id if profile.registered_by else None,
        )

    @classmethod
    def from_row(
        cls, row: Mapping[str, Any], *, mentor_capacity: int = DEFAULT_MENTOR_CAPACITY
    ) -> VolunteerView:
        """From a row of matching's ``volunteers`` table (skills as columns, load counters)."""
        can_mentor = bool(row["can_mentor"])
        return cls(
            id=row["volunteer_id"],
            roles=frozenset(VolunteerRole(r) for r in row["roles"]),
            languages=frozenset(row["languages"]),
            experience_level=ExperienceLevel(row["experience_level"]),
            practice_areas=frozenset(PracticeArea(a) for a in row["practice_areas"]),
            max_active_cases=row["max_active_cases"],
            active_load=row["active_cases"] + row["reserved"],
            facilities_reachable=frozenset(row["facilities_reachable"]),
            remote=bool(row["remote"]),
            federal_courts=frozenset(row["federal_courts"]),
            eoir_registered=bool(row["eoir_registered"]),
            wants_mentor=bool(row["wants_mentor"]),
            can_mentor=can_mentor,
            mentor_capacity=mentor_capacity if can_mentor else 0,
            mentor_load=row["mentees"],
            countries_of_expertise=frozenset(row["countries_of_expertise"]),
            registered_by=row["registered_partner"],
        )


@dataclass(frozen=True, slots=True)
class CaseView:
    """A case as the rules see it: pseudonymous, with what placement depends on."""

    id: UUID
    facility_code: str
    court_code: str
    case_type: CaseType
    languages: tuple[str, ...]
    """The client's languages, preferred first (ISO 639-3)."""
    next_hearing_date: date | None = None
    detained_since: date | None = None
    complexity_flags: frozenset[ComplexityFlag] = frozenset()
    needs: frozenset[CaseNeed] = frozenset()
    country_conditions: frozenset[str] = frozenset()
    referring_partners: frozenset[str] = frozenset()
    federal_district: str | None = None
    """The federal district containing the facility (from the reference data): where habeas is filed."""

    @property
    def complex(self) -> bool:
        """Criminal history, habeas or an appeal: never a novice alone."""
        return self.case_type in COMPLEX_CASE_TYPES or not COMPLEX_FLAGS.isdisjoint(self.complexity_flags)

    @property
    def needs_federal_admission(self) -> bool:
        """A habeas petition: counsel must be admitted in the facility's federal district."""
        return (
            self.case_type is CaseType.FEDERAL_HABEAS
            or ComplexityFlag.FEDERAL_HABEAS in self.complexity_flags
        )

    def days_to_hearing(self, today: date) -> int | None:
        return None if self.next_hearing_date is None else (self.next_hearing_date - today).days

    def days_detained(self, today: date) -> int | None:
        return None if self.detained_since is None else max(0, (today - self.detained_since).days)

    @classmethod
    def from_snapshot(cls, snapshot: CaseSnapshot, *, catalog: Catalog | None = None) -> CaseView:
        """From ``case-opened`` / ``case-updated`` (both carry the whole current case)."""
        return cls(
            id=snapshot.case_id,
            facility_code=snapshot.facility_code,
            court_code=snapshot.court_code,
            case_type=snapshot.case_type,
            languages=tuple(snapshot.languages),
            next_hearing_date=snapshot.next_hearing_date,
            detained_since=snapshot.detained_since,
            complexity_flags=frozenset(snapshot.complexity_flags),
            needs=frozenset(snapshot.needs),
            country_conditions=frozenset(snapshot.country_conditions),
            referring_partners=frozenset(r.partner_id for r in snapshot.referrals),
            federal_district=_district(snapshot.facility_code, catalog),
        )

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any], *, catalog: Catalog | None = None) -> CaseView:
        """From a snapshot stored as JSON (``model_dump(mode="json")``), without validating it again."""
        return cls(
            id=facts["case_id"] if isinstance(facts["case_id"], UUID) else UUID(facts["case_id"]),
            facility_code=facts["facility_code"],
            court_code=facts["court_code"],
            case_type=CaseType(facts["case_type"]),
            languages=tuple(facts["languages"]),
            next_hearing_date=_day(facts.get("next_hearing_date")),
            detained_since=_day(facts.get("detained_since")),
            complexity_flags=frozenset(ComplexityFlag(f) for f in facts.get("complexity_flags", ())),
            needs=frozenset(CaseNeed(n) for n in facts.get("needs", ())),
            country_conditions=frozenset(facts.get("country_conditions", ())),
            referring_partners=frozenset(_partners(facts.get("referrals", ()))),
            federal_district=_district(facts["facility_code"], catalog),
        )


@dataclass(frozen=True, slots=True)
class FacilityState:
    """Whether placements at a facility are paused (phones or visits cut, lockdown, ...)."""

    code: str
    paused: bool = False
    reason: FacilityPauseReason | None = None

    @classmethod
    def from_event(cls, event: FacilityStatusChanged) -> FacilityState:
        return cls(event.facility_code, event.status is FacilityStatus.PAUSED, event.reason)


def _district(facility_code: str, catalog: Catalog | None) -> str | None:
    facility = (catalog or default_catalog()).facility(facility_code)
    return None if facility is None else facility.federal_district


def _day(value: date | str | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(value)


def _partners(referrals: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    return (r["partner_id"] for r in referrals)
