"""From a claimed email delivery to the message: the recipient's current contact and language, the case
summary in words, and the signed links, read at send time (the contacts and cases once per claimed
batch, just before its messages go out).

The links are signed here, not when the delivery was decided, so a retried message carries a link
that is valid from the moment it is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from typing import Any
from uuid import UUID

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from lastline_notifications.deliveries import Claimed, DeliveryError
from lastline_notifications.labels import label, language_name, template_language
from lastline_notifications.mail import Renderer, compose
from lastline_notifications.projections import CaseSummary, Contact, Projections
from lastline_shared import reference
from lastline_shared.contracts.enums import DeliveryFailure
from lastline_shared.packet_links import packet_url, sign_packet_link
from lastline_shared.proposal_links import proposal_url, sign_proposal_link


@dataclass(frozen=True)
class LinkSettings:
    auth_jwt_secret: SecretStr
    matching_public_url: str
    intake_public_url: str
    packet_link_ttl_hours: int


def case_view(case: CaseSummary | None, language: str) -> dict[str, Any] | None:
    if case is None:
        return None
    facility = reference.facility(case.facility_code)
    court = reference.court(case.court_code)
    return {
        "case_type": label(case.case_type, language),
        "facility_name": facility.name if facility else case.facility_code,
        "facility": f"{facility.name}, {facility.city}, {facility.state}" if facility else case.facility_code,
        "court": f"{court.name} ({court.code})" if court else case.court_code,
        "languages": ", ".join(language_name(code, language) for code in case.languages),
        "next_hearing_date": case.next_hearing_date.isoformat() if case.next_hearing_date else None,
    }


@dataclass(frozen=True)
class Known:
    """What the projections say about a batch of deliveries' recipients and cases."""

    contacts: dict[UUID, Contact]
    cases: dict[UUID, CaseSummary]


class EmailBuilder:
    def __init__(
        self, projections: Projections, renderer: Renderer, links: LinkSettings, sender: str
    ) -> None:
        self.projections = projections
        self.renderer = renderer
        self.links = links
        self.sender = sender

    async def load(self, session: AsyncSession, deliveries: Sequence[Claimed]) -> Known:
        """The contacts and cases ``deliveries`` need, in two reads for the whole batch."""
        people: set[UUID] = set()
        case_ids: set[UUID] = set()
        for delivery in deliveries:
            if other_id := delivery.context.get("other_volunteer_id"):
                people.add(UUID(other_id))
            if delivery.recipient_kind == "volunteer":
                people.add(UUID(delivery.recipient_id))
            if delivery.case_id is not None:
                case_ids.add(delivery.case_id)
        return Known(
            await self.projections.contacts(session, people), await self.projections.cases(session, case_ids)
        )

    def message(self, known: Known, delivery: Claimed) -> Message:
        """The message for ``delivery`` from what ``load`` read; ``DeliveryError`` if its recipient or
        case is unknown (yet)."""
        ctx = delivery.context
        other_id = ctx.get("other_volunteer_id")
        contacts = known.contacts
        case = known.cases.get(delivery.case_id) if delivery.case_id else None
        if delivery.case_id is not None and case is None:
            raise DeliveryError(DeliveryFailure.OTHER, "case not known yet", not_ready=True)

        if delivery.recipient_kind == "volunteer":
            contact = contacts.get(UUID(delivery.recipient_id))
            if contact is None:
                raise DeliveryError(
                    DeliveryFailure.INVALID_RECIPIENT, "volunteer contact not known yet", not_ready=True
                )
            to_name, to_address, language = contact.name, contact.email, template_language(contact.language)
        else:
            to_name, to_address, language = None, str(ctx["to"]), "eng"

        view: dict[str, Any] = {
            **ctx,
            "recipient": {"name": to_name or ""},
            "case": case_view(case, language),
            "role": label(ctx["role"], language) if ctx.get("role") else None,
            "reason": label(ctx["reason"], language) if ctx.get("reason") else None,
            "reasons": [label(r, language) for r in ctx.get("reasons", [])],
            "missing": [label(r, language) for r in ctx.get("missing", [])],
            "causes": [label(c, language) for c in ctx.get("causes", [])],
            "mentor_needed": bool(ctx.get("mentor_needed")),
            "packet_url": None,
            "other": None,
        }
        if other_id:
            other = contacts.get(UUID(other_id))
            if other is None:
                raise DeliveryError(
                    DeliveryFailure.OTHER, "the other volunteer's contact is not known yet", not_ready=True
                )
            view["other"] = {"name": other.name, "email": other.email}
        if delivery.template == "mentor_assigned_mentor":
            view["role"] = label("mentor", language)
        self._links(delivery, view)
        rendered = self.renderer.render(delivery.template, language, view)
        return compose(
            rendered,
            sender=self.sender,
            to_name=to_name,
            to_address=to_address,
            message_id=str(delivery.notification_id),
        )

    def _links(self, delivery: Claimed, view: dict[str, Any]) -> None:
        ctx = delivery.context
        if delivery.template == "match_proposed":
            expires_at = datetime.fromisoformat(ctx["expires_at"])
            token = sign_proposal_link(
                secret=self.links.auth_jwt_secret,
                proposal_id=UUID(ctx["proposal_id"]),
                volunteer_id=UUID(delivery.recipient_id),
                expires_at=expires_at,
            )
            view["accept_url"] = proposal_url(self.links.matching_public_url, token, "accept")
            view["decline_url"] = proposal_url(self.links.matching_public_url, token, "decline")
            view["expires_at"] = expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        elif delivery.template == "match_made" and delivery.case_id is not None:
            token = sign_packet_link(
                self.links, delivery.case_id, UUID(delivery.recipient_id), UUID(ctx["match_id"])
            )
            view["packet_url"] = packet_url(self.links.intake_public_url, token)
