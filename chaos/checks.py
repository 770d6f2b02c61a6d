"""The invariants, judged once the system has settled: each check says what it compared and how many
records were lost or duplicated.

Some invariants hold at every moment (no case with two active matches, nothing sent twice beyond the
window, nothing stray in a DLQ); others only once the system has done everything it was given (one
canonical event per accepted submission). A check that fails only in the second way is marked
``incomplete``: when the system did not settle within its budget, such a check is reported as not
judged (with the lag that was left) rather than as broken, and one that fails in the first way is
broken whether the system settled or not."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from chaos.observe import Message, Settled, Topics
from chaos.traffic import Poison
from lastline_intake.simulate import Traffic
from lastline_reporting.projections import COUNSEL_ROLES
from lastline_shared.contracts.topics import is_dlq

CANONICAL_TOPICS = ("volunteers", "cases")

SETTLED = "the system settled"
PARTNER_STREAM = "partner topics hold each simulated record once"
CANONICAL = "one canonical event per accepted submission"
ONE_CASE_OPENED = "one case-opened per case"
ONE_VOLUNTEER_REGISTERED = "one volunteer-registered per volunteer"
REJECTIONS = "one rejection per malformed submission"
INTAKE_TABLES = "intake decided each submission once"
TWO_ACTIVE_TABLE = "no case has two active matches (matching's table)"
TWO_ACTIVE_TOPIC = "no case has two active matches (the matches topic)"
CAPACITY = "no volunteer exceeds capacity"
COUNTERS = "matching's capacity counters equal its matches and proposals"
PUBLISHED_ONCE = "each proposal and match published once"
RECEIVED = "every {} sent was received, repeats within the documented window"
UNFINISHED = "no delivery left pending or failed"
ONE_EMAIL = "one email per proposal"
ONE_WEBHOOK = "one webhook per rejection"
DEAD_LETTERS = "the DLQs hold exactly the injected records"
SAME_FIGURES = "reporting's live figures equal a rebuild from the topics"
FIGURES_MATCH = "reporting's figures equal counts from the topics"

# The checks that read the topics, or the services' tables, or reporting: what a phase that did not
# finish in time leaves unjudged.
TOPIC_CHECKS = (
    PARTNER_STREAM,
    CANONICAL,
    ONE_CASE_OPENED,
    ONE_VOLUNTEER_REGISTERED,
    REJECTIONS,
    TWO_ACTIVE_TOPIC,
    DEAD_LETTERS,
)
TABLE_CHECKS = (
    INTAKE_TABLES,
    TWO_ACTIVE_TABLE,
    CAPACITY,
    COUNTERS,
    PUBLISHED_ONCE,
    RECEIVED.format("email"),
    RECEIVED.format("webhook"),
    UNFINISHED,
    ONE_EMAIL,
    ONE_WEBHOOK,
)
REPORTING_CHECKS = (SAME_FIGURES, FIGURES_MATCH)
# Everything that compares with what the topics hold: not judged when they could not all be read.
TOPIC_DEPENDENT = (*TOPIC_CHECKS, CAPACITY, PUBLISHED_ONCE, ONE_EMAIL, ONE_WEBHOOK, *REPORTING_CHECKS)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    lost: int = 0
    duplicated: int = 0
    incomplete: bool = False
    """Failed only by what the system had not done yet: more time could make it hold."""
    judged: bool = True

    @property
    def status(self) -> str:
        return "ok" if self.ok else "FAIL" if self.judged else "not judged"


def not_judged(names: Iterable[str], reason: str) -> list[Check]:
    return [Check(name, False, f"not judged: {reason}", judged=False) for name in names]


def overrule(checks: list[Check], names: Iterable[str], reason: str) -> None:
    """The checks named were computed from incomplete input: replace them by not-judged ones."""
    wanted = set(names)
    for i, check in enumerate(checks):
        if check.name in wanted:
            checks[i] = not_judged([check.name], reason)[0]


def excuse_unsettled(checks: Iterable[Check], reason: str) -> None:
    """The system did not settle: a check that failed only by work not done yet cannot be judged
    (its ``lost`` is work in flight, not lost); every other one stands."""
    for check in checks:
        if not check.ok and check.incomplete:
            check.judged = False
            check.lost = 0
            check.detail = f"not judged: {reason}; so far {check.detail}"


def verdict(checks: Sequence[Check]) -> tuple[int, str]:
    """The exit code and its words: 0 every check holds, 1 an invariant is broken, 3 the system did
    not settle (or a phase ran out of time) and every check that could be judged holds."""
    broken = [c.name for c in checks if not c.ok and c.judged and c.name != SETTLED]
    unjudged = [c.name for c in checks if not c.judged]
    if broken:
        return 1, f"INVARIANTS BROKEN: {len(broken)} of {len(checks)} checks failed"
    if all(c.ok for c in checks):
        return 0, "all invariants hold"
    settled = all(c.ok for c in checks if c.name == SETTLED)
    return 3, (
        f"{'INCOMPLETE' if settled else 'NOT SETTLED'}: every check that could be judged holds; "
        f"{len(unjudged)} of {len(checks)} could not be judged"
    )


def settled_check(settled: Settled) -> Check:
    if settled.done:
        return Check(SETTLED, True, f"no lag, no backlog, no new records after {settled.seconds:.0f}s")
    return Check(SETTLED, False, settled.reason())


@dataclass
class Events:
    """One topic family's records with a CloudEvents id: distinct events (the first copy of each id),
    by id and by type, and how many further copies of an id there were."""

    by_id: dict[str, Message] = field(default_factory=dict)
    by_type: dict[str, list[Message]] = field(default_factory=dict)
    copies: int = 0

    def types(self) -> Counter[str]:
        return Counter({t: len(records) for t, records in self.by_type.items()})

    def of_type(self, event_type: str) -> list[Message]:
        return self.by_type.get(event_type, [])


def events_of(records: Iterable[Message]) -> Events:
    events = Events()
    for record in records:
        event_id = record.event_id
        if event_id is None:
            continue
        if event_id in events.by_id:
            events.copies += 1
        else:
            events.by_id[event_id] = record
            events.by_type.setdefault(record.event_type, []).append(record)
    return events


def _family(topics: Topics, suffix: str) -> list[str]:
    return [name for name in topics.counts if name.startswith("partner.") and name.endswith(suffix)]


def _diff(expected: Counter[str], got: Counter[str]) -> tuple[int, int]:
    return sum((expected - got).values()), sum((got - expected).values())


def keep_topic(name: str) -> bool:
    """The topics whose records the checks look into; every other one is only counted."""
    return name in CANONICAL_TOPICS or name == "matches" or is_dlq(name) or name.endswith(".rejections")


# -- Kafka ------------------------------------------------------------------------------------------


def partner_stream(traffic: Traffic, topics: Topics) -> Check:
    """Judged as soon as the publisher is done: the partners' records are all on the broker."""
    published = sum(topics.counts[name] for name in _family(topics, ".submissions"))
    return Check(
        PARTNER_STREAM,
        published == len(traffic.items),
        f"{published:,} records for {len(traffic.items):,} simulated",
    )


