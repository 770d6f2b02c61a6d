"""The dashboard page: server-rendered (Jinja2, autoescaped), refreshed live over server-sent events.

``/dashboard`` is the public view; ``/dashboard/staff`` the staff view, for a browser that signed in
with a staff token (kept in an HttpOnly, SameSite=Strict cookie limited to ``/dashboard``). The page
listens on ``/dashboard/stream`` and, when figures changed, fetches its content again with its own
filters. Every value is rendered as text: Jinja2 escapes it, and the Content-Security-Policy allows
no inline script, so a name that contains markup shows as that markup and never runs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from importlib import resources
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sse_starlette import EventSourceResponse

from lastline_reporting import charts
from lastline_reporting.labels import humanize
from lastline_reporting.live import LiveUpdates
from lastline_reporting.models import Dimension, Filters, View
from lastline_reporting.registry import BY_NAME, FigureResponse, Reporting
from lastline_shared.auth import AuthError, Principal, get_token_verifier
from lastline_shared.contracts.enums import CaseType
from lastline_shared.ops import ProblemError

COOKIE = "lastline_staff"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}

# What the page shows, computed in one snapshot: (figure, breakdown).
PAGE: tuple[tuple[str, Dimension | None], ...] = (
    ("summary", None),
    ("cases", Dimension.WEEK),
    ("unrepresented-trend", None),
    ("facilities", None),
    ("time-to-match", Dimension.ALL),
    ("time-to-match", Dimension.CASE_TYPE),
    ("proposals", None),
    ("escalations", None),
    ("outcomes", None),
    ("volunteers", Dimension.ROLE),
    ("mentors", None),
)
STAFF_ONLY: tuple[tuple[str, Dimension | None], ...] = (("notifications", None), ("rejections", None))


def _count(value: int | None) -> str:
    return "<5" if value is None else f"{value:,}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _duration(hours: float | None) -> str:
    if hours is None:
        return "-"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def _sortable(value: float | None) -> str:
    """A cell's value for sorting on the page: a suppressed or missing one sorts first."""
    return "" if value is None else repr(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lastline_reporting", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(count=_count, pct=_pct, duration=_duration, humanize=humanize, sortable=_sortable)
    return env


class Dashboard:
    def __init__(self, reporting: Reporting, live: LiveUpdates) -> None:
        self.reporting = reporting
        self.live = live
        self.env = _environment()

    async def context(self, view: View, filters: Filters) -> dict[str, Any]:
        wanted = PAGE + (STAFF_ONLY if view is View.STAFF else ())
        responses = await self.reporting.compute([(BY_NAME[n], by) for n, by in wanted], view, filters)
        figures: dict[str, FigureResponse[Any]] = {}
        for (name, by), response in zip(wanted, responses, strict=True):
            figures[f"{name}:{by.value}" if by else name] = response
        levels = sorted({r.level for r in figures["escalations"].rows}, reverse=True)
        causes: dict[str | None, dict[int, int | None]] = {}
        for r in figures["escalations"].rows:
            causes.setdefault(r.cause, {})[r.level] = r.escalations
        weeks = figures["cases:week"].rows
        trend = figures["unrepresented-trend"].rows
        return {
            "view": view.value,
            "figures": figures,
            "summary": figures["summary"].rows[0],
            "weekly_chart": charts.grouped_bars(
                [w.key for w in weeks],
                [[w.referred for w in weeks], [w.placed for w in weeks]],
                ["referred", "placed"],
            ),
            "trend_chart": charts.share_line(
                [str(t.week) for t in trend], [t.without_counsel_share for t in trend]
            ),
            "escalation_levels": levels,
            "escalation_causes": causes,
            "generation": figures["summary"].generation,
            "generated_at": figures["summary"].generated_at,
        }

    async def options(self) -> dict[str, Any]:
        facilities, partners = await self.reporting.options()
        return {
            "facility_options": [(code, self.reporting.labels.facility(code).name) for code in facilities],
            "partner_options": partners,
            "case_types": [(t.value, humanize(t.value)) for t in CaseType],
        }

    def render(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)


def form_filters(
    facility: str = "", partner: str = "", case_type: str = "", date_from: str = "", date_to: str = ""
) -> Filters:
    """The filter form's fields (an unset field arrives empty); invalid values answer 422."""
    values = {
        "facility": facility,
        "partner": partner,
        "case_type": case_type,
        "date_from": date_from,
        "date_to": date_to,
    }
    try:
        return Filters.model_validate({k: v.strip() for k, v in values.items() if v.strip()})
    except ValidationError as exc:
        raise ProblemError(422, "Invalid filter", "; ".join(e["msg"] for e in exc.errors())) from exc


FormFilters = Annotated[Filters, Depends(form_filters)]


def _filters_query(filters: Filters) -> str:
    return urlencode({k: v for k, v in filters.model_dump(mode="json").items() if v is not None})


async def _staff(request: Request) -> Principal | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        principal = await get_token_verifier(request).verify_async(token)
    except AuthError:
        return None
    return principal if principal.has_role("staff") else None


def _html(body: str, status: int = 200, *, private: bool = False) -> HTMLResponse:
    headers = dict(SECURITY_HEADERS)
    headers["Cache-Control"] = "private, no-store" if private else "no-cache"
    return HTMLResponse(body, status_code=status, headers=headers)


def build_router(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def page(view: View, filters: Filters, principal: Principal | None) -> HTMLResponse:
        context = await dashboard.context(view, filters)
        context |= await dashboard.options()
        context |= {
            "filters": filters,
            "query": _filters_query(filters),
            "principal": principal.subject if principal else None,
            "today": date.today().isoformat(),
        }
        return _html(dashboard.render("dashboard.html", **context), private=view is View.STAFF)

    @router.get("/")
    async def root() -> RedirectResponse:
        return RedirectResponse("/dashboard", status_code=307)

    @router.get("/dashboard")
    async def public_page(filters: FormFilters) -> HTMLResponse:
        return await page(View.PUBLIC, filters, None)

    @router.get("/dashboard/staff")
    async def staff_page(request: Request, filters: FormFilters) -> HTMLResponse:
        principal = await _staff(request)
        if principal is None:
            return _html(dashboard.render("login.html", error=None), 401, private=True)
        return await page(View.STAFF, filters, principal)

    @router.post("/dashboard/login")
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        try:
            principal = await get_token_verifier(request).verify_async(token)
        except AuthError:
            principal = None
        if principal is None or not principal.has_role("staff"):
            error = "That token is not a valid staff token."
            return _html(dashboard.render("login.html", error=error), 401, private=True)
        expires = principal.claims.get("exp")
        max_age = int(expires - datetime.now(UTC).timestamp()) if isinstance(expires, int | float) else 3600
        response = RedirectResponse("/dashboard/staff", status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            max_age=max(0, max_age),
            path="/dashboard",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/dashboard/logout")
    async def logout() -> Response:
        response = RedirectResponse("/dashboard", status_code=303)
        response.delete_cookie(COOKIE, path="/dashboard")
        return response

    @router.get("/dashboard/content")
    async def content(request: Request, filters: FormFilters, view: View = View.PUBLIC) -> HTMLResponse:
        """The page's main content alone, fetched again when the figures changed."""
        if view is View.STAFF and await _staff(request) is None:
            return _html("", 401, private=True)
        context = await dashboard.context(view, filters)
        return _html(dashboard.render("_content.html", **context), private=view is View.STAFF)

    @router.get("/dashboard/stream")
    async def stream() -> EventSourceResponse:
        """Server-sent events: ``projected`` whenever a batch of events changed the figures."""
        return EventSourceResponse(dashboard.live.stream(), ping=15, headers={"Cache-Control": "no-store"})

    @router.get("/dashboard/static/{name}")
    async def static(name: str) -> Response:
        media_type = STATIC.get(name)
        if media_type is None:
            return Response(status_code=404)
        body = resources.files("lastline_reporting").joinpath("static", name).read_bytes()
        headers = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}
        return Response(body, media_type=media_type, headers=headers)

    return router
