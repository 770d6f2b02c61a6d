"""The Prometheus metrics every service exports, labelled by service.

The metric objects live in the default registry and are created once, when this module is first
imported; every app, consumer and relay in the process shares them through ``ServiceMetrics``.
That is why several services (or many test apps) can run in one process without "Duplicated
timeseries" errors: nothing registers a metric twice.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import Counter, Gauge, Histogram

ConsumeOutcome = Literal["processed", "duplicate", "invalid", "dlq"]

# Handlers and relay publishes are expected in the millisecond range; the tail matters.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

EVENTS_CONSUMED = Counter(
    "lastline_events_consumed",
    "Events taken from Kafka, by what became of them.",
    ["service", "topic", "type", "outcome"],
)
EVENTS_PUBLISHED = Counter(
    "lastline_events_published",
    "Events published to Kafka (by the outbox relay).",
    ["service", "topic", "type"],
)
HANDLER_SECONDS = Histogram(
    "lastline_handler_duration_seconds",
    "Time spent handling one event (or one batch, for batch handlers).",
    ["service", "topic", "type"],
    buckets=_LATENCY_BUCKETS,
)
OUTBOX_BACKLOG = Gauge(
    "lastline_outbox_backlog",
    "Outbox rows not yet published.",
    ["service"],
)
DLQ_EVENTS = Counter(
    "lastline_dlq_events",
    "Messages sent to <topic>.dlq after retries ran out, by source topic.",
    ["service", "topic"],
)
CONSUMER_LAG = Gauge(
    "lastline_consumer_lag",
    "Messages between the group's committed offset and the partition's end.",
    ["service", "topic", "partition"],
)
RELAY_PUBLISH_SECONDS = Histogram(
    "lastline_relay_publish_duration_seconds",
    "Time for the outbox relay to publish one batch and get the broker's acknowledgement.",
    ["service"],
    buckets=_LATENCY_BUCKETS,
)


@dataclass(frozen=True, slots=True)
class ServiceMetrics:
    """The shared metrics with the ``service`` label filled in."""

    service: str

    def event_consumed(self, topic: str, event_type: str, outcome: ConsumeOutcome) -> None:
        """Count one consumed event; outcome "dlq" also counts a dead-lettered message."""
        EVENTS_CONSUMED.labels(self.service, topic, event_type, outcome).inc()
        if outcome == "dlq":
            DLQ_EVENTS.labels(self.service, topic).inc()

    def event_published(self, topic: str, event_type: str, count: int = 1) -> None:
        EVENTS_PUBLISHED.labels(self.service, topic, event_type).inc(count)

    def observe_handler(self, topic: str, event_type: str, seconds: float) -> None:
        HANDLER_SECONDS.labels(self.service, topic, event_type).observe(seconds)

    def time_handler(self, topic: str, event_type: str) -> AbstractContextManager[Any]:
        """``with metrics.time_handler(topic, type): ...`` observes the block's duration."""
        timer: AbstractContextManager[Any] = HANDLER_SECONDS.labels(self.service, topic, event_type).time()
        return timer

    def set_outbox_backlog(self, rows: int) -> None:
        OUTBOX_BACKLOG.labels(self.service).set(rows)

    def set_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        CONSUMER_LAG.labels(self.service, topic, str(partition)).set(lag)

    def observe_relay_publish(self, seconds: float) -> None:
        RELAY_PUBLISH_SECONDS.labels(self.service).observe(seconds)
