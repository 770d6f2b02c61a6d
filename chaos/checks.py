"""The invariants, judged once the system has settled: each check says what it compared and how many
records were lost or duplicated."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from chaos.observe import Record, decoded, header
from chaos.traffic import Poison
from lastline_intake.simulate import Traffic
from lastline_reporting.projections import COUNSEL_ROLES
from lastline_shared.contracts.topics import is_dlq

CANONICAL_TOPICS = ("volunteers", "cases")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    lost: int = 0
    duplicated: int = 0


@dataclass
class Events:
    """One topic family's records with a CloudEvents id: distinct events, and copies of one id."""

    by_id: dict[str, Record] = field(default_factory=dict)
    copies: int = 0

    def types(self) -> Counter[str]:
        return Counter(header(r, "ce_type") or "?" for r in self.by_id.values())

    def of_type(self, event_type: str) -> list[Record]:
        return [r for r in self.by_id.values() if header(r, "ce_type") == event_type]


def events_of(records: Iterable[Record]) -> Events:
    events = Events()
    for record in records:
        event_id = header(record, "ce_id")
        if event_id is None:
            continue
        if event_id in events.by_id:
            events.copies += 1
        else:
            events.by_id[event_id] = record
    return events


def _family(topics: Mapping[str, list[Record]], suffix: str) -> list[Record]:
    return [
        r
        for name, records in topics.items()
        if name.startswith("partner.") and name.endswith(suffix)
        for r in records
    ]


def _diff(expected: Counter[str], got: Counter[str]) -> tuple[int, int]:
    return sum((expected - got).values()), sum((got - expected).values())


# -- Kafka ------------------------------------------------------------------------------------------


def partner_stream(traffic: Traffic, topics: Mapping[str, list[Record]]) -> Check:
    published = len(_family(topics, ".submissions"))
    return Check(
        "partner topics hold each simulated record once",
        published == len(traffic.items),
        f"{published:,} records for {len(traffic.items):,} simulated",
    )


def canonical(
    traffic: Traffic, topics: Mapping[str, list[Record]], copies_allowed: int
) -> tuple[list[Check], Events]:
    """Every accepted submission produced exactly one canonical event (distinct event ids per type
    equal the simulator's expectations). A relay that dies between Kafka's acknowledgement and its
    commit publishes that batch again with the same ids (docs/architecture.md): at most one batch per
    crash of a relay, which consumers' inboxes absorb."""
    events = events_of(r for t in CANONICAL_TOPICS for r in topics.get(t, []))
    expected, got = traffic.expected_events(), events.types()
    lost, duplicated = _diff(expected, got)
    checks = [
        Check(
            "one canonical event per accepted submission",
            lost == 0 and duplicated == 0 and events.copies <= copies_allowed,
            f"expected {dict(sorted(expected.items()))}, got {dict(sorted(got.items()))}; "
            f"{events.copies} copies of an id (the relay's window allows {copies_allowed})",
            lost,
            duplicated,
        )
    ]
    for event_type, count in (("case-opened", traffic.cases), ("volunteer-registered", traffic.volunteers)):
        keys = Counter(bytes(r.key or b"").decode() for r in events.of_type(event_type))
        twice = sum(1 for n in keys.values() if n > 1)
        checks.append(
            Check(
                f"one {event_type} per {event_type.split('-')[0]}",
                twice == 0 and len(keys) == count,
                f"{len(keys):,} distinct (simulator: {count:,}), {twice} with two events",
                max(0, count - len(keys)),
                twice,
            )
        )
    return checks, events


def rejections(traffic: Traffic, topics: Mapping[str, list[Record]]) -> tuple[Check, Events]:
    events = events_of(_family(topics, ".rejections"))
    expected, got = len(traffic.rejected()), len(events.by_id)
    return (
        Check(
            "one rejection per malformed submission",
            got == expected,
            f"{got:,} distinct rejections for {expected:,} expected; {events.copies} redelivered copies",
            max(0, expected - got),
            max(0, got - expected),
        ),
        events,
    )


