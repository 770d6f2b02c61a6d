"""Reporting's read models merge order-independently and idempotently; the public view suppresses."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from lastline_reporting import readmodel as rm
from lastline_reporting.api import to_csv
from lastline_reporting.charts import grouped_bars, share_line
from lastline_reporting.disclosure import Disclosure, public_rows, suppress_column
from lastline_reporting.history import generate
from lastline_reporting.models import CaseCountRow, FacilityRow
from lastline_reporting.projections import Batch
from lastline_shared.contracts.base import Event
from lastline_shared.contracts.envelope import Envelope, decode

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _fold(facts: list[tuple[Event, datetime, uuid.UUID]]) -> dict[str, dict[object, rm.Row]]:
    batch = Batch()
    for event, at, event_id in facts:
        batch.add_event(event, at, event_id)
    return batch.rows


def test_every_column_is_covered_by_exactly_one_rule() -> None:
    with pytest.raises(ValueError, match="exactly once"):
        rm.TableSpec("x", "id", {"id": "uuid", "a": "text"}, rules=())
    for spec in rm.TABLES:
        sql = spec.upsert_sql("s", 3)
        assert f'"s"."g3_{spec.name}"' in sql
        assert "json_to_recordset" in sql


def test_history_folds_to_the_same_rows_in_any_order_and_with_duplicates() -> None:
    facts = [(f.event, f.at, f.event_id) for f in generate(cases=60, volunteers=20, seed=3).facts]
    expected = _fold(facts)
    rng = random.Random(1)
    for _ in range(3):
        shuffled = facts + rng.sample(facts, len(facts) // 3)  # redeliveries too
        rng.shuffle(shuffled)
        assert _fold(shuffled) == expected


def test_latest_and_earliest_groups_tie_break_on_the_event_id() -> None:
    spec = rm.FACILITIES
    a = {"facility_code": "KRO", "status_at": T0, "status_event": uuid.UUID(int=1), "status": "open"}
    b = {"facility_code": "KRO", "status_at": T0, "status_event": uuid.UUID(int=2), "status": "paused"}
    assert rm.merge(spec, dict(a), b)["status"] == "paused"
    assert rm.merge(spec, dict(b), a)["status"] == "paused"
    older = {"facility_code": "KRO", "status_at": T0 - timedelta(days=1), "status_event": uuid.UUID(int=9)}
    assert rm.merge(spec, dict(b), older | {"status": "open"})["status"] == "paused"


def test_envelopes_of_the_history_decode() -> None:
    records = list(generate(cases=20, volunteers=10).records())
    decoded = [decode(r.topic, r.key, list(r.headers), r.value) for r in records]
    assert all(isinstance(d, Envelope) for d in decoded)


def test_small_counts_are_suppressed_and_a_lone_one_takes_another_with_it() -> None:
    assert suppress_column([10, 3, 0, 7], partition=True) == [10, None, 0, None]
    assert suppress_column([10, 3, 4, 7], partition=True) == [10, None, None, 7]
    assert suppress_column([10, 3, 7], partition=False) == [10, None, 7]
    assert suppress_column([5, 0], partition=True) == [5, 0]


def test_public_rows_hide_shares_durations_and_notes_that_stand_on_few_cases() -> None:
    row = FacilityRow(
        facility_code="KRO",
        name="Krome",
        city=None,
        state=None,
        referred=12,
        open=9,
        without_counsel=3,
        without_counsel_share=0.3333,
        placed=4,
        median_hours_to_placement=30.0,
        status="paused",
        pause_reason="lockdown",
        note="call Ana at <b>home</b>",
    )
    rule = Disclosure(
        counts=("referred", "open", "without_counsel", "placed"),
        shares={"without_counsel_share": ("without_counsel", "open")},
        durations={"median_hours_to_placement": "placed"},
        hidden=("note",),
        partition=False,
    )
    [public] = public_rows([row], rule)
    assert (public.referred, public.open, public.without_counsel, public.placed) == (12, 9, None, None)
    assert public.without_counsel_share is None
    assert public.median_hours_to_placement is None
    assert public.note is None
    assert public.pause_reason == "lockdown"


def test_csv_neutralises_formulas() -> None:
    row = CaseCountRow(
        key="=cmd|' /C calc'!A0",
        label="-1+1",
        referred=1,
        placed=0,
        open=1,
        unplaced=None,
        unplaced_share=None,
    )
    lines = to_csv(CaseCountRow, [row]).splitlines()
    assert lines[0] == "key,label,referred,placed,open,unplaced,unplaced_share"
    assert lines[1] == "'=cmd|' /C calc'!A0,'-1+1,1,0,1,,"


def test_charts_handle_empty_and_suppressed_values() -> None:
    assert grouped_bars([], [[], []], ["a", "b"]).empty
    chart = grouped_bars(["w1", "w2"], [[3, None], [0, 8]], ["referred", "placed"])
    assert len(chart.bars) == 4
    assert any("fewer than 5" in bar.title for bar in chart.bars)
    line = share_line(["w1", "w2", "w3"], [0.5, None, 0.25])
    assert line.line.count("M") == 2  # broken where suppressed
