"""Partner-facing submissions, published by partners on ``partner.<partner-id>.submissions``.

These carry client PII (names, A-number, date of birth, contact), so only intake reads them; intake
stores the PII encrypted and publishes the pseudonymous internal events. Each record is keyed by the
partner's own id for it (``external_id``): a partner never needs to know Lastline's ids.

Validation here is schema-level (types, required fields, sizes, formats and the ISO code lists); that a
facility or court exists in the network's reference data is intake's check.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from lastline_shared.contracts.base import Part, Submission
from lastline_shared.contracts.enums import CaseOutcome, VolunteerWithdrawalReason
from lastline_shared.contracts.primitives import (
    ANumber,
    CountryCode,
    Day,
    Email,
    ExternalId,
    LongText,
    PastDay,
    Phone,
    ShortText,
)
from lastline_shared.contracts.profiles import CaseFacts, VolunteerSkills
from lastline_shared.contracts.topics import PARTNER_SUBMISSIONS


class _PartnerSubmission(Submission):
    topic: ClassVar[str] = PARTNER_SUBMISSIONS.name

    external_id: ExternalId
    """The partner's own id for this volunteer or case; the record key. Must not contain PII."""


class _VolunteerContact(_PartnerSubmission):
    name: ShortText
    email: Email
    phone: Phone | None = None


class VolunteerSubmission(VolunteerSkills, _VolunteerContact):
    """A volunteer's contact details and skills, as a partner sends them."""


class VolunteerRegisteredSubmission(VolunteerSubmission):
    """A partner registers a volunteer."""

    event_type: ClassVar[str] = "volunteer-registered"


class VolunteerUpdatedSubmission(VolunteerSubmission):
    """A partner sends a volunteer's whole current profile."""

    event_type: ClassVar[str] = "volunteer-updated"


class VolunteerWithdrawnSubmission(_PartnerSubmission):
    """A partner withdraws a volunteer."""

    event_type: ClassVar[str] = "volunteer-withdrawn"

    reason: VolunteerWithdrawalReason


class ClientContact(Part):
    phone: Phone | None = None
    email: Email | None = None
    mailing_address: LongText | None = Field(default=None, max_length=500)


class Client(Part):
    """The person facing removal."""

    given_name: ShortText
    family_name: ShortText
    other_names: tuple[ShortText, ...] = Field(default=(), max_length=10)
    """Aliases and other spellings, as they may appear in government records."""
    a_number: ANumber | None = None
    """Alien registration number: 9 digits, optionally prefixed by ``A`` (``A123456789``)."""
    date_of_birth: PastDay | None = None
    country_of_nationality: CountryCode | None = None
    contact: ClientContact | None = None


class ReferralContact(Part):
    """The partner's staff member responsible for the referral."""

    name: ShortText
    email: Email
    phone: Phone | None = None


class DocumentRef(Part):
    """A document the partner holds for the case (listed in the case packet; the file stays with them)."""

    title: ShortText
    kind: ShortText | None = None
    """E.g. ``notice to appear``, ``I-589``, ``medical records``."""
    received_on: Day | None = None


class _ClientCase(_PartnerSubmission):
    client: Client


class CaseSubmission(CaseFacts, _ClientCase):
    notes: LongText | None = None
    """Context for the volunteer who takes the case (shown only after they accept)."""
    referral_contact: ReferralContact | None = None
    documents: tuple[DocumentRef, ...] = Field(default=(), max_length=100)


class CaseOpenedSubmission(CaseSubmission):
    """A partner refers a case."""

    event_type: ClassVar[str] = "case-opened"


class CaseUpdatedSubmission(CaseSubmission):
    """A partner sends a case's whole current state (hearing moved, transfer, needs changed)."""

    event_type: ClassVar[str] = "case-updated"


class CaseClosedSubmission(_PartnerSubmission):
    """A partner reports that a case ended, and how."""

    event_type: ClassVar[str] = "case-closed"

    outcome: CaseOutcome
    closed_on: Day