def dead_letters(
    topics: Mapping[str, list[Record]], poison: list[Poison], readers: int
) -> tuple[Check, dict[str, Any]]:
    """Each injected record is dead-lettered once by each consumer group that reads its topic; nothing
    else is (the simulator's malformed records go to rejections, not to a DLQ)."""
    seen: Counter[tuple[str, str, int, int]] = Counter()
    for name, records in topics.items():
        if not is_dlq(name):
            continue
        for r in records:
            key = (
                header(r, "dlq_consumer") or "?",
                header(r, "dlq_original_topic") or "?",
                int(header(r, "dlq_original_partition") or -1),
                int(header(r, "dlq_original_offset") or -1),
            )
            seen[key] += 1
    wanted = {(p.topic, p.partition, p.offset) for p in poison}
    stray = [k for k in seen if k[1:] not in wanted]
    per_poison = Counter(k[1:] for k in seen if k[1:] in wanted)
    missing = sum(max(0, readers - per_poison.get(p, 0)) for p in wanted)
    consumers = sorted({k[0] for k in seen})
    ok = not stray and missing == 0 and all(n == readers for n in per_poison.values())
    detail = (
        f"{sum(seen.values())} dead letters ({len(seen)} distinct) for {len(wanted)} injected records x "
        f"{readers} consumer groups; stray: {stray[:5]}; consumers: {consumers}"
    )
    figures = {"injected": len(wanted), "dead_letters": sum(seen.values()), "stray": len(stray)}
    return Check("the DLQs hold exactly the injected records", ok, detail, missing, len(stray)), figures


# -- the services' tables ---------------------------------------------------------------------------


async def intake_tables(conn: asyncpg.Connection, traffic: Traffic) -> Check:
    rows = await conn.fetch("SELECT status, count(*) FROM intake.submissions GROUP BY status")
    got = Counter({row[0]: int(row[1]) for row in rows})
    expected = Counter({"accepted": len(traffic.accepted()), "rejected": len(traffic.rejected())})
    lost, duplicated = _diff(expected, got)
    return Check(
        "intake decided each submission once",
        got == expected,
        f"expected {dict(expected)}, got {dict(got)}",
        lost,
        duplicated,
    )


