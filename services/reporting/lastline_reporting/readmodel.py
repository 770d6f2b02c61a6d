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
from dataclasses import dataclass
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
class TableSpec:
    name: str
    key: str
    columns: Mapping[str, str]
    """Column name -> PostgreSQL type, key first."""
    rules: tuple[Rule, ...]
    indexes: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        covered = [self.key]
        for rule in self.rules:
            covered += _rule_columns(rule)
        if sorted(covered) != sorted(self.columns) or len(set(covered)) != len(covered):
            raise ValueError(f"{self.name}: rules must cover every column exactly once")

    def qualified(self, schema: str, generation: int) -> str:
        return f'"{schema}"."g{generation}_{self.name}"'

    def ddl(self, schema: str, generation: int) -> list[str]:
        table = self.qualified(schema, generation)
        columns = ",\n    ".join(f"{name} {pg_type}" for name, pg_type in self.columns.items())
        statements = [f"CREATE TABLE {table} (\n    {columns},\n    PRIMARY KEY ({self.key})\n)"]
        for cols in self.indexes:
            index = f"g{generation}_{self.name}_{'_'.join(cols)}"
            statements.append(f'CREATE INDEX "{index}" ON {table} ({", ".join(cols)})')
        return statements

    def upsert_sql(self, schema: str, generation: int) -> str:
        """``INSERT ... SELECT FROM json_to_recordset(:rows) ON CONFLICT DO UPDATE`` with the rules."""
        names = list(self.columns)
        record = ", ".join(f"{name} {pg_type}" for name, pg_type in self.columns.items())
        sets: list[str] = []
        for rule in self.rules:
            sets += _rule_sql(rule)
        return (
            f"INSERT INTO {self.qualified(schema, generation)} AS t ({', '.join(names)})\n"
            f"SELECT {', '.join(names)} FROM json_to_recordset(CAST(:rows AS json)) AS x({record})\n"
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


def _wins(rule: Earliest | Latest, new: Row, old: Row) -> bool:
    new_at, old_at = new.get(rule.at), old.get(rule.at)
    if new_at is None:
        return False
    if old_at is None:
        return True
    if isinstance(rule, Earliest):
        return bool((new_at, new[rule.event]) < (old_at, old[rule.event]))
    return bool((new_at, new[rule.event]) > (old_at, old[rule.event]))


def merge(spec: TableSpec, old: Row, new: Row) -> Row:
    """``old`` updated with ``new`` by the table's rules (the same result as the SQL upsert)."""
    for rule in spec.rules:
        if isinstance(rule, Keep):
            for c in rule.columns:
                if old.get(c) is None and new.get(c) is not None:
                    old[c] = new[c]
        elif isinstance(rule, Least | Greatest):
            c = rule.column
            a, b = old.get(c), new.get(c)
            if b is not None and (a is None or (b < a if isinstance(rule, Least) else b > a)):
                old[c] = b
        elif _wins(rule, new, old):
            for c in _rule_columns(rule):
                old[c] = new.get(c)
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
