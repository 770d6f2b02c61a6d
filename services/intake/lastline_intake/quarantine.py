"""Staff review of quarantined submissions: what was rejected, why, and (admins only) what was sent.

A rejected submission is kept in ``quarantine`` with its raw value encrypted, since it may hold
client PII. Staff list and review them by reasons, position and sizes; only an admin reads a raw
value, and every such reading is a row in ``quarantine_access_log``, written in the same transaction.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lastline_intake.pii import Keyring, PiiError
from lastline_intake.processing import quarantine_aad
from lastline_intake.tables import IntakeTables
from lastline_shared.auth import Principal, require_role
from lastline_shared.logging import get_logger
from lastline_shared.ops import ProblemError
from lastline_shared.runtime import ServiceRuntime

log = get_logger(__name__)

_NO_STORE = {"Cache-Control": "no-store"}


def quarantine_access_log_table(metadata: MetaData) -> Table:
    return Table(
        "quarantine_access_log",
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("at", DateTime(timezone=True), nullable=False),
        # No foreign key: the log outlives what it is about.
        Column("submission_id", PgUUID(as_uuid=True), nullable=False),
        Column("accessed_by", Text, nullable=False),
        # False when there was nothing to show (erased after the retention period, or empty).
        Column("value_shown", Boolean, nullable=False),
        Column("client_ip", Text, nullable=True),
        Index(None, "submission_id", "at"),
    )


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=4000, description="What was done about it")


def _header_names(headers: Any) -> list[dict[str, Any]]:
    """Header names and value sizes: enough to see what was sent without showing it."""
    out = []
    for header in headers or []:
        try:
            size = len(base64.b64decode(header.get("value", ""), validate=True))
        except (binascii.Error, ValueError):
            size = None
        out.append({"name": header.get("name"), "bytes": size})
    return out


def _headers(headers: Any) -> list[dict[str, Any]]:
    """Headers decoded as text (admins only: a header may carry anything a partner put there)."""
    out = []
    for header in headers or []:
        try:
            raw = base64.b64decode(header.get("value", ""), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        out.append({"name": header.get("name"), "value": raw.decode("utf-8", "replace")})
    return out


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class QuarantineReview:
    """Reads and reviews ``quarantine``; every method runs in the caller's transaction."""

    def __init__(self, metadata: MetaData, *, tables: IntakeTables, keyring: Keyring) -> None:
        self.access_log = quarantine_access_log_table(metadata)
        self._t = tables
        self._keyring = keyring

    def _query(self) -> Any:
        q, s = self._t.quarantine, self._t.submissions
        return select(q, s.c.event_id, s.c.event_type, s.c.external_id).join(
            s, s.c.submission_id == q.c.submission_id
        )

    @staticmethod
    def _item(row: Any) -> dict[str, Any]:
        return {
            "submission_id": str(row["submission_id"]),
            "partner_id": row["partner_id"],
            "channel": row["channel"],
            "event_id": row["event_id"],
            "event_type": row["event_type"],
            "external_id": row["external_id"],
            "topic": row["topic"],
            "partition": row["partition"],
            "offset": row["offset"],
            "received_at": _time(row["received_at"]),
            "reasons": row["reasons"],
            "key_bytes": len(row["record_key"]) if row["record_key"] is not None else None,
            "headers": _header_names(row["headers"]),
            "value_bytes": row["value_bytes"],
            "value_kept": row["value_encrypted"] is not None,
            "reviewed_at": _time(row["reviewed_at"]),
            "reviewed_by": row["reviewed_by"],
            "review_note": row["review_note"],
        }

    async def page(
        self, session: AsyncSession, *, partner_id: str | None, reviewed: bool | None, limit: int, offset: int
    ) -> dict[str, Any]:
        """Unreviewed first, then newest first."""
        q = self._t.quarantine
        conditions = []
        if partner_id is not None:
            conditions.append(q.c.partner_id == partner_id)
        if reviewed is not None:
            conditions.append(q.c.reviewed_at.is_not(None) if reviewed else q.c.reviewed_at.is_(None))
        total = await session.scalar(select(func.count()).select_from(q).where(*conditions))
        rows = await session.execute(
            self._query()
            .where(*conditions)
            .order_by(q.c.reviewed_at.is_not(None), q.c.received_at.desc(), q.c.submission_id)
            .limit(limit)
            .offset(offset)
        )
        items = [self._item(row) for row in rows.mappings()]
        return {"total": total or 0, "limit": limit, "offset": offset, "items": items}

    async def read(
        self, session: AsyncSession, submission_id: UUID, *, by: str, client_ip: str | None, now: datetime
    ) -> dict[str, Any] | None:
        """One item with its raw value decrypted; the reading is logged in the same transaction."""
        q = self._t.quarantine
        row = (
            (await session.execute(self._query().where(q.c.submission_id == submission_id)))
            .mappings()
            .first()
        )
        if row is None:
            return None
        value: str | None = None
        problem: str | None = None
        if row["value_encrypted"] is not None:
            try:
                raw = self._keyring.decrypt(row["value_encrypted"], aad=quarantine_aad(submission_id))
            except PiiError as error:
                problem = f"the value cannot be decrypted ({type(error).__name__})"
            else:
                value = raw.decode("utf-8", "replace")
        elif row["value_bytes"]:
            problem = "the value was erased after the retention period"
        await session.execute(
            insert(self.access_log).values(
                at=now,
                submission_id=submission_id,
                accessed_by=by,
                value_shown=value is not None,
                client_ip=client_ip,
            )
        )
        key = row["record_key"]
        return self._item(row) | {
            "record_key": key.decode("utf-8", "replace") if key is not None else None,
            "headers": _headers(row["headers"]),
            "value": value,
            "value_problem": problem,
        }

    async def review(
        self, session: AsyncSession, submission_id: UUID, *, by: str, note: str | None, now: datetime
    ) -> dict[str, Any] | None:
        q = self._t.quarantine
        done = await session.execute(
            update(q)
            .where(q.c.submission_id == submission_id)
            .values(reviewed_at=now, reviewed_by=by, review_note=note)
            .returning(q.c.submission_id)
        )
        if done.first() is None:
            return None
        row = (
            (await session.execute(self._query().where(q.c.submission_id == submission_id))).mappings().one()
        )
        return self._item(row)


