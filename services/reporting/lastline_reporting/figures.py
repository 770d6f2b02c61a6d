# ruff: noqa: S608  (SQL text names only tables from readmodel; every value is a bound parameter)
"""Every figure, as SQL over one generation of the read models; complete (staff) values.

A case "has counsel" while a match in a counsel role (attorney, accredited representative) is made
and not ended; "placed" means counsel was placed at least once; weeks start on Monday (UTC).
The public view is derived from these rows by ``disclosure``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from lastline_reporting import readmodel as rm
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
    SummaryRow,
    TimeToMatchRow,
    TrendRow,
    VolunteerRow,
)
from lastline_reporting.projections import COUNSEL_ROLES

Db = AsyncSession | AsyncConnection

_COUNSEL = ", ".join(f"'{role.value}'" for role in sorted(COUNSEL_ROLES))
_HOURS = "EXTRACT(EPOCH FROM ({a} - {b})) / 3600.0"

CASE_DIMENSIONS = (
    Dimension.FACILITY,
    Dimension.COURT,
    Dimension.PARTNER,
    Dimension.CASE_TYPE,
    Dimension.LANGUAGE,
    Dimension.WEEK,
)
VOLUNTEER_DIMENSIONS = (Dimension.ROLE, Dimension.LANGUAGE, Dimension.EXPERIENCE, Dimension.PARTNER)

# How each case dimension reads a key from the filtered cases ``c`` (partners: one row per partner).
_CASE_KEYS: dict[Dimension, tuple[str, str]] = {
    Dimension.ALL: ("'all'", ""),
    Dimension.FACILITY: ("c.facility_code", ""),
    Dimension.COURT: ("c.court_code", ""),
    Dimension.CASE_TYPE: ("c.case_type", ""),
    Dimension.LANGUAGE: ("c.language", ""),
    Dimension.PARTNER: ("k.partner", "CROSS JOIN LATERAL unnest(c.partners) AS k(partner)"),
    Dimension.WEEK: ("to_char(date_trunc('week', c.opened_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')", ""),
}
_VOLUNTEER_KEYS: dict[Dimension, tuple[str, str]] = {
    Dimension.ROLE: ("k.role", "CROSS JOIN LATERAL unnest(v.roles) AS k(role)"),
    Dimension.LANGUAGE: ("k.language", "CROSS JOIN LATERAL unnest(v.languages) AS k(language)"),
    Dimension.EXPERIENCE: ("v.experience", ""),
    Dimension.PARTNER: ("COALESCE(v.partner_id, 'unknown')", ""),
}


def _ratio(part: int | None, whole: int | None) -> float | None:
    if part is None or not whole:
        return None
    return round(part / whole, 4)


def _hours(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


def _day_start(param: str) -> str:
    return f"(CAST(:{param} AS date) AT TIME ZONE 'UTC')"


class Figures:
    """The figures of one generation, narrowed by ``filters``."""

    def __init__(self, db: Db, schema: str, generation: int | None, filters: Filters, labels: Labels) -> None:
        self.db = db
        self.generation = generation
        self.filters = filters
        self.labels = labels
        self._t = {spec.name: spec.qualified(schema, generation or 0) for spec in rm.TABLES}

    # -- plumbing ------------------------------------------------------------------------------

    def _params(self) -> dict[str, Any]:
        f = self.filters
        params: dict[str, Any] = {
            "facility": f.facility,
            "partner": f.partner,
            "case_type": f.case_type.value if f.case_type else None,
            "date_from": f.date_from,
            "date_to": f.date_to + timedelta(days=1) if f.date_to else None,
        }
        return {k: v for k, v in params.items() if v is not None}

    def _date_range(self, column: str) -> list[str]:
        conditions = []
        if self.filters.date_from:
            conditions.append(f"{column} >= {_day_start('date_from')}")
        if self.filters.date_to:
            conditions.append(f"{column} < {_day_start('date_to')}")
        return conditions

    def _cases_cte(self) -> str:
        """``c``: the filtered cases, with whether each is open and has counsel now."""
        f = self.filters
        where = ["c.opened_at IS NOT NULL", *self._date_range("c.opened_at")]
        if f.facility:
            where.append("c.facility_code = :facility")
        if f.partner:
            where.append(":partner = ANY(c.partners)")
        if f.case_type:
            where.append("c.case_type = :case_type")
        return f"""
            c AS (
                SELECT c.*, c.closed_at IS NULL AS is_open,
                    EXISTS (
                        SELECT 1 FROM {self._t["matches"]} m
                        WHERE m.case_id = c.case_id AND m.role IN ({_COUNSEL})
                            AND m.made_at IS NOT NULL AND m.ended_at IS NULL
                    ) AS has_counsel
                FROM {self._t["cases"]} c
                WHERE {" AND ".join(where)}
            )"""

    async def _rows(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Any]:
        if self.generation is None:
            return []
        result = await self.db.execute(text(sql), {**self._params(), **(params or {})})
        return result.mappings().all()

    async def _one(self, sql: str) -> Any:
        rows = await self._rows(sql)
        return rows[0] if rows else None

    async def options(self) -> tuple[list[str], list[str]]:
        cases = self._t["cases"]
        facilities = await self._rows(
            f"SELECT DISTINCT facility_code AS v FROM {cases} WHERE facility_code IS NOT NULL ORDER BY 1"
        )
        partners = await self._rows(f"SELECT DISTINCT unnest(partners) AS v FROM {cases} ORDER BY 1")
        return [r["v"] for r in facilities], [r["v"] for r in partners]

    # -- figures -------------------------------------------------------------------------------

    async def summary(self) -> list[SummaryRow]:
        cases = await self._one(f"""
            WITH {self._cases_cte()}
            SELECT count(*) AS referred,
                count(*) FILTER (WHERE is_open) AS open,
                count(*) FILTER (WHERE is_open AND NOT has_counsel) AS without_counsel,
                count(placed_at) AS placed,
                count(*) FILTER (WHERE NOT is_open) AS closed,
                percentile_cont(0.5) WITHIN GROUP (
                    ORDER BY {_HOURS.format(a="placed_at", b="opened_at")}) AS median_placement
            FROM c""")
        volunteers = await self._one(
            f"SELECT count(*) AS n FROM {self._t['volunteers']} "
            "WHERE status = 'active' AND profile_at IS NOT NULL"
        )
        paused = await self._one(f"SELECT count(*) AS n FROM {self._t['facilities']} WHERE status = 'paused'")
        if cases is None:
            return [SummaryRow(**dict.fromkeys(SummaryRow.model_fields, 0) | _no_share())]
        return [
            SummaryRow(
                referred=cases["referred"],
                open=cases["open"],
                without_counsel=cases["without_counsel"],
                without_counsel_share=_ratio(cases["without_counsel"], cases["open"]),
                placed=cases["placed"],
                closed=cases["closed"],
                median_hours_to_placement=_hours(cases["median_placement"]),
                active_volunteers=volunteers["n"],
                paused_facilities=paused["n"],
            )
        ]

    async def cases(self, by: Dimension) -> list[CaseCountRow]:
        if by is Dimension.WEEK:
            return await self._cases_by_week()
        key, join = _CASE_KEYS[by]
        rows = await self._rows(f"""
            WITH {self._cases_cte()}
            SELECT {key} AS key, count(*) AS referred, count(c.placed_at) AS placed,
                count(*) FILTER (WHERE is_open) AS open,
                count(*) FILTER (WHERE is_open AND NOT has_counsel) AS unplaced
            FROM c {join}
            GROUP BY 1 ORDER BY unplaced DESC, referred DESC, key""")
        return [self._case_row(by, r) for r in rows]

    async def _cases_by_week(self) -> list[CaseCountRow]:
        week = "to_char(date_trunc('week', {t} AT TIME ZONE 'UTC'), 'YYYY-MM-DD')"
        rows = await self._rows(f"""
            WITH {self._cases_cte()}
            SELECT key, sum(referred) AS referred, sum(placed) AS placed, sum(open) AS open,
                sum(unplaced) AS unplaced
            FROM (
                SELECT {week.format(t="opened_at")} AS key, 1 AS referred, 0 AS placed,
                    is_open::int AS open, (is_open AND NOT has_counsel)::int AS unplaced
                FROM c
                UNION ALL
                SELECT {week.format(t="placed_at")}, 0, 1, 0, 0 FROM c WHERE placed_at IS NOT NULL
            ) AS w
            GROUP BY key ORDER BY key""")
        return [self._case_row(Dimension.WEEK, r) for r in rows]

    def _case_row(self, by: Dimension, r: Any) -> CaseCountRow:
        key = str(r["key"]) if r["key"] is not None else "unknown"
        return CaseCountRow(
            key=key,
            label=self.labels.label(by.value, key),
            referred=int(r["referred"]),
            placed=int(r["placed"]),
            open=int(r["open"]),
            unplaced=int(r["unplaced"]),
            unplaced_share=_ratio(int(r["unplaced"]), int(r["open"])),
        )

    async def unrepresented_trend(self) -> list[TrendRow]:
        """Open cases and those without counsel at the end of each week, from +1/-1 steps."""
        rows = await self._rows(f"""
            WITH {self._cases_cte()},
            r AS (
                SELECT m.case_id, min(m.made_at) AS rep_from,
                    CASE WHEN bool_or(m.ended_at IS NULL) THEN NULL ELSE max(m.ended_at) END AS rep_to
                FROM {self._t["matches"]} m JOIN c ON c.case_id = m.case_id
                WHERE m.role IN ({_COUNSEL}) AND m.made_at IS NOT NULL
                GROUP BY m.case_id
            ),
            iv AS (
                SELECT GREATEST(r.rep_from, c.opened_at) AS s,
                    LEAST(COALESCE(r.rep_to, 'infinity'), COALESCE(c.closed_at, 'infinity')) AS e
                FROM r JOIN c ON c.case_id = r.case_id
            ),
            d AS (
                SELECT opened_at AS t, 1 AS open_d, 0 AS rep_d FROM c
                UNION ALL SELECT closed_at, -1, 0 FROM c WHERE closed_at IS NOT NULL
                UNION ALL SELECT s, 0, 1 FROM iv WHERE s < e
                UNION ALL SELECT e, 0, -1 FROM iv WHERE s < e AND e < 'infinity'
            ),
            w AS (
                SELECT date_trunc('week', t AT TIME ZONE 'UTC')::date AS wk,
                    sum(open_d) AS o, sum(rep_d) AS rp
                FROM d GROUP BY 1
            ),
            weeks AS (
                SELECT generate_series(min(wk), max(wk), interval '1 week')::date AS wk FROM w
            )
            SELECT weeks.wk AS week,
                sum(COALESCE(w.o, 0)) OVER (ORDER BY weeks.wk) AS open,
                sum(COALESCE(w.rp, 0)) OVER (ORDER BY weeks.wk) AS represented
            FROM weeks LEFT JOIN w ON w.wk = weeks.wk
            ORDER BY weeks.wk""")
        out = []
        for r in rows:
            open_, without = int(r["open"]), int(r["open"]) - int(r["represented"])
            out.append(
                TrendRow(
                    week=r["week"],
                    open=open_,
                    without_counsel=without,
                    without_counsel_share=_ratio(without, open_),
                )
            )
        return out

    async def time_to_match(self, by: Dimension) -> list[TimeToMatchRow]:
        key, join = _CASE_KEYS[by]
        to_proposal = _HOURS.format(a="c.first_proposed_at", b="c.opened_at")
        to_placement = _HOURS.format(a="c.placed_at", b="c.opened_at")
        rows = await self._rows(f"""
            WITH {self._cases_cte()}
            SELECT {key} AS key, count(*) AS cases,
                count(c.first_proposed_at) AS proposed,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY {to_proposal}) AS p50_proposal,
                percentile_cont(0.9) WITHIN GROUP (ORDER BY {to_proposal}) AS p90_proposal,
                count(c.placed_at) AS placed,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY {to_placement}) AS p50_placement,
                percentile_cont(0.9) WITHIN GROUP (ORDER BY {to_placement}) AS p90_placement
            FROM c {join}
            GROUP BY 1 ORDER BY key""")
        return [
            TimeToMatchRow(
                key=str(r["key"]),
                label=self.labels.label(by.value, str(r["key"])) if by is not Dimension.ALL else "All cases",
                cases=r["cases"],
                proposed=r["proposed"],
                median_hours_to_proposal=_hours(r["p50_proposal"]),
                p90_hours_to_proposal=_hours(r["p90_proposal"]),
                placed=r["placed"],
                median_hours_to_placement=_hours(r["p50_placement"]),
                p90_hours_to_placement=_hours(r["p90_placement"]),
            )
            for r in rows
        ]

    async def proposals(self) -> list[ProposalRow]:
        rows = await self._rows(f"""
            WITH {self._cases_cte()},
            p AS (
                SELECT CASE WHEN p.accepted_at IS NOT NULL THEN 'accepted'
                            WHEN p.declined_at IS NOT NULL THEN 'declined'
                            WHEN p.expired_at IS NOT NULL THEN 'expired'
                            WHEN p.retracted_at IS NOT NULL THEN 'retracted'
                            ELSE 'open' END AS outcome,
                    p.decline_reason, p.retraction_reason
                FROM {self._t["proposals"]} p JOIN c ON c.case_id = p.case_id
            )
            SELECT outcome,
                CASE outcome WHEN 'declined' THEN decline_reason WHEN 'retracted' THEN retraction_reason END
                    AS reason,
                count(*) AS proposals
            FROM p GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2""")
        return [ProposalRow(**r) for r in rows]

    async def escalations(self) -> list[EscalationRow]:
        rows = await self._rows(f"""
            WITH {self._cases_cte()}
            SELECT e.level, k.cause, count(DISTINCT e.event_id) AS escalations,
                count(DISTINCT e.case_id) AS cases
            FROM {self._t["escalations"]} e JOIN c ON c.case_id = e.case_id
            CROSS JOIN LATERAL unnest(
                CASE WHEN cardinality(e.causes) = 0 THEN ARRAY['unknown'] ELSE e.causes END
            ) AS k(cause)
            GROUP BY GROUPING SETS ((e.level), (e.level, k.cause))
            ORDER BY e.level DESC, k.cause NULLS FIRST""")
        return [EscalationRow(**r) for r in rows]

    async def volunteers(self, by: Dimension) -> list[VolunteerRow]:
        key, join = _VOLUNTEER_KEYS[by]
        where = ["v.profile_at IS NOT NULL", *self._date_range("v.registered_at")]
        if self.filters.partner:
            where.append("v.partner_id = :partner")
        matches, pairs = self._t["matches"], self._t["mentor_pairs"]
        rows = await self._rows(f"""
            WITH load AS (
                SELECT volunteer_id, count(*) AS active_cases FROM {matches}
                WHERE made_at IS NOT NULL AND ended_at IS NULL GROUP BY 1
            ),
            mentoring AS (
                SELECT p.mentor_id AS volunteer_id, count(*) AS mentees
                FROM {pairs} p JOIN {matches} m ON m.match_id = p.match_id
                WHERE m.made_at IS NOT NULL AND m.ended_at IS NULL GROUP BY 1
            ),
            v AS (
                SELECT v.*, COALESCE(load.active_cases, 0) AS active_cases,
                    COALESCE(mentoring.mentees, 0) AS mentees
                FROM {self._t["volunteers"]} v
                LEFT JOIN load ON load.volunteer_id = v.volunteer_id
                LEFT JOIN mentoring ON mentoring.volunteer_id = v.volunteer_id
                WHERE {" AND ".join(where)}
            )
            SELECT {key} AS key, count(*) AS registered,
                count(*) FILTER (WHERE status = 'active') AS active,
                count(*) FILTER (WHERE status = 'active' AND active_cases >= max_active_cases) AS at_capacity,
                count(*) FILTER (WHERE status = 'active' AND mentees > 0) AS mentoring,
                count(*) FILTER (WHERE status = 'withdrawn') AS withdrawn
            FROM v {join}
            GROUP BY 1 ORDER BY registered DESC, key""")
        return [
            VolunteerRow(
                key=r["key"],
                label=self.labels.label(by.value, r["key"]),
                **{k: r[k] for k in ("registered", "active", "at_capacity", "mentoring", "withdrawn")},
            )
            for r in rows
        ]

    def _pairs_sql(self) -> str:
        return f"""
            WITH {self._cases_cte()}
            SELECT p.mentor_id, p.mentee_id, p.case_id, p.assigned_at,
                (m.made_at IS NOT NULL AND m.ended_at IS NULL) AS active
            FROM {self._t["mentor_pairs"]} p
            JOIN c ON c.case_id = p.case_id
            LEFT JOIN {self._t["matches"]} m ON m.match_id = p.match_id
            WHERE p.mentor_id IS NOT NULL"""

    async def mentors(self) -> list[MentorSummaryRow]:
        row = await self._one(f"""
            SELECT count(*) AS pairs, count(*) FILTER (WHERE active) AS active_pairs,
                count(DISTINCT mentor_id) FILTER (WHERE active) AS mentors,
                count(DISTINCT mentee_id) FILTER (WHERE active) AS mentees
            FROM ({self._pairs_sql()}) AS pairs""")
        if row is None:
            return [MentorSummaryRow(pairs=0, active_pairs=0, mentors=0, mentees=0)]
        return [MentorSummaryRow(**row)]

    async def mentor_pairs(self) -> list[MentorPairRow]:
        rows = await self._rows(f"{self._pairs_sql()} ORDER BY p.assigned_at DESC, p.mentor_id")
        return [MentorPairRow(**r) for r in rows]

    async def outcomes(self) -> list[OutcomeRow]:
        rows = await self._rows(f"""
            WITH {self._cases_cte()}
            SELECT outcome, count(*) AS closed,
                count(*) FILTER (WHERE placed_at IS NOT NULL AND placed_at <= closed_at) AS with_counsel
            FROM c WHERE closed_at IS NOT NULL
            GROUP BY 1 ORDER BY closed DESC, outcome""")
        return [
            OutcomeRow(
                outcome=r["outcome"],
                label=self.labels.label("outcome", r["outcome"]),
                closed=r["closed"],
                with_counsel=r["with_counsel"],
                without_counsel=r["closed"] - r["with_counsel"],
            )
            for r in rows
        ]

    async def notifications(self) -> list[NotificationRow]:
        where = ["channel IS NOT NULL", *self._date_range("first_at")]
        given_up = "failed_at IS NOT NULL AND NOT will_retry"
        rows = await self._rows(f"""
            SELECT channel, template, count(*) AS total, count(sent_at) AS sent,
                count(*) FILTER (WHERE sent_at IS NULL AND {given_up}) AS failed,
                count(*) FILTER (WHERE sent_at IS NULL AND NOT ({given_up})) AS pending
            FROM {self._t["notifications"]} WHERE {" AND ".join(where)}
            GROUP BY 1, 2 ORDER BY 1, 2""")
        return [NotificationRow(**r, delivery_rate=_ratio(r["sent"], r["sent"] + r["failed"])) for r in rows]

    async def rejections(self) -> list[RejectionRow]:
        where = ["TRUE", *self._date_range("rejected_at")]
        if self.filters.partner:
            where.append("r.partner_id = :partner")
        rows = await self._rows(f"""
            SELECT r.partner_id, k.code, count(DISTINCT r.submission_id) AS submissions
            FROM {self._t["rejections"]} r CROSS JOIN LATERAL unnest(r.codes) AS k(code)
            WHERE {" AND ".join(where)}
            GROUP BY GROUPING SETS ((r.partner_id), (r.partner_id, k.code))
            ORDER BY r.partner_id, k.code NULLS FIRST""")
        return [RejectionRow(**r) for r in rows]

    async def facilities(self) -> list[FacilityRow]:
        """Per facility with cases (and every paused one), most cases without counsel first."""
        paused_too = "" if not self.filters.is_empty() else "OR f.status = 'paused'"
        rows = await self._rows(f"""
            WITH {self._cases_cte()},
            per AS (
                SELECT facility_code, count(*) AS referred,
                    count(*) FILTER (WHERE is_open) AS open,
                    count(*) FILTER (WHERE is_open AND NOT has_counsel) AS without_counsel,
                    count(placed_at) AS placed,
                    percentile_cont(0.5) WITHIN GROUP (
                        ORDER BY {_HOURS.format(a="placed_at", b="opened_at")}) AS median_placement
                FROM c GROUP BY 1
            )
            SELECT COALESCE(per.facility_code, f.facility_code) AS facility_code,
                COALESCE(per.referred, 0) AS referred, COALESCE(per.open, 0) AS open,
                COALESCE(per.without_counsel, 0) AS without_counsel, COALESCE(per.placed, 0) AS placed,
                per.median_placement,
                COALESCE(f.status, 'open') AS status, f.reason, f.note
            FROM per FULL JOIN {self._t["facilities"]} f ON f.facility_code = per.facility_code
            WHERE per.facility_code IS NOT NULL {paused_too}
            ORDER BY without_counsel DESC, referred DESC, 1""")
        out = []
        for r in rows:
            place = self.labels.facility(r["facility_code"])
            out.append(
                FacilityRow(
                    facility_code=r["facility_code"],
                    name=place.name,
                    city=place.city,
                    state=place.state,
                    referred=r["referred"],
                    open=r["open"],
                    without_counsel=r["without_counsel"],
                    without_counsel_share=_ratio(r["without_counsel"], r["open"]),
                    placed=r["placed"],
                    median_hours_to_placement=_hours(r["median_placement"]),
                    status=r["status"],
                    pause_reason=r["reason"] if r["status"] == "paused" else None,
                    note=r["note"] if r["status"] == "paused" else None,
                )
            )
        return out


def _no_share() -> dict[str, Any]:
    return {"without_counsel_share": None, "median_hours_to_placement": None}
