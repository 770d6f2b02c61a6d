"""The chaos run's end: a verdict in bounded time whether or not the platform settled.

Checks of work not done yet are "not judged" when the system did not settle (with the lag left),
checks of what must never happen are judged regardless, and the waits (settling, reading the topics,
a phase of checks) end within their budgets even when nothing answers. No servers: the observer's
view is built by hand, and the servers that do not answer are closed ports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from itertools import count

import pytest

from chaos import checks
from chaos.__main__ import parse
from chaos.fleet import free_port
from chaos.observe import Message, Settled, Topics, message, read_topics, settle
from chaos.run import Options, Run
from chaos.traffic import PARTNERS, Poison, make_traffic
from lastline_intake.simulate import Traffic

UNSETTLED = Settled(300.0, 1234, {"matching queue": 7}, {"lastline-matching.main": 1234, "other": 0})
SETTLED = Settled(12.0, 0, {"matching queue": 0}, {"lastline-matching.main": 0})


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    return make_traffic(200, 3, 0.1)


def canonical_events(traffic: Traffic, *, missing: int = 0) -> Iterator[Message]:
    """The canonical events intake publishes for ``traffic``, but the last ``missing`` (still in
    flight); each opening of a case or a volunteer under a key of its own."""
    ids = count()
    wanted = list(traffic.expected_events().elements())
    for event_type in wanted[: len(wanted) - missing]:
        n = next(ids)
        topic = "cases" if event_type.startswith("case") else "volunteers"
        yield message(topic, b"{}", key=f"k{n}".encode(), offset=n, ce_id=f"e{n}", ce_type=event_type)


def made(match: str, case: str) -> Message:
    value = f'{{"match_id": "{match}", "case_id": "{case}", "role": "counsel"}}'.encode()
    return message("matches", value, ce_id=f"made-{match}", ce_type="match-made")


def observed(
    traffic: Traffic, *, missing: int = 0, rejections: int | None = None, matches: list[Message] | None = None
) -> Topics:
    """What reading the topics found: every partner record, the canonical events but ``missing``,
    ``rejections`` rejections (all by default)."""
    shown = len(traffic.rejected()) if rejections is None else rejections
    kept = {
        "cases": [m for m in canonical_events(traffic, missing=missing) if m.topic == "cases"],
        "volunteers": [m for m in canonical_events(traffic, missing=missing) if m.topic == "volunteers"],
        f"partner.{PARTNERS[0]}.rejections": [
            message("x", b"{}", ce_id=f"r{i}", ce_type="submission-rejected") for i in range(shown)
        ],
        "matches": matches or [],
    }
    counts = {name: len(records) for name, records in kept.items()}
    counts[f"partner.{PARTNERS[0]}.submissions"] = len(traffic.items)
    return Topics(counts=counts, kept=kept)


def judge(traffic: Traffic, topics: Topics, settled: Settled) -> list[checks.Check]:
    """The topic checks as ``chaos.run`` makes them, excused as it does when not settled."""
    results = [checks.settled_check(settled), checks.partner_stream(traffic, topics)]
    results += checks.canonical(traffic, topics, copies_allowed=0)[0]
    results.append(checks.rejections(traffic, topics)[0])
    results.append(checks.active_matches_on_topic(checks.events_of(topics.records("matches"))))
    if not settled.done:
        checks.excuse_unsettled(results, settled.brief())
    return results


def by_name(results: list[checks.Check]) -> dict[str, checks.Check]:
    return {c.name: c for c in results}


def test_a_settled_complete_system_holds_every_check(traffic: Traffic) -> None:
    results = judge(traffic, observed(traffic, matches=[made("m1", "c1")]), SETTLED)
    assert [c.status for c in results] == ["ok"] * len(results)
    assert checks.verdict(results)[0] == 0


def test_not_settled_work_in_flight_is_not_judged_and_says_the_lag(traffic: Traffic) -> None:
    results = by_name(judge(traffic, observed(traffic, missing=5, rejections=3), UNSETTLED))
    settled = results[checks.SETTLED]
    assert settled.status == "FAIL"
    assert settled.detail == (
        "not settled after 300s: lag 1,234 (1,234 on group lastline-matching.main); "
        "backlog {'matching queue': 7}"
    )
    for name in (checks.CANONICAL, checks.REJECTIONS):
        assert results[name].status == "not judged"
        assert results[name].detail.startswith(
            "not judged: not settled: lag 1,234, most on group lastline-matching.main (1,234); "
            "backlog matching queue 7; so far "
        )
        assert results[name].lost == 0  # in flight, not lost
    # What the partial view can still judge, it does.
    assert results[checks.PARTNER_STREAM].status == "ok"
    assert results[checks.TWO_ACTIVE_TOPIC].status == "ok"
    code, words = checks.verdict(list(results.values()))
    assert code == 3
    assert words.startswith("NOT SETTLED")


def test_not_settled_still_judges_what_may_never_happen(traffic: Traffic) -> None:
    doubled = [made("m1", "c1"), made("m2", "c1")]  # two active matches for one case and role
    topics = observed(traffic, missing=5, matches=doubled)
    topics.kept["cases"].append(topics.kept["cases"][0])  # a copy of an id: the window allows none
    results = by_name(judge(traffic, topics, UNSETTLED))
    assert results[checks.TWO_ACTIVE_TOPIC].status == "FAIL"
    assert results[checks.CANONICAL].status == "FAIL"  # lost is excusable, a copy is not
    assert checks.verdict(list(results.values()))[0] == 1


def test_the_same_shortfall_once_settled_is_lost(traffic: Traffic) -> None:
    results = by_name(judge(traffic, observed(traffic, missing=5), SETTLED))
    assert results[checks.CANONICAL].status == "FAIL"
    assert results[checks.CANONICAL].lost == 5
    assert checks.verdict(list(results.values()))[0] == 1


def test_dead_letters_missing_is_in_flight_but_stray_is_broken() -> None:
    poison = [Poison("volunteers", 0, 7)]

    def dlq(offset: int, consumer: str) -> Message:
        return message(
            "volunteers.dlq",
            b"",
            dlq_consumer=consumer,
            dlq_original_topic="volunteers",
            dlq_original_partition="0",
            dlq_original_offset=str(offset),
        )

    one_of_three = Topics(counts={"volunteers.dlq": 1}, kept={"volunteers.dlq": [dlq(7, "a")]})
    check, _ = checks.dead_letters(one_of_three, poison, readers=3)
    assert (check.ok, check.incomplete, check.lost) == (False, True, 2)
    stray = Topics(counts={"volunteers.dlq": 2}, kept={"volunteers.dlq": [dlq(7, "a"), dlq(9, "a")]})
    check, _ = checks.dead_letters(stray, poison, readers=3)
    assert (check.ok, check.incomplete, check.duplicated) == (False, False, 1)


async def test_settling_and_reading_end_within_their_budgets_when_nothing_answers() -> None:
    kafka, postgres = f"127.0.0.1:{free_port()}", f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    started = time.monotonic()
    state = await settle(kafka, postgres, within_s=1, say=lambda _: None)
    assert time.monotonic() - started < 10
    assert not state.done
    assert "lag unknown" in state.reason()
    started = time.monotonic()
    topics = await read_topics(kafka, within_s=2, say=lambda _: None)
    assert time.monotonic() - started < 6
    assert not topics.complete
    assert topics.reason().startswith("the topics could not be listed")


async def test_a_group_the_broker_stops_listing_is_not_settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Just after a broker restart, consumer groups may be missing from its answers: that is no lag."""
    looks = iter([Settled(0.0, 0, {}, {"lastline-matching.main": 0})])

    async def fake_probe(_bootstrap: str, _dsn: str) -> tuple[Settled, dict[object, int]]:
        return next(looks, Settled(0.0, 0, {}, {})), {}

    monkeypatch.setattr("chaos.observe.probe", fake_probe)
    state = await settle("kafka", "postgres", within_s=1, quiet_s=0.5, say=lambda _: None)
    assert not state.done
    assert state.brief() == "not settled: lag 0; backlog consumer groups not listed 1"


