"""Lastline's event contracts: the models, the topic registry and the CloudEvents Kafka codec.

- internal events (no client PII): :mod:`.volunteers`, :mod:`.cases`, :mod:`.facilities`,
  :mod:`.matches`, :mod:`.notifications`, :mod:`.rejections`
- partner-facing submissions (with client PII): :mod:`.submissions`
- topics, keys and allowed types: :mod:`.topics`; every model by type: :mod:`.catalog`
- (de)serialisation, the only place: :mod:`.envelope` (``encode``, ``decode``)
- JSON Schema export: ``python -m lastline_shared.contracts.export docs/schemas``
"""

from lastline_shared.contracts.base import Contract, Event, Submission
from lastline_shared.contracts.catalog import (
    INTERNAL_BY_TYPE,
    INTERNAL_EVENTS,
    PARTNER_SUBMISSIONS,
    SUBMISSION_BY_TYPE,
)
from lastline_shared.contracts.envelope import (
    DecodeCode,
    DecodeError,
    Envelope,
    KafkaRecord,
    Reason,
    decode,
    encode,
)
from lastline_shared.contracts.topics import (
    TOPICS,
    TopicSpec,
    dlq_topic,
    rejections_topic,
    submissions_topic,
)

__all__ = [
    "INTERNAL_BY_TYPE",
    "INTERNAL_EVENTS",
    "PARTNER_SUBMISSIONS",
    "SUBMISSION_BY_TYPE",
    "TOPICS",
    "Contract",
    "DecodeCode",
    "DecodeError",
    "Envelope",
    "Event",
    "KafkaRecord",
    "Reason",
    "Submission",
    "TopicSpec",
    "decode",
    "dlq_topic",
    "encode",
    "rejections_topic",
    "submissions_topic",
]
