"""The read models: one row per case, proposal, match, volunteer, ..., merged from facts.

Every event contributes a *partial row* (the columns it knows). Partial rows of the same key merge
by per-column rules that are commutative, associative and idempotent: the earliest or the latest
value by ``(time, event id)``, the first non-null value, the least or greatest value. Hence a
redelivered event changes nothing, the interleaving of topics does not matter, and a rebuild from
the topics yields exactly the rows the live projection built. No rule adds (a counter would count a
duplicate twice): figures count rows at query time.

The same rules run in Python (:func:`merge`, folding a batch per key, since one ``INSERT ... ON
CONFLICT`` may touch a row once) and in SQL (:meth:`TableSpec.upsert_sql`, merging with the stored
row). Each table is written with one statement per batch: the rows travel as one JSON parameter
expanded by ``json_to_recordset``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]


@dataclass(frozen=True)
class Keep:
    """Facts that never change once known (a proposal's case): the first non-null value."""

    columns: tuple[str, ...]


@dataclass(frozen=True)
class Least:
    column: str


@dataclass(frozen=True)
class Greatest:
    column: str


@dataclass(frozen=True)
class Earliest:
    """A group of columns taken together from the fact with the smallest ``(at, event)``."""

    at: str
    event: str
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Latest:
    """A group of columns taken together from the fact with the greatest ``(at, event)``."""

    at: str
    event: str
    columns: tuple[str, ...] = ()


Rule = Keep | Least | Greatest | Earliest | Latest


@dataclass(frozen=True)
class _MergePlan:
    keep: tuple[str, ...]
    least: tuple[str, ...]
    greatest: tuple[str, ...]
    earliest: tuple[tuple[str, str, tuple[str, ...]], ...]
    latest: tuple[tuple[str, str, tuple[str, ...]], ...]

    @classmethod
    def of(cls, rules: tuple[Rule, ...]) -> _MergePlan:
        return cls(
            keep=tuple(c for r in rules if isinstance(r, Keep) for c in r.columns),
            least=tuple(r.column for r in rules if isinstance(r, Least)),
            greatest=tuple(r.column for r in rules if isinstance(r, Greatest)),
            earliest=tuple(
                (r.at, r.event, tuple(_rule_columns(r))) for r in rules if isinstance(r, Earliest)
            ),
            latest=tuple((r.at, r.event, tuple(_rule_columns(r))) for r in rules if isinstance(r, Latest)),
        )


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: str
    columns: Mapping[str, str]
    """Column name -> PostgreSQL type, key first."""
    rules: tuple[Rule, ...]
    indexes: tuple[tuple[str, ...], ...] = ()
    plan: _MergePlan = field(init=False, repr=False, compare=False)
    """The rules grouped by kind, for :func:`merge` (which runs for most events of a replay)."""

    def __post_init__(self) -> None:
        covered = [self.key]
        for rule in self.rules:
            covered += _rule_columns(rule)
        if sorted(covered) != sorted(self.columns) or len(set(covered)) != len(covered):
            raise ValueError(f"{self.name}: rules must cover every column exactly once")
        object.__setattr__(self, "plan", _MergePlan.of(self.rules))

    def qualified(self, schema: str, generation: int) -> str:
        return f'"{schema}"."g{generation}_{self.name}"'

    def ddl(self, schema: str, generation: int, *, unlogged: bool = False) -> list[str]:
        """The table (``UNLOGGED`` while a rebuild loads it) and then its indexes."""
        table = self.qualified(schema, generation)
        columns = ",\n    ".join(f"{name} {pg_type}" for name, pg_type in self.columns.items())
        kind = "UNLOGGED TABLE" if unlogged else "TABLE"
        create = f"CREATE {kind} {table} (\n    {columns},\n    PRIMARY KEY ({self.key})\n)"
        return [create, *self.index_ddl(schema, generation)]

    def index_ddl(self, schema: str, generation: int) -> list[str]:
        table = self.qualified(schema, generation)
        statements = []
        for cols in self.indexes:
            index = f"g{generation}_{self.name}_{'_'.join(cols)}"
            statements.append(f'CREATE INDEX IF NOT EXISTS "{index}" ON {table} ({", ".join(cols)})')
        return statements

    def upsert_sql(self, schema: str, generation: int, source: str | None = None) -> str:
        """``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` with the rules, from ``json_to_recordset(:rows)``
        or from the table ``source`` (a rebuild's staging table, of the same columns)."""
        names = list(self.columns)
        if source is None:
            record = ", ".join(f"{name} {pg_type}" for name, pg_type in self.columns.items())
            source = f"json_to_recordset(CAST(:rows AS json)) AS x({record})"
        sets: list[str] = []
        for rule in self.rules:
            sets += _rule_sql(rule)
        return (
            f"INSERT INTO {self.qualified(schema, generation)} AS t ({', '.join(names)})\n"
            f"SELECT {', '.join(names)} FROM {source}\n"
            f"ON CONFLICT ({self.key}) DO UPDATE SET {', '.join(sets)}"
        )


def _rule_columns(rule: Rule) -> list[str]:
    if isinstance(rule, Keep):
        return list(rule.columns)
    if isinstance(rule, Least | Greatest):
        return [rule.column]
    return [rule.at, rule.event, *rule.columns]


def _rule_sql(rule: Rule) -> list[str]:
    if isinstance(rule, Keep):
        return [f"{c} = COALESCE(t.{c}, EXCLUDED.{c})" for c in rule.columns]
    if isinstance(rule, Least):
        return [f"{rule.column} = LEAST(t.{rule.column}, EXCLUDED.{rule.column})"]
    if isinstance(rule, Greatest):
        return [f"{rule.column} = GREATEST(t.{rule.column}, EXCLUDED.{rule.column})"]
    op = "<" if isinstance(rule, Earliest) else ">"
    wins = (
        f"EXCLUDED.{rule.at} IS NOT NULL AND (t.{rule.at} IS NULL OR "
        f"(EXCLUDED.{rule.at}, EXCLUDED.{rule.event}) {op} (t.{rule.at}, t.{rule.event}))"
    )
    return [f"{c} = CASE WHEN {wins} THEN EXCLUDED.{c} ELSE t.{c} END" for c in _rule_columns(rule)]


def merge(spec: TableSpec, old: Row, new: Row) -> Row:
    """``old`` updated with ``new`` by the table's rules (the same result as the SQL upsert).

    A group (:class:`Earliest`, :class:`Latest`) wins when its time is set and it is older (newer)
    by ``(time, event id)``, or the old one has no time."""
    plan, get, old_get = spec.plan, new.get, old.get
    for c in plan.keep:
        if old_get(c) is None and (b := get(c)) is not None:
            old[c] = b
    for c in plan.least:
        if (b := get(c)) is not None and ((a := old_get(c)) is None or b < a):
            old[c] = b
    for c in plan.greatest:
        if (b := get(c)) is not None and ((a := old_get(c)) is None or b > a):
            old[c] = b
    for at, event, columns in plan.earliest:
        if (b := get(at)) is not None and ((a := old_get(at)) is None or (b, new[event]) < (a, old[event])):
            for c in columns:
                old[c] = get(c)
    for at, event, columns in plan.latest:
        if (b := get(at)) is not None and ((a := old_get(at)) is None or (b, new[event]) > (a, old[event])):
            for c in columns:
                old[c] = get(c)
    return old


# --- the tables ----------------------------------------------------------------------------------

TS = "timestamptz"
EVENT = "uuid"  # CloudEvents ids are UUIDs: compared as bytes in SQL and as integers in Python

CASES = TableSpec(
    name="cases",
    key="case_id",
    columns={
        "case_id": "uuid",
        "opened_at": TS,
        "facts_at": TS,
        "facts_event": EVENT,
        "facility_code": "text",
        "court_code": "text",
        "case_type": "text",
        "language": "text",
        "partners": "text[]",
        "next_hearing_date": "date",
        "closed_at": TS,
        "closed_event": EVENT,
        "outcome": "text",
        "first_proposed_at": TS,
        "placed_at": TS,
    },
    rules=(
        Least("opened_at"),
        Latest(
            "facts_at",
            "facts_event",
            ("facility_code", "court_code", "case_type", "language", "partners", "next_hearing_date"),
        ),
        Latest("closed_at", "closed_event", ("outcome",)),
        Least("first_proposed_at"),
        Least("placed_at"),
    ),
    indexes=(("facility_code",), ("opened_at",)),
)

PROPOSALS = TableSpec(
    name="proposals",
    key="proposal_id",
    columns={
        "proposal_id": "uuid",
        "case_id": "uuid",
        "volunteer_id": "uuid",
        "role": "text",
        "proposed_at": TS,
        "accepted_at": TS,
        "declined_at": TS,
        "declined_event": EVENT,
        "decline_reason": "text",
        "expired_at": TS,
        "retracted_at": TS,
        "retracted_event": EVENT,
        "retraction_reason": "text",
    },
    rules=(
        Keep(("case_id", "volunteer_id", "role")),
        Least("proposed_at"),
        Least("accepted_at"),
        Earliest("declined_at", "declined_event", ("decline_reason",)),
        Least("expired_at"),
        Earliest("retracted_at", "retracted_event", ("retraction_reason",)),
    ),
    indexes=(("case_id",),),
)

MATCHES = TableSpec(
    name="matches",
    key="match_id",
    columns={
        "match_id": "uuid",
        "case_id": "uuid",
        "volunteer_id": "uuid",
        "role": "text",
        "overridden": "boolean",
        "made_at": TS,
        "ended_at": TS,
        "ended_event": EVENT,
        "end_reason": "text",
    },
    rules=(
        Keep(("case_id", "volunteer_id", "role", "overridden")),
        Least("made_at"),
        Earliest("ended_at", "ended_event", ("end_reason",)),
    ),
    indexes=(("case_id",), ("volunteer_id",)),
)

MENTOR_PAIRS = TableSpec(
    name="mentor_pairs",
    key="match_id",
    columns={
        "match_id": "uuid",
        "case_id": "uuid",
        "assigned_at": TS,
        "assigned_event": EVENT,
        "mentor_id": "uuid",
        "mentee_id": "uuid",
    },
    rules=(Keep(("case_id",)), Latest("assigned_at", "assigned_event", ("mentor_id", "mentee_id"))),
    indexes=(("mentor_id",),),
)

ESCALATIONS = TableSpec(
    name="escalations",
    key="event_id",
    columns={
        "event_id": EVENT,
        "case_id": "uuid",
        "escalated_at": TS,
        "level": "integer",
        "facility_code": "text",
        "causes": "text[]",
    },
    rules=(Keep(("case_id", "escalated_at", "level", "facility_code", "causes")),),
    indexes=(("case_id",),),
)

VOLUNTEERS = TableSpec(
    name="volunteers",
    key="volunteer_id",
    columns={
        "volunteer_id": "uuid",
        "registered_at": TS,
        "profile_at": TS,
        "profile_event": EVENT,
        "partner_id": "text",
        "roles": "text[]",
        "languages": "text[]",
        "experience": "text",
        "max_active_cases": "integer",
        "status_at": TS,
        "status_event": EVENT,
        "status": "text",
        "withdrawal_reason": "text",
    },
    rules=(
        Least("registered_at"),
        Latest(
            "profile_at",
            "profile_event",
            ("partner_id", "roles", "languages", "experience", "max_active_cases"),
        ),
        Latest("status_at", "status_event", ("status", "withdrawal_reason")),
    ),
)

NOTIFICATIONS = TableSpec(
    name="notifications",
    key="notification_id",
    columns={
        "notification_id": "uuid",
        "channel": "text",
        "template": "text",
        "recipient_kind": "text",
        "first_at": TS,
        "sent_at": TS,
        "attempts": "integer",
        "failed_at": TS,
        "failed_event": EVENT,
        "failure": "text",
        "will_retry": "boolean",
    },
    rules=(
        Keep(("channel", "template", "recipient_kind")),
        Least("first_at"),
        Least("sent_at"),
        Greatest("attempts"),
        Latest("failed_at", "failed_event", ("failure", "will_retry")),
    ),
)

REJECTIONS = TableSpec(
    name="rejections",
    key="submission_id",
    columns={
        "submission_id": "uuid",
        "partner_id": "text",
        "submission_type": "text",
        "rejected_at": TS,
        "codes": "text[]",
    },
    rules=(Keep(("partner_id", "submission_type", "rejected_at", "codes")),),
)

FACILITIES = TableSpec(
    name="facilities",
    key="facility_code",
    columns={
        "facility_code": "text",
        "status_at": TS,
        "status_event": EVENT,
        "status": "text",
        "reason": "text",
        "note": "text",
    },
    rules=(Latest("status_at", "status_event", ("status", "reason", "note")),),
)

TABLES: tuple[TableSpec, ...] = (
    CASES,
    PROPOSALS,
    MATCHES,
    MENTOR_PAIRS,
    ESCALATIONS,
    VOLUNTEERS,
    NOTIFICATIONS,
    REJECTIONS,
    FACILITIES,
)
BY_NAME: Mapping[str, TableSpec] = {spec.name: spec for spec in TABLES}

MODEL_VERSION = 1
"""Bumped whenever the tables above change: a generation built by other code needs a rebuild."""


def table_names(generation: int) -> Iterable[str]:
    return (f"g{generation}_{spec.name}" for spec in TABLES)