def canonical(traffic: Traffic, topics: Topics, copies_allowed: int) -> tuple[list[Check], Events]:
    """Every accepted submission produced exactly one canonical event (distinct event ids per type
    equal the simulator's expectations). A relay that dies between Kafka's acknowledgement and its
    commit publishes that batch again with the same ids (docs/architecture.md): at most one batch per
    crash of a relay, which consumers' inboxes absorb."""
    events = events_of(r for t in CANONICAL_TOPICS for r in topics.records(t))
    expected, got = traffic.expected_events(), events.types()
    lost, duplicated = _diff(expected, got)
    safe = duplicated == 0 and events.copies <= copies_allowed
    checks = [
        Check(
            CANONICAL,
            safe and lost == 0,
            f"expected {dict(sorted(expected.items()))}, got {dict(sorted(got.items()))}; "
            f"{events.copies} copies of an id (the relay's window allows {copies_allowed})",
            lost,
            duplicated,
            incomplete=safe,
        )
    ]
    for name, event_type, count in (
        (ONE_CASE_OPENED, "case-opened", traffic.cases),
        (ONE_VOLUNTEER_REGISTERED, "volunteer-registered", traffic.volunteers),
    ):
        keys = Counter(r.key.decode(errors="replace") for r in events.of_type(event_type))
        twice = sum(1 for n in keys.values() if n > 1)
        checks.append(
            Check(
                name,
                twice == 0 and len(keys) == count,
                f"{len(keys):,} distinct (simulator: {count:,}), {twice} with two events",
                max(0, count - len(keys)),
                twice,
                incomplete=twice == 0 and len(keys) < count,
            )
        )
    return checks, events


