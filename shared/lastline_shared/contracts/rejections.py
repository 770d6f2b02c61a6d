"""The ``submission-rejected`` event on ``partner.<partner-id>.rejections``, keyed by ``submission_id``.

Reasons are machine-readable (``code``) with a path into the submission and a human message. Messages
and suggestions never echo the submitted values: staff see these too, and the values may be PII.
"""

from __future__ import annotations

from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import Field, Strict, StringConstraints

from lastline_shared.contracts.base import Event, Part
from lastline_shared.contracts.primitives import Code, ExternalId, PartnerId, text
from lastline_shared.contracts.topics import PARTNER_REJECTIONS

Path = Annotated[str, Strict(), StringConstraints(max_length=300)]
Message = Annotated[str, Strict(), text(1000)]


class RejectionReason(Part):
    path: Path
    """Where in the submission: ``client.a_number``, ``languages[1]``, ``headers.ce_type``; ``""``
    for the whole message."""
    code: Code
    """Stable machine-readable code, e.g. ``missing``, ``string_pattern_mismatch``, ``invalid_json``."""
    message: Message


class Suggestion(Part):
    path: Path
    hint: Message
    """What would be accepted, e.g. ``use an ISO 639 code such as "es"``."""


class SubmissionRejected(Event):
    """A partner's submission was not accepted, and why."""

    event_type: ClassVar[str] = "submission-rejected"
    topic: ClassVar[str] = PARTNER_REJECTIONS.name

    submission_id: UUID
    """Intake's id for the stored submission."""
    partner_id: PartnerId
    event_id: Annotated[str, Strict(), StringConstraints(max_length=200)] | None = None
    """The submission's ``ce_id``, if it had one."""
    submission_type: Annotated[str, Strict(), StringConstraints(max_length=200)] | None = None
    """The submission's ``ce_type`` as sent (possibly unknown)."""
    external_id: ExternalId | None = None
    """The partner's id for the record, if it could be read."""
    reasons: tuple[RejectionReason, ...] = Field(min_length=1, max_length=100)
    suggestions: tuple[Suggestion, ...] = Field(default=(), max_length=100)