async def matching_tables(conn: asyncpg.Connection, matches: Events, volunteers: Events) -> list[Check]:
    doubled = await conn.fetch(
        "SELECT case_id, role, count(*) FROM matching.matches WHERE status = 'active' "
        "GROUP BY 1, 2 HAVING count(*) > 1"
    )
    checks = [
        Check(
            "no case has two active matches (matching's table)",
            not doubled,
            f"{len(doubled)} (case, role) pairs with two active matches",
            duplicated=len(doubled),
        )
    ]
    # The same from the topic alone: match-made minus match-ended, per case and role.
    active: dict[str, tuple[str, str]] = {}
    for r in matches.of_type("match-made"):
        data = decoded(r.value) or {}
        active[str(data.get("match_id"))] = (str(data.get("case_id")), str(data.get("role")))
    for r in matches.of_type("match-ended"):
        active.pop(str((decoded(r.value) or {}).get("match_id")), None)
    per_case = Counter(active.values())
    twice = sum(1 for n in per_case.values() if n > 1)
    checks.append(
        Check(
            "no case has two active matches (the matches topic)",
            twice == 0,
            f"{len(active):,} active matches on {len(per_case):,} (case, role) pairs, {twice} doubled",
            duplicated=twice,
        )
    )
    rows = await conn.fetch(
        """
        SELECT v.volunteer_id::text AS id, v.max_active_cases, v.active_cases, v.reserved,
               (SELECT count(*) FROM matching.matches m
                 WHERE m.volunteer_id = v.volunteer_id AND m.status = 'active') AS active_rows,
               (SELECT count(*) FROM matching.proposals p
                 WHERE p.volunteer_id = v.volunteer_id AND p.status = 'open') AS open_rows
        FROM matching.volunteers v
        """
    )
    # A volunteer's capacity may be lowered below what they hold; it may never be exceeded beyond
    # the largest capacity the partners ever gave them.
    largest: dict[str, int] = {}
    for r in volunteers.by_id.values():
        data = decoded(r.value) or {}
        capacity = _find(data, "max_active_cases")
        if isinstance(capacity, int):
            key = str(data.get("volunteer_id") or bytes(r.key or b"").decode())
            largest[key] = max(largest.get(key, 0), capacity)
    over = [
        row["id"]
        for row in rows
        if row["active_rows"] + row["open_rows"] > largest.get(row["id"], row["max_active_cases"])
    ]
    drift = [
        row["id"]
        for row in rows
        if (row["active_cases"], row["reserved"]) != (row["active_rows"], row["open_rows"])
    ]
    held = sum(int(row["active_rows"]) + int(row["open_rows"]) for row in rows)
    checks.append(
        Check(
            "no volunteer exceeds capacity",
            not over,
            f"{len(rows):,} volunteers holding {held:,} matches and open proposals; "
            f"{len(over)} over capacity: {over[:5]}",
            duplicated=len(over),
        )
    )
    checks.append(
        Check(
            "matching's capacity counters equal its matches and proposals",
            not drift,
            f"{len(drift)} volunteers whose active_cases/reserved differ from their rows: {drift[:5]}",
        )
    )
    proposals = int(await conn.fetchval("SELECT count(*) FROM matching.proposals"))
    made = int(await conn.fetchval("SELECT count(*) FROM matching.matches"))
    published = Counter(
        {
            "match-proposed": len(matches.of_type("match-proposed")),
            "match-made": len(matches.of_type("match-made")),
        }
    )
    stored = Counter({"match-proposed": proposals, "match-made": made})
    lost, duplicated = _diff(stored, published)
    checks.append(
        Check(
            "each proposal and match published once",
            published == stored,
            f"rows {dict(stored)}, distinct events {dict(published)}; {matches.copies} redelivered copies",
            lost,
            duplicated,
        )
    )
    return checks


def _find(data: Any, key: str) -> Any:
    if isinstance(data, dict):
        if key in data:
            return data[key]
        for value in data.values():
            if (found := _find(value, key)) is not None:
                return found
    return None


@dataclass
class Window:
    """The documented repeat window (docs/notifications.md): a crash resends at most the message each
    sender had in flight. A PostgreSQL restart is a crash for a sender that cannot record its outcome."""

    email_senders: int
    webhook_endpoints: int
    instances: int
    notifications_kills: int
    postgres_restarts: int

    def crashes(self) -> int:
        return self.notifications_kills + self.postgres_restarts * self.instances

    def emails(self) -> int:
        return self.email_senders * self.crashes()

    def webhooks(self) -> int:
        return self.webhook_endpoints * self.crashes()


