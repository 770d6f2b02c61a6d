"""Staff's view of a case in matching, and the override: placing a volunteer by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lastline_matching.placement import Placement
from lastline_shared.auth import Principal, require_role
from lastline_shared.contracts.enums import VolunteerRole
from lastline_shared.ops import ProblemError


class Override(BaseModel):
    volunteer_id: UUID
    role: VolunteerRole = VolunteerRole.ATTORNEY


def build_router(*, sessions: async_sessionmaker[AsyncSession], placement: Placement) -> APIRouter:
    router = APIRouter(prefix="/v1/cases", tags=["staff"])

    @router.get("/{case_id}", summary="A case's state in matching: proposals and matches, with reasons")
    async def case_view(
        case_id: UUID, _: Annotated[Principal, Depends(require_role("staff"))]
    ) -> dict[str, Any]:
        t = placement.store.t
        async with sessions() as session:
            case = (
                (await session.execute(select(t.cases).where(t.cases.c.case_id == case_id)))
                .mappings()
                .first()
            )
            if case is None:
                raise ProblemError(404, "Not found", "matching does not know this case")
            proposals = (
                await session.execute(
                    select(t.proposals)
                    .where(t.proposals.c.case_id == case_id)
                    .order_by(t.proposals.c.created_at)
                )
            ).mappings()
            matches = (
                await session.execute(
                    select(t.matches).where(t.matches.c.case_id == case_id).order_by(t.matches.c.made_at)
                )
            ).mappings()
            return {
                "case_id": str(case_id),
                "status": case["status"],
                "facts": case["facts"],
                "escalated_level": case["escalated_level"],
                "proposals": [_jsonable(p) for p in proposals],
                "matches": [_jsonable(m) for m in matches],
            }

    @router.post("/{case_id}/placements", status_code=201, summary="Place a volunteer directly (admin)")
    async def override(
        case_id: UUID, body: Override, principal: Annotated[Principal, Depends(require_role("admin"))]
    ) -> dict[str, str]:
        async with sessions() as session, session.begin():
            match_id = await placement.override(
                session, case_id, body.volunteer_id, body.role, by=principal.subject, now=datetime.now(UTC)
            )
        if match_id is None:
            raise ProblemError(
                409, "Cannot place", "The case is closed or unknown, or the volunteer is not active."
            )
        return {"match_id": str(match_id)}

    return router


def _jsonable(row: Any) -> dict[str, Any]:
    return {
        k: (v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, UUID) else v)
        for k, v in row.items()
    }
