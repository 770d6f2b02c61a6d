"""Volunteers answer proposals through signed, expiring links: a page to confirm, then the answer.

``GET /v1/proposals/{token}/accept|decline`` shows the case (no client PII) and a form; only the
``POST`` changes anything, so a mail scanner that follows links accepts nothing. Accepting requires
the conflict attestation. Browsers get HTML; clients that send or accept JSON get JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lastline_matching.placement import Placement
from lastline_shared import reference
from lastline_shared.auth import LinkError
from lastline_shared.contracts.enums import DeclineReason
from lastline_shared.ops import ProblemError
from lastline_shared.proposal_links import verify_proposal_link
from lastline_shared.settings import ServiceSettings

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

_ANSWERS = {
    "accepted": ("You are placed on this case", "Thank you. You will receive the case packet by email."),
    "declined": ("Declined", "Thank you for answering; the case goes to another volunteer."),
    "expired": ("This offer expired", "The time to answer passed and the case went to someone else."),
    "retracted": ("This offer was withdrawn", "The case no longer needs you: nothing to do."),
    "filled": ("Someone else accepted first", "Another volunteer took this case. Thank you all the same."),
}


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") or request.headers.get(
        "content-type", ""
    ).startswith("application/json")


async def _form(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.json()
        return body if isinstance(body, dict) else {}
    return dict(await request.form())


def build_router(
    *, sessions: async_sessionmaker[AsyncSession], placement: Placement, settings: ServiceSettings
) -> APIRouter:
    router = APIRouter(prefix="/v1/proposals", tags=["proposals"])

    def _verify(token: str) -> tuple[UUID, UUID]:
        try:
            return verify_proposal_link(token, secret=settings.auth_jwt_secret)
        except LinkError as error:
            status = 410 if error.expired else 403
            raise ProblemError(status, "Link not valid", "This link expired or is not valid.") from None

    async def _proposal_page(request: Request, token: str, answer: str) -> Response:
        proposal_id, volunteer_id = _verify(token)
        p, c = placement.store.t.proposals, placement.store.t.cases
        async with sessions() as session:
            row = (
                (
                    await session.execute(
                        select(p, c.c.facts)
                        .join(c, c.c.case_id == p.c.case_id)
                        .where(p.c.proposal_id == proposal_id)
                    )
                )
                .mappings()
                .first()
            )
        if row is None or row["volunteer_id"] != volunteer_id:
            raise ProblemError(404, "Not found", "No such proposal for you.")
        if row["status"] != "open":
            return _answered(request, row["status"], None)
        facts = row["facts"]
        facility, court = reference.facility(facts["facility_code"]), reference.court(facts["court_code"])
        case = {
            "case_type": facts["case_type"].replace("_", " "),
            "facility": facility.label() if facility else facts["facility_code"],
            "court": court.label() if court else facts["court_code"],
            "next_hearing_date": facts.get("next_hearing_date"),
            "languages": facts["languages"],
        }
        context = {
            "case": case,
            "proposal": {"role": row["role"], "expires_at": row["expires_at"].strftime("%Y-%m-%d %H:%M UTC")},
            "answer": answer,
            "reasons": [r.value for r in DeclineReason],
        }
        return templates.TemplateResponse(request, "proposal.html", context)

    def _answered(request: Request, outcome: str, match_id: UUID | None) -> Response:
        title, message = _ANSWERS.get(outcome, ("Nothing to do", "This offer is no longer open."))
        if _wants_json(request):
            body = {"outcome": outcome, "match_id": str(match_id) if match_id else None}
            return JSONResponse(body, status_code=200 if outcome in {"accepted", "declined"} else 409)
        context = {"title": title, "message": message}
        return templates.TemplateResponse(request, "answered.html", context)

    @router.get("/{token}/accept", response_class=HTMLResponse, summary="The page to accept a proposal")
    async def accept_page(request: Request, token: str) -> Response:
        return await _proposal_page(request, token, "accept")

    @router.get("/{token}/decline", response_class=HTMLResponse, summary="The page to decline a proposal")
    async def decline_page(request: Request, token: str) -> Response:
        return await _proposal_page(request, token, "decline")

    @router.post("/{token}/accept", summary="Accept a proposal (requires the conflict attestation)")
    async def accept(request: Request, token: str) -> Response:
        proposal_id, volunteer_id = _verify(token)
        form = await _form(request)
        if str(form.get("conflict_attested", "")).lower() not in {"true", "on", "1", "yes"}:
            raise ProblemError(422, "Attestation required", "Confirm that you have no conflict of interest.")
        for attempt in range(3):
            try:
                async with sessions() as session, session.begin():
                    outcome, match_id = await placement.accept(
                        session, proposal_id, volunteer_id, datetime.now(UTC)
                    )
                break
            except IntegrityError:
                if attempt == 2:
                    raise
        if outcome in {"not_found", "not_yours"}:
            raise ProblemError(404, "Not found", "No such proposal for you.")
        return _answered(request, outcome, match_id)

    @router.post("/{token}/decline", summary="Decline a proposal, with a reason")
    async def decline(request: Request, token: str) -> Response:
        proposal_id, volunteer_id = _verify(token)
        form = await _form(request)
        try:
            reason = DeclineReason(form.get("reason", DeclineReason.OTHER.value))
        except ValueError:
            raise ProblemError(422, "Unknown reason", "Choose one of the listed reasons.") from None
        async with sessions() as session, session.begin():
            outcome = await placement.decline(session, proposal_id, volunteer_id, reason, datetime.now(UTC))
        if outcome in {"not_found", "not_yours"}:
            raise ProblemError(404, "Not found", "No such proposal for you.")
        return _answered(request, outcome, None)

    return router
