"""The catalogue of figures (what the API, the CSV export and the dashboard offer) and computing them.

Each figure names its rows, the breakdowns it accepts and how the public view discloses it (``None``:
staff only). :class:`Reporting` computes a set of figures in one read-only snapshot of the current
generation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from lastline_reporting.disclosure import THRESHOLD, Disclosure, public_rows
from lastline_reporting.figures import CASE_DIMENSIONS, VOLUNTEER_DIMENSIONS, Figures
from lastline_reporting.generations import Generations
from lastline_reporting.labels import Labels
from lastline_reporting.models import (
    CaseCountRow,
    Dimension,
    EscalationRow,
    FacilityRow,
    Filters,
    MentorPairRow,
    MentorSummaryRow,
    NotificationRow,
    OutcomeRow,
    ProposalRow,
    RejectionRow,
    Row,
    SummaryRow,
    TimeToMatchRow,
    TrendRow,
    View,
    VolunteerRow,
)

RowT = TypeVar("RowT", bound=Row)


@dataclass(frozen=True)
class FigureDef:
    name: str
    title: str
    description: str
    row: type[Row]
    compute: Callable[[Figures, Dimension], Awaitable[Sequence[Row]]]
    dimensions: tuple[Dimension, ...] = ()
    """The breakdowns accepted as ``by``; the first is the default."""
    public: Disclosure | None = None

    def check_by(self, by: Dimension | None) -> Dimension | None:
        if not self.dimensions:
            return None
        chosen = by or self.dimensions[0]
        if chosen not in self.dimensions:
            raise ValueError(f"{self.name} breaks down by {', '.join(d.value for d in self.dimensions)}")
        return chosen


class FigureResponse(BaseModel, Generic[RowT]):
    figure: str
    title: str
    view: View
    by: Dimension | None
    filters: Filters
    generation: int | None = Field(description="The read-model generation the figure was computed from")
    generated_at: datetime
    suppressed_below: int | None = Field(description="Public view: counts from 1 to this minus 1 are null")
    rows: list[RowT]


_CASE_COUNTS = ("referred", "placed", "open", "unplaced")

FIGURES: tuple[FigureDef, ...] = (
    FigureDef(
        "summary",
        "Headline figures",
        "Cases referred, open, open without counsel (and their share), placed and closed; median "
        "time to placement; active volunteers; facilities where placements are paused.",
        SummaryRow,
        lambda f, _by: f.summary(),
        public=Disclosure(
            counts=(
                "referred",
                "open",
                "without_counsel",
                "placed",
                "closed",
                "active_volunteers",
            ),
            shares={"without_counsel_share": ("without_counsel", "open")},
            durations={"median_hours_to_placement": "placed"},
            partition=False,
        ),
    ),
    FigureDef(
        "cases",
        "Cases referred, placed and still unplaced",
        "Per facility, court, referring partner, case type, primary language or week of referral "
        "(for weeks: placed counts the week of placement).",
        CaseCountRow,
        lambda f, by: f.cases(by),
        CASE_DIMENSIONS,
        Disclosure(counts=_CASE_COUNTS, shares={"unplaced_share": ("unplaced", "open")}),
    ),
    FigureDef(
        "unrepresented-trend",
        "Open cases without counsel, week by week",
        "At the end of each week: open cases, those without counsel, and their share.",
        TrendRow,
        lambda f, _by: f.unrepresented_trend(),
        public=Disclosure(
            counts=("open", "without_counsel"),
            shares={"without_counsel_share": ("without_counsel", "open")},
            partition=False,
        ),
    ),
    FigureDef(
        "time-to-match",
        "Time from referral to first proposal and to placement",
        "Median and 90th percentile, in hours, over the cases that got there.",
        TimeToMatchRow,
        lambda f, by: f.time_to_match(by),
        (Dimension.ALL, *CASE_DIMENSIONS),
        Disclosure(
            counts=("cases", "proposed", "placed"),
            durations={
                "median_hours_to_proposal": "proposed",
                "p90_hours_to_proposal": "proposed",
                "median_hours_to_placement": "placed",
                "p90_hours_to_placement": "placed",
            },
        ),
    ),
    FigureDef(
        "proposals",
        "Proposals by outcome and reason",
        "Accepted, declined (with the volunteer's reason), expired, retracted (with matching's "
        "reason) or still open.",
        ProposalRow,
        lambda f, _by: f.proposals(),
        public=Disclosure(counts=("proposals",)),
    ),
    FigureDef(
        "escalations",
        "Escalations by level and cause",
        "Cases still without someone as their hearing nears (14, 7, 3 days); a row without cause "
        "counts every escalation of its level.",
        EscalationRow,
        lambda f, _by: f.escalations(),
        public=Disclosure(counts=("escalations", "cases"), partition=False),
    ),
    FigureDef(
        "volunteers",
        "Volunteer pipeline",
        "Registered, active, at capacity, mentoring and withdrawn volunteers by role, language, "
        "experience or registering partner.",
        VolunteerRow,
        lambda f, by: f.volunteers(by),
        VOLUNTEER_DIMENSIONS,
        Disclosure(counts=("registered", "active", "at_capacity", "mentoring", "withdrawn"), partition=False),
    ),
    FigureDef(
        "mentors",
        "Mentor pairs",
        "Mentor pairs ever made and active now, with the mentors and mentees in them.",
        MentorSummaryRow,
        lambda f, _by: f.mentors(),
        public=Disclosure(counts=("pairs", "active_pairs", "mentors", "mentees"), partition=False),
    ),
    FigureDef(
        "mentor-pairs",
        "Mentor pairs, one by one",
        "Each pair of mentor and mentee (volunteer ids), its case and whether it is active.",
        MentorPairRow,
        lambda f, _by: f.mentor_pairs(),
    ),
    FigureDef(
        "outcomes",
        "Outcomes of closed cases",
        "By outcome, with and without counsel placed before closing.",
        OutcomeRow,
        lambda f, _by: f.outcomes(),
        public=Disclosure(counts=("closed", "with_counsel", "without_counsel")),
    ),
    FigureDef(
        "notifications",
        "Notification delivery",
        "Per channel and template: sent, given up, pending, and the delivery rate.",
        NotificationRow,
        lambda f, _by: f.notifications(),
    ),
    FigureDef(
        "rejections",
        "Rejected submissions",
        "Per partner and reason code; a row without code counts every rejection of the partner.",
        RejectionRow,
        lambda f, _by: f.rejections(),
    ),
    FigureDef(
        "facilities",
        "Facilities",
        "Per facility: cases, open cases without counsel and their share, median time to "
        "placement, and whether placements are paused.",
        FacilityRow,
        lambda f, _by: f.facilities(),
        public=Disclosure(
            counts=("referred", "open", "without_counsel", "placed"),
            shares={"without_counsel_share": ("without_counsel", "open")},
            durations={"median_hours_to_placement": "placed"},
            hidden=("note",),
        ),
    ),
)
BY_NAME = {figure.name: figure for figure in FIGURES}


def allowed(figure: FigureDef, view: View) -> bool:
    return view is View.STAFF or figure.public is not None


class Reporting:
    """Computes figures for a view from the current generation."""

    def __init__(self, engine: AsyncEngine, generations: Generations, labels: Labels | None = None) -> None:
        self.engine = engine
        self.generations = generations
        self.labels = labels or Labels()

    async def compute(
        self, requests: Sequence[tuple[FigureDef, Dimension | None]], view: View, filters: Filters
    ) -> list[FigureResponse[Any]]:
        """Several figures from one consistent snapshot."""
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            async with conn.begin():
                generation = await self.generations.current(conn)
                figures = Figures(conn, self.generations.schema, generation, filters, self.labels)
                now = datetime.now(UTC)
                out: list[FigureResponse[Any]] = []
                for figure, by in requests:
                    if not allowed(figure, view):
                        raise PermissionError(f"{figure.name} is for staff only")
                    dimension = figure.check_by(by)
                    rows = list(await figure.compute(figures, dimension or Dimension.ALL))
                    if view is View.PUBLIC and figure.public is not None:
                        rows = public_rows(rows, figure.public)
                    out.append(
                        FigureResponse[figure.row](  # type: ignore[name-defined]
                            figure=figure.name,
                            title=figure.title,
                            view=view,
                            by=dimension,
                            filters=filters,
                            generation=generation,
                            generated_at=now,
                            suppressed_below=THRESHOLD if view is View.PUBLIC else None,
                            rows=rows,
                        )
                    )
                return out

    async def options(self) -> tuple[list[str], list[str]]:
        """Facility codes and partner ids that cases name, for the dashboard's filters."""
        async with self.engine.connect() as conn:
            generation = await self.generations.current(conn)
            if generation is None:
                return [], []
            figures = Figures(conn, self.generations.schema, generation, Filters(), self.labels)
            return await figures.options()

    async def one(
        self, figure: FigureDef, by: Dimension | None, view: View, filters: Filters
    ) -> FigureResponse[Any]:
        [response] = await self.compute([(figure, by)], view, filters)
        return response
