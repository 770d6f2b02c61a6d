"""Events of the ``volunteers`` topic, keyed by ``volunteer_id``.

A volunteer consented to share their own name and email: notifications needs them to send offers.
Registered and updated events carry the whole current profile, so a consumer upserts without merging.
"""

from __future__ import annotations

from typing import ClassVar

from lastline_shared.contracts.base import Event
from lastline_shared.contracts.enums import VolunteerWithdrawalReason
from lastline_shared.contracts.primitives import Email, ShortText, VolunteerId
from lastline_shared.contracts.profiles import PartnerRef, VolunteerSkills
from lastline_shared.contracts.topics import VOLUNTEERS


class _Volunteer(Event):
    topic: ClassVar[str] = VOLUNTEERS.name

    volunteer_id: VolunteerId
    name: ShortText
    """The volunteer's own name (not a client's)."""
    email: Email
    """The volunteer's own email, where offers are sent."""


class VolunteerProfile(VolunteerSkills, _Volunteer):
    registered_by: PartnerRef | None = None
    """The partner that registered the volunteer, and its id for them."""


class VolunteerRegistered(VolunteerProfile):
    """A volunteer joined the network."""

    event_type: ClassVar[str] = "volunteer-registered"


class VolunteerUpdated(VolunteerProfile):
    """A volunteer's profile changed; carries the whole current profile."""

    event_type: ClassVar[str] = "volunteer-updated"


class VolunteerWithdrawn(Event):
    """A volunteer left the network (or paused indefinitely): no new proposals."""

    event_type: ClassVar[str] = "volunteer-withdrawn"
    topic: ClassVar[str] = VOLUNTEERS.name

    volunteer_id: VolunteerId
    reason: VolunteerWithdrawalReason