async def test_a_quiet_system_settles_before_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_probe(_bootstrap: str, _dsn: str) -> tuple[Settled, dict[object, int]]:
        return Settled(0.0, 0, {"intake outbox": 0}, {"lastline-matching.main": 0}), {"t-0": 5}

    monkeypatch.setattr("chaos.observe.probe", fake_probe)
    started = time.monotonic()
    state = await settle("kafka", "postgres", within_s=60, quiet_s=0.5, say=lambda _: None)
    assert state.done
    assert time.monotonic() - started < 10


async def test_a_phase_that_runs_out_of_time_leaves_its_checks_not_judged() -> None:
    run = Run(Options())

    async def forever() -> list[checks.Check]:
        await asyncio.sleep(3600)
        return []

    async def broken() -> list[checks.Check]:
        raise ConnectionRefusedError("the database went away")

    started = time.monotonic()
    found = await run.phase("reading the services' tables", checks.TABLE_CHECKS, 0.5, forever)
    assert time.monotonic() - started < 3
    assert [c.name for c in found] == list(checks.TABLE_CHECKS)
    assert all(c.status == "not judged" for c in found)
    assert found[0].detail.startswith("not judged: reading the services' tables did not finish within")
    found = await run.phase("checking reporting", checks.REPORTING_CHECKS, 5, broken)
    assert all("the database went away" in c.detail and not c.judged for c in found)
    assert checks.verdict([checks.settled_check(SETTLED), *found])[:1] == (3,)
    assert checks.verdict([checks.settled_check(SETTLED), *found])[1].startswith("INCOMPLETE")


def test_options_from_the_environment_for_make_chaos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOS_EVENTS", "20000")
    monkeypatch.setenv("CHAOS_RATE", "30")
    options = parse([])
    assert (options.events, options.rate, options.settle_within_s) == (20_000, 30.0, 1800.0)
    assert parse(["--events", "500", "--settle-within-s", "5"]).events == 500  # the command line wins
    monkeypatch.setenv("CHAOS_RATE", "fast")
    with pytest.raises(SystemExit):
        parse([])
