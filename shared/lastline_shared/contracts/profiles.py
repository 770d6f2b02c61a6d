"""Field groups shared by internal events and partner submissions.

A partner submits the same facts about a volunteer's skills or a case that matching later reads, so
both contracts take them from one definition here and cannot drift apart. What differs stays in the
contract: partner submissions add client PII, internal events add pseudonymous ids.
"""

from __future__ import annotations

from pydantic import Field

from lastline_shared.contracts.base import FieldGroup, Part
from lastline_shared.contracts.enums import (
    CaseNeed,
    CaseType,
    ComplexityFlag,
    ExperienceLevel,
    HearingKind,
    PracticeArea,
    VolunteerRole,
)
from lastline_shared.contracts.primitives import (
    Count,
    CountryCode,
    CourtCode,
    Day,
    ExternalId,
    FacilityCode,
    FederalCourt,
    Flag,
    LanguageCode,
    PartnerId,
    UniqueTuple,
    UsJurisdiction,
)


class BarAdmissions(Part):
    """Where an attorney is admitted to practise."""

    states: UniqueTuple[UsJurisdiction] = Field(default=(), max_length=60)
    """State (or DC, territory) bars, e.g. ``GA``."""
    federal_courts: UniqueTuple[FederalCourt] = Field(default=(), max_length=120)
    """Federal courts, e.g. ``gand`` (N.D. Ga.) or ``ca11`` (11th Cir.); habeas needs the district."""


class PartnerRef(Part):
    """A partner's reference to a record: which partner, and its own id for it."""

    partner_id: PartnerId
    external_id: ExternalId


class VolunteerSkills(FieldGroup):
    """What matching needs to know about a volunteer."""

    roles: UniqueTuple[VolunteerRole] = Field(min_length=1, max_length=len(VolunteerRole))
    languages: UniqueTuple[LanguageCode] = Field(min_length=1, max_length=30)
    """Languages the volunteer works in (ISO 639, stored as 639-3)."""
    experience_level: ExperienceLevel
    practice_areas: UniqueTuple[PracticeArea] = Field(default=(), max_length=len(PracticeArea))
    bar_admissions: BarAdmissions = BarAdmissions()
    eoir_registered: Flag = False
    """Registered with EOIR's eRegistry, needed to appear before an immigration court."""
    max_active_cases: Count = Field(le=100)
    """Capacity: at most this many active matches at once (0: no new cases for now)."""
    facilities_reachable: UniqueTuple[FacilityCode] = Field(default=(), max_length=200)
    """Facilities the volunteer can visit in person."""
    remote: Flag = False
    """Willing to work remotely (phone, video) with any facility."""
    wants_mentor: Flag = False
    can_mentor: Flag = False
    countries_of_expertise: UniqueTuple[CountryCode] = Field(default=(), max_length=60)
    """For country-conditions experts: the countries they can speak to (ISO 3166-1 alpha-2)."""


class CaseFacts(FieldGroup):
    """What matching needs to know about a case; nothing that identifies the client."""

    facility_code: FacilityCode
    """Where the client is detained."""
    court_code: CourtCode
    """The immigration court with jurisdiction."""
    case_type: CaseType
    languages: UniqueTuple[LanguageCode] = Field(min_length=1, max_length=10)
    """The client's languages, preferred first (ISO 639, stored as 639-3)."""
    next_hearing_date: Day | None = None
    next_hearing_kind: HearingKind | None = None
    detained_since: Day | None = None
    complexity_flags: UniqueTuple[ComplexityFlag] = Field(default=(), max_length=len(ComplexityFlag))
    needs: UniqueTuple[CaseNeed] = Field(default=(), max_length=len(CaseNeed))
    """Support beyond counsel: interpreter, evaluators, country-conditions expert."""
    country_conditions: UniqueTuple[CountryCode] = Field(default=(), max_length=5)
    """Countries whose conditions an expert must address (with the country-conditions need)."""