def rejections(traffic: Traffic, topics: Topics) -> tuple[Check, Events]:
    events = events_of(r for name in _family(topics, ".rejections") for r in topics.records(name))
    expected, got = len(traffic.rejected()), len(events.by_id)
    return (
        Check(
            REJECTIONS,
            got == expected,
            f"{got:,} distinct rejections for {expected:,} expected; {events.copies} redelivered copies",
            max(0, expected - got),
            max(0, got - expected),
            incomplete=got < expected,
        ),
        events,
    )


def active_matches_on_topic(matches: Events) -> Check:
    """Match-made minus match-ended, per case and role, from the topic alone. Each case's events keep
    their order on its partition, so this holds for any prefix of the topic as well."""
    active: dict[str, tuple[str, str]] = {}
    for r in matches.of_type("match-made"):
        data = r.data or {}
        active[str(data.get("match_id"))] = (str(data.get("case_id")), str(data.get("role")))
    for r in matches.of_type("match-ended"):
        active.pop(str((r.data or {}).get("match_id")), None)
    per_case = Counter(active.values())
    twice = sum(1 for n in per_case.values() if n > 1)
    return Check(
        TWO_ACTIVE_TOPIC,
        twice == 0,
        f"{len(active):,} active matches on {len(per_case):,} (case, role) pairs, {twice} doubled",
        duplicated=twice,
    )


def dead_letters(topics: Topics, poison: list[Poison], readers: int) -> tuple[Check, dict[str, Any]]:
    """Each injected record is dead-lettered once by each consumer group that reads its topic; nothing
    else is (the simulator's malformed records go to rejections, not to a DLQ)."""
    seen: Counter[tuple[str, str, int, int]] = Counter()
    for name in topics.counts:
        if not is_dlq(name):
            continue
        for r in topics.records(name):
            key = (
                r.header("dlq_consumer") or "?",
                r.header("dlq_original_topic") or "?",
                int(r.header("dlq_original_partition") or -1),
                int(r.header("dlq_original_offset") or -1),
            )
            seen[key] += 1
    wanted = {(p.topic, p.partition, p.offset) for p in poison}
    stray = [k for k in seen if k[1:] not in wanted]
    per_poison = Counter(k[1:] for k in seen if k[1:] in wanted)
    missing = sum(max(0, readers - per_poison.get(p, 0)) for p in wanted)
    consumers = sorted({k[0] for k in seen})
    safe = not stray and all(n <= readers for n in per_poison.values())
    ok = safe and missing == 0 and all(n == readers for n in per_poison.values())
    detail = (
        f"{sum(seen.values())} dead letters ({len(seen)} distinct) for {len(wanted)} injected records x "
        f"{readers} consumer groups; stray: {stray[:5]}; consumers: {consumers}"
    )
    figures = {"injected": len(wanted), "dead_letters": sum(seen.values()), "stray": len(stray)}
    check = Check(DEAD_LETTERS, ok, detail, missing, len(stray), incomplete=safe)
    return check, figures


# -- the services' tables ---------------------------------------------------------------------------


async def intake_tables(conn: asyncpg.Connection, traffic: Traffic) -> Check:
    rows = await conn.fetch("SELECT status, count(*) FROM intake.submissions GROUP BY status")
    got = Counter({row[0]: int(row[1]) for row in rows})
    expected = Counter({"accepted": len(traffic.accepted()), "rejected": len(traffic.rejected())})
    decided = Counter({status: got[status] for status in expected})
    # Rows still processing or held are undecided: lost once the system has settled.
    lost, duplicated = _diff(expected, decided)
    return Check(
        INTAKE_TABLES,
        got == expected,
        f"expected {dict(expected)}, got {dict(got)}",
        lost,
        duplicated,
        incomplete=duplicated == 0 and got.total() <= expected.total(),
    )


