"""The case packet: the client's details for the volunteer placed on the case, and nobody else.

Intake learns who is placed from matching's ``match-made`` and ``match-ended`` (the ``placements``
table). The volunteer reaches the packet through a signed, expiring link
(:mod:`lastline_shared.packet_links`) naming the case, the volunteer and the match: ``GET`` shows
what they are about to see and asks them to attest that they have no conflict of interest; ``POST``
with the attestation returns the packet, decrypted from ``cases.pii``. The link opens nothing once
the placement ended, the case closed or its PII was erased.

Every attempt, granted or refused, is a row in ``packet_access_log`` (who, which case and match,
when, from where, what was decided and why), written in its own transaction before the answer
leaves. The log holds ids only, never the client's details. Browsers get pages; other clients JSON.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field, SecretStr, Strict, ValidationError
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    Table,
    Text,
    false,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lastline_intake import reference
from lastline_intake.case_pii import CasePii, decrypt_case_pii
from lastline_intake.partners import PartnerRepository
from lastline_intake.pii import Keyring, PiiError
from lastline_intake.tables import IntakeTables
from lastline_shared.auth import Principal, require_role
from lastline_shared.contracts.envelope import Envelope
from lastline_shared.contracts.matches import MatchEnded, MatchMade
from lastline_shared.contracts.topics import MATCHES
from lastline_shared.logging import get_logger
from lastline_shared.ops import PROBLEM_MEDIA_TYPE, problem_response
from lastline_shared.packet_links import PacketLink, PacketLinkError, verify_packet_link
from lastline_shared.runtime import ServiceRuntime
from lastline_shared.settings import IntakeSettings

log = get_logger(__name__)

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

ATTESTATION = (
    "I have checked for conflicts of interest with this client and the parties to this case, and I "
    "have none. I will use these details only to represent or assist the client."
)
_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
_TRUE = {"true", "on", "1", "yes"}
Action = Literal["preview", "open"]
"""``preview``: the page asking for the attestation (GET); ``open``: the packet (POST)."""


# -- tables --------------------------------------------------------------------------------------


def placements_table(metadata: MetaData) -> Table:
    return Table(
        "placements",
        metadata,
        Column("match_id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("volunteer_id", PgUUID(as_uuid=True), nullable=False),
        Column("role", Text, nullable=False),
        # Null when the end arrived first (it never should: both are keyed by case, in order).
        Column("made_at", DateTime(timezone=True), nullable=True),
        Column("ended_at", DateTime(timezone=True), nullable=True),
        Column("end_reason", Text, nullable=True),
        Index(None, "case_id"),
    )


def packet_access_log_table(metadata: MetaData) -> Table:
    return Table(
        "packet_access_log",
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("action", Text, nullable=False),
        Column("outcome", Text, nullable=False),
        Column("reason", Text, nullable=True),
        # What the link named; null when the link could not be read.
        Column("case_id", PgUUID(as_uuid=True), nullable=True),
        Column("volunteer_id", PgUUID(as_uuid=True), nullable=True),
        Column("match_id", PgUUID(as_uuid=True), nullable=True),
        Column("attested", Boolean, nullable=False, server_default=false()),
        # The volunteer's own name as they signed the attestation (theirs, not the client's).
        Column("attested_name", Text, nullable=True),
        Column("client_ip", Text, nullable=True),
        Column("user_agent", Text, nullable=True),
        CheckConstraint("action IN ('preview', 'open')", name="action"),
        CheckConstraint("outcome IN ('granted', 'refused')", name="outcome"),
        Index(None, "case_id", "at"),
        Index(None, "volunteer_id", "at"),
    )


# -- placements (from the matches topic) ---------------------------------------------------------


class Placements:
    """Who is placed on which case, as matching said; nothing else of the matches topic."""

    def __init__(self, metadata: MetaData) -> None:
        self.table = placements_table(metadata)

    async def on_event(self, session: AsyncSession, envelope: Envelope) -> None:
        data, t = envelope.data, self.table
        if isinstance(data, MatchMade):
            statement = pg_insert(t).values(
                match_id=data.match_id,
                case_id=data.case_id,
                volunteer_id=data.volunteer_id,
                role=data.role.value,
                made_at=envelope.time,
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["match_id"],
                    set_={"made_at": statement.excluded.made_at},
                    where=t.c.made_at.is_(None),
                )
            )
        elif isinstance(data, MatchEnded):
            statement = pg_insert(t).values(
                match_id=data.match_id,
                case_id=data.case_id,
                volunteer_id=data.volunteer_id,
                role=data.role.value,
                ended_at=envelope.time,
                end_reason=data.reason.value,
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["match_id"],
                    set_={
                        "ended_at": statement.excluded.ended_at,
                        "end_reason": statement.excluded.end_reason,
                    },
                    where=t.c.ended_at.is_(None),
                )
            )


# -- the packet ----------------------------------------------------------------------------------


class Refusal(enum.StrEnum):
    """Why a packet was not served (the audit's ``reason``), with the HTTP status it answers."""

    INVALID_LINK = "invalid_link"
    EXPIRED_LINK = "expired_link"
    MALFORMED_REQUEST = "malformed_request"
    UNKNOWN_PLACEMENT = "unknown_placement"
    PLACEMENT_ENDED = "placement_ended"
    UNKNOWN_CASE = "unknown_case"
    PII_ERASED = "pii_erased"
    CASE_CLOSED = "case_closed"
    NOT_ATTESTED = "not_attested"
    PII_UNREADABLE = "pii_unreadable"

    @property
    def status(self) -> int:
        return _REFUSALS[self][0]

    @property
    def headline(self) -> str:
        return _REFUSALS[self][1]

    @property
    def message(self) -> str:
        return _REFUSALS[self][2]


_REFUSALS: dict[Refusal, tuple[int, str, str]] = {
    Refusal.INVALID_LINK: (403, "Link not valid", "This link is not valid. Use the link from your email."),
    Refusal.EXPIRED_LINK: (410, "Link expired", "This link expired. Ask the network's staff for a new one."),
    Refusal.MALFORMED_REQUEST: (422, "Malformed request", 'Send {"attest_no_conflict": true} as JSON.'),
    Refusal.UNKNOWN_PLACEMENT: (404, "Not found", "No placement of yours on this case is known."),
    Refusal.PLACEMENT_ENDED: (410, "Placement ended", "You are no longer placed on this case."),
    Refusal.UNKNOWN_CASE: (404, "Not found", "This case is not known."),
    Refusal.PII_ERASED: (410, "Details erased", "The client's details were erased after the case closed."),
    Refusal.CASE_CLOSED: (410, "Case closed", "This case is closed."),
    Refusal.NOT_ATTESTED: (
        403,
        "Attestation required",
        'Confirm that you have no conflict of interest ("attest_no_conflict": true).',
    ),
    Refusal.PII_UNREADABLE: (500, "Details unavailable", "The details cannot be read now; staff were told."),
}


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request for a packet, as the audit records it."""

    action: Action
    link: PacketLink | None
    at: datetime
    client_ip: str | None
    user_agent: str | None
    attested: bool = False
    attested_name: str | None = None


@dataclass(frozen=True, slots=True)
class Found:
    """The placement and case a valid link names, once they passed every check."""

    placement: Any
    case: Any


class CasePackets:
    """Placements, the access log and the packet itself; every method runs in the caller's transaction."""

    def __init__(
        self, metadata: MetaData, *, tables: IntakeTables, partners: PartnerRepository, keyring: Keyring
    ) -> None:
        self.placements = Placements(metadata)
        self.access_log = packet_access_log_table(metadata)
        self._tables = tables
        self._partners = partners
        self._keyring = keyring

    async def serve(self, session: AsyncSession, attempt: Attempt) -> dict[str, Any] | Refusal:
        """What the attempt gets: the case summary (preview), the packet (open), or why not."""
        if attempt.link is None:
            return Refusal.INVALID_LINK
        found = await self.check(session, attempt.link)
        if isinstance(found, Refusal):
            return found
        if attempt.action == "preview":
            return case_summary(found.case, found.placement) | {"attestation": ATTESTATION}
        if not attempt.attested:
            return Refusal.NOT_ATTESTED
        try:
            return await self.packet(session, found)
        except PiiError as error:  # a key removed too early, a damaged row: staff must look
            log.error("case packet cannot be decrypted", error=type(error).__name__, **_ids(attempt.link))
            return Refusal.PII_UNREADABLE

    async def check(self, session: AsyncSession, link: PacketLink) -> Found | Refusal:
        """The placement and case if the link may open them now, else why not."""
        p, c = self.placements.table, self._tables.cases
        placement = (await session.execute(select(p).where(p.c.match_id == link.match_id))).mappings().first()
        if placement is None or (placement["volunteer_id"], placement["case_id"]) != (
            link.volunteer_id,
            link.case_id,
        ):
            return Refusal.UNKNOWN_PLACEMENT
        if placement["made_at"] is None or placement["ended_at"] is not None:
            return Refusal.PLACEMENT_ENDED
        case = (await session.execute(select(c).where(c.c.case_id == link.case_id))).mappings().first()
        if case is None:
            return Refusal.UNKNOWN_CASE
        if case["pii"] is None:
            return Refusal.PII_ERASED
        if case["status"] != "open":
            return Refusal.CASE_CLOSED
        return Found(placement, case)

    async def packet(self, session: AsyncSession, found: Found) -> dict[str, Any]:
        """The packet of a checked placement, the client's details decrypted."""
        case, placement = found.case, found.placement
        pii = decrypt_case_pii(self._keyring, case["case_id"], case["pii"])
        names = await self._partner_names(session, pii)
        return packet_json(case, placement, pii, names)

    async def audit(self, session: AsyncSession, attempt: Attempt, result: dict[str, Any] | Refusal) -> None:
        link, refusal = attempt.link, result if isinstance(result, Refusal) else None
        await session.execute(
            insert(self.access_log).values(
                at=attempt.at,
                action=attempt.action,
                outcome="refused" if refusal else "granted",
                reason=refusal.value if refusal else None,
                case_id=link.case_id if link else None,
                volunteer_id=link.volunteer_id if link else None,
                match_id=link.match_id if link else None,
                attested=attempt.attested,
                attested_name=attempt.attested_name,
                client_ip=attempt.client_ip,
                user_agent=attempt.user_agent,
            )
        )

    async def _partner_names(self, session: AsyncSession, pii: CasePii) -> dict[str, str]:
        ids = {r.partner_id for r in pii.referrals}
        if not ids:
            return {}
        p = self._partners.partners
        rows = await session.execute(select(p.c.partner_id, p.c.name).where(p.c.partner_id.in_(ids)))
        return {row.partner_id: row.name for row in rows}


def _place(place: reference.Facility | reference.Court | None, code: str) -> dict[str, Any]:
    if place is None:
        return {"code": code, "name": None, "city": None, "state": None}
    return {"code": place.code, "name": place.name, "city": place.city, "state": place.state}


def case_summary(case: Any, placement: Any) -> dict[str, Any]:
    """What the volunteer is about to open: the case as matching saw it, no client details."""
    facts = case["facts"]
    return {
        "case_id": str(case["case_id"]),
        "match_id": str(placement["match_id"]),
        "volunteer_id": str(placement["volunteer_id"]),
        "role": placement["role"],
        "case_type": facts.get("case_type"),
        "facility": _place(reference.facility(facts["facility_code"]), facts["facility_code"]),
        "court": _place(reference.court(facts["court_code"]), facts["court_code"]),
        "next_hearing": {"date": facts.get("next_hearing_date"), "kind": facts.get("next_hearing_kind")},
        "languages": facts.get("languages", []),
    }


def packet_json(case: Any, placement: Any, pii: CasePii, partner_names: dict[str, str]) -> dict[str, Any]:
    facts = case["facts"]
    return case_summary(case, placement) | {
        "client": pii.client.model_dump(mode="json"),
        "detained_since": facts.get("detained_since"),
        "complexity_flags": facts.get("complexity_flags", []),
        "needs": facts.get("needs", []),
        "country_conditions": facts.get("country_conditions", []),
        "referrals": [
            {
                "partner_id": r.partner_id,
                "partner_name": partner_names.get(r.partner_id),
                "external_id": r.external_id,
                "contact": r.referral_contact.model_dump(mode="json") if r.referral_contact else None,
                "notes": r.notes,
                "documents": [d.model_dump(mode="json") for d in r.documents],
            }
            for r in pii.referrals
        ],
    }


# -- HTTP ----------------------------------------------------------------------------------------


class PacketRequest(BaseModel):
    """The volunteer's attestation."""

    model_config = ConfigDict(extra="forbid")

    attest_no_conflict: Annotated[bool, Strict()] = Field(default=False, description="Required: true")
    volunteer_name: str | None = Field(
        default=None, max_length=200, description="Your name, as your signature of the attestation"
    )


def _wants_html(request: Request) -> bool:
    if request.headers.get("content-type", "").startswith("application/json"):
        return False
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


async def _attestation(request: Request) -> PacketRequest | None:
    """The attestation from a JSON body or a browser's form; None if the body is neither."""
    body = await request.body()
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = parse_qs(body.decode("utf-8", "replace"))
        name = (form.get("volunteer_name") or [""])[0].strip()
        return PacketRequest(
            attest_no_conflict=(form.get("attest_no_conflict") or [""])[0].lower() in _TRUE,
            volunteer_name=name[:200] or None,
        )
    if not body.strip():
        return PacketRequest()
    try:
        return PacketRequest.model_validate_json(body)
    except ValidationError:
        return None


def _client_ip(request: Request) -> str | None:
    # Behind a proxy, uvicorn's --forwarded-allow-ips makes this the real client.
    return request.client.host if request.client else None


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {}}}