async def deliveries(
    conn: asyncpg.Connection,
    mail: Counter[str],
    hooks: Counter[str],
    window: Window,
    matches: Events,
    rejected: Events,
) -> tuple[list[Check], dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT notification_id::text AS id, channel, status, event_type, source_event_id "
        "FROM notifications.deliveries"
    )
    statuses = Counter((row["channel"], row["status"]) for row in rows)
    received_mail = Counter({mid.strip("<>").split("@")[0]: n for mid, n in mail.items()})
    checks: list[Check] = []
    figures: dict[str, Any] = {"deliveries": {f"{c}:{s}": n for (c, s), n in sorted(statuses.items())}}
    for channel, received, bound in (
        ("email", received_mail, window.emails()),
        ("webhook", hooks, window.webhooks()),
    ):
        sent = {row["id"] for row in rows if row["channel"] == channel and row["status"] == "sent"}
        lost = len(sent - set(received))
        unknown = len(set(received) - {row["id"] for row in rows})
        repeats = sum(n - 1 for n in received.values())
        figures[channel] = {
            "sent": len(sent),
            "received": sum(received.values()),
            "repeats": repeats,
            "allowed": bound,
        }
        checks.append(
            Check(
                f"every {channel} sent was received, repeats within the documented window",
                lost == 0 and unknown == 0 and repeats <= bound,
                f"{len(sent):,} sent, {sum(received.values()):,} received ({len(received):,} distinct ids), "
                f"{repeats} repeats (window allows {bound}), {lost} lost, {unknown} unknown",
                lost,
                max(0, repeats - bound),
            )
        )
    unfinished = sum(
        n for (c, s), n in statuses.items() if s in ("pending", "sending", "failed") and c != "staff_inbox"
    )
    checks.append(Check("no delivery left pending or failed", unfinished == 0, f"{dict(statuses)}"))
    # Across services: each proposal is one email, each rejection one webhook (every partner subscribed).
    for what, events, event_type, channel in (
        ("proposal", matches, "match-proposed", "email"),
        ("rejection", rejected, "submission-rejected", "webhook"),
    ):
        wanted = {eid for eid, r in events.by_id.items() if header(r, "ce_type") == event_type}
        made = Counter(
            row["source_event_id"]
            for row in rows
            if row["event_type"] == event_type and row["channel"] == channel
        )
        lost = len(wanted - set(made))
        doubled = sum(1 for n in made.values() if n > 1)
        checks.append(
            Check(
                f"one {channel} per {what}",
                lost == 0 and doubled == 0,
                f"{len(wanted):,} {event_type} events, {len(made):,} with a {channel} delivery, "
                f"{doubled} with two",
                lost,
                doubled,
            )
        )
    return checks, figures


# -- reporting --------------------------------------------------------------------------------------


def same_figures(live: Mapping[str, Any], rebuilt: Mapping[str, Any]) -> Check:
    differ = sorted(name for name in live if live[name] != rebuilt.get(name))
    return Check(
        "reporting's live figures equal a rebuild from the topics",
        not differ and bool(live),
        f"{len(live)} figures compared; differing: {differ}",
    )


# A proposal's outcome as reporting defines it: the first of these that happened.
OUTCOMES = (
    ("accepted", "match-accepted"),
    ("declined", "match-declined"),
    ("expired", "match-expired"),
    ("retracted", "match-retracted"),
)


def proposal_outcomes(matches: Events) -> Counter[str]:
    """Each published proposal's outcome, from the matches topic alone."""
    happened = {
        outcome: {str((decoded(r.value) or {}).get("proposal_id")) for r in matches.of_type(event_type)}
        for outcome, event_type in OUTCOMES
    }
    outcomes: Counter[str] = Counter()
    for r in matches.of_type("match-proposed"):
        proposal = str((decoded(r.value) or {}).get("proposal_id"))
        outcomes[next((o for o, ids in happened.items() if proposal in ids), "open")] += 1
    return outcomes


def figures_match_topics(
    live: Mapping[str, Any], canonical_events: Events, rejected: Events, matches: Events
) -> Check:
    """Figures recomputed from the topics alone: cases referred and placed, rejections, proposals by
    outcome."""
    summary = (live.get("summary") or [{}])[0]
    referred = len({bytes(r.key or b"") for r in canonical_events.of_type("case-opened")})
    counsel = {role.value for role in COUNSEL_ROLES}
    placed = {
        data.get("case_id")
        for r in matches.of_type("match-made")
        if (data := decoded(r.value) or {}).get("role") in counsel
    }
    rejections_total = sum(
        row["submissions"] for row in live.get("rejections", []) if row.get("code") is None
    )
    reported: Counter[str] = Counter()
    for row in live.get("proposals", []):
        reported[row["outcome"]] += row["proposals"]
    pairs = {
        "referred": (summary.get("referred"), referred),
        "placed": (summary.get("placed"), len(placed)),
        "rejections": (rejections_total, len(rejected.by_id)),
        "proposals": (dict(sorted(reported.items())), dict(sorted(proposal_outcomes(matches).items()))),
    }
    wrong = {k: v for k, v in pairs.items() if v[0] != v[1]}
    return Check(
        "reporting's figures equal counts from the topics",
        not wrong,
        "; ".join(f"{k}: reporting {a}, topics {b}" for k, (a, b) in pairs.items()),
    )