# One pass over each table (hash joins), not a count per volunteer.
VOLUNTEER_LOAD = """
WITH m AS (SELECT volunteer_id, count(*) AS n FROM matching.matches
           WHERE status = 'active' GROUP BY volunteer_id),
     p AS (SELECT volunteer_id, count(*) AS n FROM matching.proposals
           WHERE status = 'open' GROUP BY volunteer_id)
SELECT v.volunteer_id::text AS id, v.max_active_cases, v.active_cases, v.reserved,
       coalesce(m.n, 0) AS active_rows, coalesce(p.n, 0) AS open_rows
FROM matching.volunteers v
LEFT JOIN m ON m.volunteer_id = v.volunteer_id
LEFT JOIN p ON p.volunteer_id = v.volunteer_id
"""


async def matching_tables(conn: asyncpg.Connection, matches: Events, volunteers: Events) -> list[Check]:
    """Call within one snapshot (a repeatable-read transaction) while the services may still write."""
    doubled = await conn.fetch(
        "SELECT case_id, role, count(*) FROM matching.matches WHERE status = 'active' "
        "GROUP BY 1, 2 HAVING count(*) > 1"
    )
    checks = [
        Check(
            TWO_ACTIVE_TABLE,
            not doubled,
            f"{len(doubled)} (case, role) pairs with two active matches",
            duplicated=len(doubled),
        ),
        active_matches_on_topic(matches),
    ]
    rows = await conn.fetch(VOLUNTEER_LOAD)
    # A volunteer's capacity may be lowered below what they hold; it may never be exceeded beyond
    # the largest capacity the partners ever gave them (their current one is one of those: it may
    # come from an event published after the topics were read).
    largest: dict[str, int] = {}
    for r in volunteers.by_id.values():
        data = r.data or {}
        capacity = _find(data, "max_active_cases")
        if isinstance(capacity, int):
            key = str(data.get("volunteer_id") or r.key.decode(errors="replace"))
            largest[key] = max(largest.get(key, 0), capacity)
    over = [
        row["id"]
        for row in rows
        if row["active_rows"] + row["open_rows"] > max(largest.get(row["id"], 0), row["max_active_cases"])
    ]
    drift = [
        row["id"]
        for row in rows
        if (row["active_cases"], row["reserved"]) != (row["active_rows"], row["open_rows"])
    ]
    held = sum(int(row["active_rows"]) + int(row["open_rows"]) for row in rows)
    checks.append(
        Check(
            CAPACITY,
            not over,
            f"{len(rows):,} volunteers holding {held:,} matches and open proposals; "
            f"{len(over)} over capacity: {over[:5]}",
            duplicated=len(over),
        )
    )
    checks.append(
        Check(
            COUNTERS,
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
    # Rows whose events are still in the outbox (or were committed after the topics were read) are
    # not lost yet; events without a row are duplicates whenever they are seen.
    lost, duplicated = _diff(stored, published)
    checks.append(
        Check(
            PUBLISHED_ONCE,
            published == stored,
            f"rows {dict(stored)}, distinct events {dict(published)}; {matches.copies} redelivered copies",
            lost,
            duplicated,
            incomplete=duplicated == 0,
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


Received = Callable[[], tuple[Counter[str], Counter[str]]]
"""What the SMTP server and the webhook endpoint have received so far: ids of emails (Message-ID)
and of webhooks (``webhook-id``), each with how many times."""


def _mail_ids(mail: Counter[str]) -> Counter[str]:
    return Counter({mid.strip("<>").split("@")[0]: n for mid, n in mail.items()})


async def deliveries(
    conn: asyncpg.Connection,
    received: Received,
    window: Window,
    matches: Events,
    rejected: Events,
) -> tuple[list[Check], dict[str, Any]]:
    """While notifications may still be sending, what was received is taken just before and just
    after the rows are read: every row marked sent was received before the second look, and every
    message received before the first look has its row (rows are written before they are sent)."""
    mail_before, hooks_before = received()
    rows = await conn.fetch(
        "SELECT notification_id::text AS id, channel, status, event_type, source_event_id "
        "FROM notifications.deliveries"
    )
    mail_after, hooks_after = received()
    known = {row["id"] for row in rows}
    statuses = Counter((row["channel"], row["status"]) for row in rows)
    checks: list[Check] = []
    figures: dict[str, Any] = {"deliveries": {f"{c}:{s}": n for (c, s), n in sorted(statuses.items())}}
    for channel, before, after, bound in (
        ("email", _mail_ids(mail_before), _mail_ids(mail_after), window.emails()),
        ("webhook", hooks_before, hooks_after, window.webhooks()),
    ):
        sent = {row["id"] for row in rows if row["channel"] == channel and row["status"] == "sent"}
        lost = len(sent - set(after))
        unknown = len(set(before) - known)
        repeats = sum(n - 1 for n in after.values())
        figures[channel] = {
            "sent": len(sent),
            "received": sum(after.values()),
            "repeats": repeats,
            "allowed": bound,
        }
        checks.append(
            Check(
                RECEIVED.format(channel),
                lost == 0 and unknown == 0 and repeats <= bound,
                f"{len(sent):,} sent, {sum(after.values()):,} received ({len(after):,} distinct ids), "
                f"{repeats} repeats (window allows {bound}), {lost} lost, {unknown} unknown",
                lost,
                max(0, repeats - bound),
            )
        )
    unfinished: Counter[str] = Counter()
    for (c, s), n in statuses.items():
        if s in ("pending", "sending", "failed") and c != "staff_inbox":
            unfinished[s] += n
    checks.append(
        Check(
            UNFINISHED,
            not unfinished,
            f"{dict(statuses)}",
            incomplete=unfinished["failed"] == 0,
        )
    )
    # Across services: each proposal is one email, each rejection one webhook (every partner subscribed).
    for name, events, event_type, channel in (
        (ONE_EMAIL, matches, "match-proposed", "email"),
        (ONE_WEBHOOK, rejected, "submission-rejected", "webhook"),
    ):
        wanted = {r.event_id for r in events.of_type(event_type)}
        made = Counter(
            row["source_event_id"]
            for row in rows
            if row["event_type"] == event_type and row["channel"] == channel
        )
        lost = len(wanted - set(made))
        doubled = sum(1 for n in made.values() if n > 1)
        checks.append(
            Check(
                name,
                lost == 0 and doubled == 0,
                f"{len(wanted):,} {event_type} events, {len(made):,} with a {channel} delivery, "
                f"{doubled} with two",
                lost,
                doubled,
                incomplete=doubled == 0,
            )
        )
    return checks, figures


# -- reporting --------------------------------------------------------------------------------------


def same_figures(live: Mapping[str, Any], rebuilt: Mapping[str, Any]) -> Check:
    differ = sorted(name for name in live if live[name] != rebuilt.get(name))
    return Check(
        SAME_FIGURES,
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
        outcome: {str((r.data or {}).get("proposal_id")) for r in matches.of_type(event_type)}
        for outcome, event_type in OUTCOMES
    }
    outcomes: Counter[str] = Counter()
    for r in matches.of_type("match-proposed"):
        proposal = str((r.data or {}).get("proposal_id"))
        outcomes[next((o for o, ids in happened.items() if proposal in ids), "open")] += 1
    return outcomes


def figures_match_topics(
    live: Mapping[str, Any], canonical_events: Events, rejected: Events, matches: Events
) -> Check:
    """Figures recomputed from the topics alone: cases referred and placed, rejections, proposals by
    outcome."""
    summary = (live.get("summary") or [{}])[0]
    referred = len({r.key for r in canonical_events.of_type("case-opened")})
    counsel = {role.value for role in COUNSEL_ROLES}
    placed = {
        data.get("case_id")
        for r in matches.of_type("match-made")
        if (data := r.data or {}).get("role") in counsel
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
        FIGURES_MATCH,
        not wrong,
        "; ".join(f"{k}: reporting {a}, topics {b}" for k, (a, b) in pairs.items()),
    )