_GONE = "The link expired, the placement ended, the case closed or its details were erased"
_PREVIEW_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The case (no client details) and the attestation"},
    403: _problem("The link is not valid"),
    404: _problem("No such placement or case"),
    410: _problem(_GONE),
}
_OPEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The packet: the client's details, the facility, court and referrals"},
    403: _problem("The link is not valid, or no attestation"),
    404: _problem("No such placement or case"),
    410: _problem(_GONE),
    422: _problem("The body is not the attestation"),
}


def build_router(
    *, sessions: async_sessionmaker[AsyncSession], packets: CasePackets, secret: SecretStr | str
) -> APIRouter:
    router = APIRouter(tags=["case packets"])

    async def answer(request: Request, token: str, action: Action) -> Response:
        link: PacketLink | None = None
        refusal: Refusal | None = None
        try:
            link = verify_packet_link(token, secret=secret)
        except PacketLinkError as error:
            link = error.link
            refusal = Refusal.EXPIRED_LINK if error.expired else Refusal.INVALID_LINK
        form: PacketRequest | None = PacketRequest()
        if refusal is None and action == "open":
            form = await _attestation(request)
            refusal = Refusal.MALFORMED_REQUEST if form is None else None
        attempt = Attempt(
            action=action,
            link=link,
            at=datetime.now(UTC),
            client_ip=_client_ip(request),
            user_agent=(request.headers.get("user-agent") or "")[:300] or None,
            attested=form.attest_no_conflict if form else False,
            attested_name=form.volunteer_name if form else None,
        )
        # The decision and its audit row commit together, before anything is sent.
        async with sessions.begin() as session:
            result = refusal or await packets.serve(session, attempt)
            await packets.audit(session, attempt, result)
        html = _wants_html(request)
        if isinstance(result, Refusal):
            log.info("case packet refused", action=action, reason=result.value, **_ids(link))
            if html:
                context = {"title": result.headline, "message": result.message}
                return templates.TemplateResponse(
                    request, "packet_message.html", context, status_code=result.status, headers=_NO_STORE
                )
            return problem_response(result.status, result.headline, result.message, _NO_STORE)
        log.info("case packet served", action=action, **_ids(link))
        if html:
            page = "packet_attest.html" if action == "preview" else "packet.html"
            return templates.TemplateResponse(request, page, {"packet": result}, headers=_NO_STORE)
        return JSONResponse(result, headers=_NO_STORE)

    @router.get(
        "/v1/case-packets/{token}",
        summary="What a placed volunteer is about to open, and the attestation asked of them",
        response_model=None,
        responses=_PREVIEW_RESPONSES,
    )
    async def preview(request: Request, token: str) -> Response:
        return await answer(request, token, "preview")

    @router.post(
        "/v1/case-packets/{token}",
        summary="The case packet, after attesting no conflict of interest",
        response_model=None,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": PacketRequest.model_json_schema()},
                    "application/x-www-form-urlencoded": {"schema": PacketRequest.model_json_schema()},
                },
            }
        },
        responses=_OPEN_RESPONSES,
    )
    async def open_packet(request: Request, token: str) -> Response:
        return await answer(request, token, "open")

    @router.get("/v1/audit/case-packets", summary="Who opened or tried to open case packets (admin)")
    async def access_log(
        _: Annotated[Principal, Depends(require_role("admin"))],
        case_id: UUID | None = None,
        volunteer_id: UUID | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        t = packets.access_log
        query = select(t).order_by(t.c.id.desc()).limit(limit)
        if case_id is not None:
            query = query.where(t.c.case_id == case_id)
        if volunteer_id is not None:
            query = query.where(t.c.volunteer_id == volunteer_id)
        async with sessions() as session:
            rows = (await session.execute(query)).mappings().all()
        return {"entries": [jsonable(row) for row in rows]}

    return router


def _ids(link: PacketLink | None) -> dict[str, str | None]:
    if link is None:
        return {"case_id": None, "volunteer_id": None, "match_id": None}
    return {
        "case_id": str(link.case_id),
        "volunteer_id": str(link.volunteer_id),
        "match_id": str(link.match_id),
    }


def jsonable(row: Any) -> dict[str, Any]:
    """A database row as JSON values (times in ISO 8601, ids as strings)."""
    return {
        k: v.isoformat() if isinstance(v, datetime | date) else str(v) if isinstance(v, UUID) else v
        for k, v in row.items()
    }


def register(
    runtime: ServiceRuntime,
    *,
    tables: IntakeTables,
    partners: PartnerRepository,
    keyring: Keyring,
    settings: IntakeSettings,
) -> CasePackets:
    """Placements from ``matches`` (consumer ``placements``), the packet endpoints on the app."""
    packets = CasePackets(runtime.metadata, tables=tables, partners=partners, keyring=keyring)
    runtime.consume(
        MATCHES.name,
        handle=packets.placements.on_event,
        name="placements",
        description="Matches made and ended: who may open a case's packet",
    )
    runtime.routers.append(
        build_router(sessions=runtime.sessions, packets=packets, secret=settings.auth_jwt_secret)
    )
    return packets