def _not_found() -> ProblemError:
    return ProblemError(404, "Not found", "No quarantined submission has this id")


def build_router(*, sessions: async_sessionmaker[AsyncSession], review: QuarantineReview) -> APIRouter:
    router = APIRouter(tags=["staff: quarantine"])

    @router.get(
        "/v1/quarantine",
        summary="Rejected submissions kept for review, unreviewed first (staff; no raw values)",
    )
    async def list_quarantine(
        _: Annotated[Principal, Depends(require_role("staff"))],
        partner_id: str | None = None,
        reviewed: Annotated[
            bool | None, Query(description="Only reviewed (true) or unreviewed (false)")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        async with sessions() as session:
            return await review.page(
                session, partner_id=partner_id, reviewed=reviewed, limit=limit, offset=offset
            )

    @router.get(
        "/v1/quarantine/{submission_id}",
        summary="One quarantined submission with its raw value (admin; every reading is logged)",
        responses={404: {"description": "No quarantined submission has this id"}},
    )
    async def read_quarantined(
        request: Request,
        submission_id: UUID,
        principal: Annotated[Principal, Depends(require_role("admin"))],
    ) -> JSONResponse:
        client_ip = request.client.host if request.client else None
        async with sessions.begin() as session:
            item = await review.read(
                session, submission_id, by=principal.subject, client_ip=client_ip, now=datetime.now(UTC)
            )
        if item is None:
            raise _not_found()
        log.info("quarantined value read", submission_id=str(submission_id), by=principal.subject)
        return JSONResponse(item, headers=_NO_STORE)

    @router.post(
        "/v1/quarantine/{submission_id}/review",
        summary="Mark a quarantined submission reviewed, with a note (staff)",
        responses={404: {"description": "No quarantined submission has this id"}},
    )
    async def mark_reviewed(
        submission_id: UUID,
        body: ReviewBody,
        principal: Annotated[Principal, Depends(require_role("staff"))],
    ) -> dict[str, Any]:
        async with sessions.begin() as session:
            item = await review.review(
                session, submission_id, by=principal.subject, note=body.note, now=datetime.now(UTC)
            )
        if item is None:
            raise _not_found()
        return item

    @router.get("/v1/audit/quarantine", summary="Who read quarantined raw values (admin)")
    async def access_log(
        _: Annotated[Principal, Depends(require_role("admin"))],
        submission_id: UUID | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        t = review.access_log
        query = select(t).order_by(t.c.id.desc()).limit(limit)
        if submission_id is not None:
            query = query.where(t.c.submission_id == submission_id)
        async with sessions() as session:
            rows = (await session.execute(query)).mappings().all()
        return {"entries": [{k: _jsonable(v) for k, v in row.items()} for row in rows]}

    return router


def _jsonable(value: object) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def register(runtime: ServiceRuntime, *, tables: IntakeTables, keyring: Keyring) -> QuarantineReview:
    review = QuarantineReview(runtime.metadata, tables=tables, keyring=keyring)
    runtime.routers.append(build_router(sessions=runtime.sessions, review=review))
    return review
