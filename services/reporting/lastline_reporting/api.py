"""The JSON API and CSV export: every figure, for staff (bearer token) and, where allowed, the public.

``GET /api/v1/<view>/<figure>`` answers JSON, ``GET /api/v1/<view>/<figure>.csv`` the same rows as
CSV. Every figure takes the filters ``facility``, ``partner``, ``case_type``, ``date_from`` and
``date_to``; breakdowns take ``by``.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations, which name
# a type built per figure inside a function.
import csv
import io
from collections.abc import Callable, Coroutine, Sequence
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import ValidationError

from lastline_reporting.models import Dimension, Filters, Row, View
from lastline_reporting.registry import FIGURES, FigureDef, FigureResponse, Reporting, allowed
from lastline_shared.auth import require_role
from lastline_shared.contracts.enums import CaseType
from lastline_shared.ops import ProblemError

# Spreadsheets run a cell that starts like a formula: such text is exported with a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def query_filters(
    facility: Annotated[str | None, Query(description="Facility code, e.g. STWRTGA")] = None,
    partner: Annotated[str | None, Query(description="Referring partner id")] = None,
    case_type: Annotated[CaseType | None, Query()] = None,
    date_from: Annotated[date | None, Query(description="Referred on or after (UTC day)")] = None,
    date_to: Annotated[date | None, Query(description="Referred on or before (UTC day)")] = None,
) -> Filters:
    try:
        return Filters(
            facility=facility or None,
            partner=partner or None,
            case_type=case_type,
            date_from=date_from,
            date_to=date_to,
        )
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ProblemError(422, "Invalid filter", detail) from exc


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    return "" if value is None else value


def to_csv(row_model: type[Row], rows: Sequence[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    fields = list(row_model.model_fields)
    writer.writerow(fields)
    for row in rows:
        dumped = row.model_dump(mode="json")
        writer.writerow([_cell(dumped[f]) for f in fields])
    return out.getvalue()


Endpoint = Callable[..., Coroutine[Any, Any, Any]]


def _endpoints(reporting: Reporting, figure: FigureDef, view: View) -> tuple[Endpoint, Endpoint]:
    async def compute(filters: Filters, by: Dimension | None) -> FigureResponse[Any]:
        try:
            return await reporting.one(figure, by, view, filters)
        except ValueError as exc:
            raise ProblemError(422, "Invalid breakdown", str(exc)) from exc

    def csv_response(response: FigureResponse[Any]) -> Response:
        suffix = f"-{response.by.value}" if response.by else ""
        filename = f"lastline-{view.value}-{figure.name}{suffix}.csv"
        return Response(
            to_csv(figure.row, response.rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    if figure.dimensions:
        by_param = Annotated[
            Dimension | None,
            Query(description="Breakdown: " + ", ".join(d.value for d in figure.dimensions)),
        ]

        async def as_json(
            filters: Annotated[Filters, Depends(query_filters)], by: by_param = None
        ) -> FigureResponse[Any]:
            return await compute(filters, by)

        async def as_csv(
            filters: Annotated[Filters, Depends(query_filters)], by: by_param = None
        ) -> Response:
            return csv_response(await compute(filters, by))

        return as_json, as_csv

    async def plain_json(filters: Annotated[Filters, Depends(query_filters)]) -> FigureResponse[Any]:
        return await compute(filters, None)

    async def plain_csv(filters: Annotated[Filters, Depends(query_filters)]) -> Response:
        return csv_response(await compute(filters, None))

    return plain_json, plain_csv


def build_router(reporting: Reporting) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    staff = [Depends(require_role("staff"))]
    for view in View:
        for figure in FIGURES:
            if not allowed(figure, view):
                continue
            as_json, as_csv = _endpoints(reporting, figure, view)
            common: dict[str, Any] = {
                "methods": ["GET"],
                "dependencies": staff if view is View.STAFF else [],
                "tags": [f"{view.value} figures"],
                "description": figure.description,
            }
            problems: dict[int | str, dict[str, Any]] = {422: {"description": "Invalid filter or breakdown"}}
            if view is View.STAFF:
                problems |= {401: {"description": "No valid staff token"}, 403: {"description": "Not staff"}}
            router.add_api_route(
                f"/{view.value}/{figure.name}",
                as_json,
                response_model=FigureResponse[figure.row],  # type: ignore[name-defined]
                summary=figure.title,
                name=f"{view.value}:{figure.name}",
                responses=problems,
                **common,
            )
            router.add_api_route(
                f"/{view.value}/{figure.name}.csv",
                as_csv,
                response_class=Response,
                summary=f"{figure.title} (CSV)",
                name=f"{view.value}:{figure.name}:csv",
                responses={200: {"content": {"text/csv": {}}, "description": "The rows as CSV"}, **problems},
                **common,
            )
    return router
