"""The rebuild's quick reading of records folds exactly the rows that full decoding folds."""

from __future__ import annotations

import msgspec
import pytest
from aiokafka.structs import ConsumerRecord

from lastline_reporting import replay
from lastline_reporting.history import generate
from lastline_reporting.projections import Batch
from lastline_reporting.replay import SLIM, fold
from lastline_shared.contracts.catalog import INTERNAL_BY_TYPE
from lastline_shared.contracts.envelope import Envelope, KafkaRecord, decode, encode
from lastline_shared.contracts.examples import example_events


def _consumed(record: KafkaRecord, offset: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        record.topic, 0, offset, 0, 0, record.key, record.value, None, 0, 0, list(record.headers)
    )


def _records() -> list[KafkaRecord]:
    records = list(generate(cases=150, volunteers=40, seed=11).records())
    return records + [encode(e, source="/services/intake") for e in example_events()]


def test_every_projected_event_type_has_a_slim_struct_with_the_contracts_fields_and_defaults() -> None:
    assert set(SLIM) == set(INTERNAL_BY_TYPE)
    for event_type, struct in SLIM.items():
        fields = INTERNAL_BY_TYPE[event_type].model_fields
        for field in msgspec.structs.fields(struct):
            assert field.name in fields, (event_type, field.name)
            contract = fields[field.name]
            if contract.is_required():
                assert field.required, (event_type, field.name)
            else:
                assert field.default == contract.default, (event_type, field.name)


def test_folding_records_gives_the_rows_of_fully_decoded_envelopes() -> None:
    records = _records()
    quick = Batch()
    assert all(fold(quick, _consumed(r, i)) for i, r in enumerate(records))
    envelopes = [decode(r.topic, r.key, r.headers, r.value) for r in records]
    assert all(isinstance(e, Envelope) for e in envelopes)
    full = Batch().extend(e for e in envelopes if isinstance(e, Envelope))
    assert quick.events == full.events == len(records)
    assert quick.rows == full.rows


def test_records_the_slim_path_does_not_read_are_decoded_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    records = _records()[-40:]
    expected = Batch()
    for r in records:
        fold(expected, _consumed(r))
    monkeypatch.setattr(replay, "_READERS", {})  # as for an event type without a slim struct
    batch = Batch()
    assert all(fold(batch, _consumed(r)) for r in records)
    assert batch.rows == expected.rows
    assert batch.events == len(records)


@pytest.mark.parametrize("value", [b"{not json", b"{}", b""])
def test_a_record_that_does_not_decode_is_skipped(value: bytes) -> None:
    record = encode(next(iter(example_events())), source="/services/intake")
    unknown_type = tuple((k, v.upper() if k == "ce_type" else v) for k, v in record.headers)
    batch = Batch()
    assert not fold(batch, _consumed(KafkaRecord(record.topic, record.key, record.headers, value)))
    assert not fold(batch, _consumed(KafkaRecord(record.topic, record.key, unknown_type, record.value)))
    assert batch.events == 0
    assert batch.row_count == 0
