"""The topic registry: every Kafka topic Lastline uses, its partitions, key and event types.

Topics are per aggregate, so the events of one case (or volunteer) stay in order on one partition:
the record key is the aggregate id named by ``key_field``. Partners each get two topics of their own,
``partner.<partner-id>.submissions`` (they write) and ``partner.<partner-id>.rejections`` (they read),
so ACLs can be per partner. A message that failed after retries goes to ``<topic>.dlq``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from lastline_shared.contracts.primitives import PARTNER_ID_PATTERN

DEFAULT_PARTITIONS = 12
DLQ_SUFFIX = ".dlq"
PARTNER_PLACEHOLDER = "<partner-id>"

_PARTNER_ID = re.compile(PARTNER_ID_PATTERN)
_PARTNER_TOPIC = re.compile(r"^partner\.([a-z0-9-]{2,40})\.(submissions|rejections)$")

SUBMISSIONS_PATTERN = r"^partner\.[a-z0-9-]{2,40}\.submissions$"
"""Regular expression for subscribing to every partner's submissions topic."""
REJECTIONS_PATTERN = r"^partner\.[a-z0-9-]{2,40}\.rejections$"
"""Regular expression for subscribing to every partner's rejections topic."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    """The topic name; for per-partner topics a template with ``<partner-id>``."""
    key_field: str
    """The field of every event on this topic whose value is the record key."""
    event_types: tuple[str, ...]
    description: str
    partitions: int = DEFAULT_PARTITIONS
    per_partner: bool = False
    partner_facing: bool = False
    """Its events use the partner-facing models (with client PII), not the internal ones."""

    def for_partner(self, partner_id: str) -> str:
        """The concrete topic of a per-partner family."""
        if not self.per_partner:
            raise ValueError(f"topic {self.name!r} is not per partner")
        return self.name.replace(PARTNER_PLACEHOLDER, check_partner_id(partner_id))


VOLUNTEERS = TopicSpec(
    name="volunteers",
    key_field="volunteer_id",
    event_types=("volunteer-registered", "volunteer-updated", "volunteer-withdrawn"),
    description="Volunteers joining, changing their profile and leaving; published by intake.",
)
CASES = TopicSpec(
    name="cases",
    key_field="case_id",
    event_types=("case-opened", "case-updated", "case-closed"),
    description="Pseudonymous cases (no client PII) and their changes; published by intake.",
)
FACILITIES = TopicSpec(
    name="facilities",
    key_field="facility_code",
    event_types=("facility-status-changed",),
    description="Placements at a detention facility opened or paused; published by intake.",
)
MATCHES = TopicSpec(
    name="matches",
    key_field="case_id",
    event_types=(
        "match-proposed",
        "match-accepted",
        "match-declined",
        "match-expired",
        "match-retracted",
        "match-made",
        "match-ended",
        "mentor-assigned",
        "case-escalated",
    ),
    description="Proposals, placements and escalations, keyed by case; published by matching.",
)
NOTIFICATIONS = TopicSpec(
    name="notifications",
    key_field="notification_id",
    event_types=("notification-sent", "notification-failed"),
    description="Delivery results of emails, webhooks and inbox items; published by notifications.",
)
PARTNER_SUBMISSIONS = TopicSpec(
    name=f"partner.{PARTNER_PLACEHOLDER}.submissions",
    key_field="external_id",
    event_types=(
        "volunteer-registered",
        "volunteer-updated",
        "volunteer-withdrawn",
        "case-opened",
        "case-updated",
        "case-closed",
    ),
    description="What a partner publishes, keyed by the partner's own id; carries client PII.",
    per_partner=True,
    partner_facing=True,
)
PARTNER_REJECTIONS = TopicSpec(
    name=f"partner.{PARTNER_PLACEHOLDER}.rejections",
    key_field="submission_id",
    event_types=("submission-rejected",),
    description="Why a partner's submission was rejected; published by intake, read by the partner.",
    per_partner=True,
)

TOPICS: Mapping[str, TopicSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            VOLUNTEERS,
            CASES,
            FACILITIES,
            MATCHES,
            NOTIFICATIONS,
            PARTNER_SUBMISSIONS,
            PARTNER_REJECTIONS,
        )
    }
)
"""Every topic family by registry name."""

SHARED_TOPICS: tuple[TopicSpec, ...] = tuple(s for s in TOPICS.values() if not s.per_partner)
"""The topics that exist once (not per partner)."""


def check_partner_id(partner_id: str) -> str:
    """``partner_id`` if it is a valid slug, else ``ValueError``."""
    if not _PARTNER_ID.match(partner_id):
        raise ValueError(f"invalid partner id {partner_id!r}: expected {PARTNER_ID_PATTERN}")
    return partner_id


def submissions_topic(partner_id: str) -> str:
    return PARTNER_SUBMISSIONS.for_partner(partner_id)


def rejections_topic(partner_id: str) -> str:
    return PARTNER_REJECTIONS.for_partner(partner_id)


def partner_topics(partner_id: str) -> tuple[str, str]:
    """The two topics to create (and grant ACLs on) when a partner joins."""
    return submissions_topic(partner_id), rejections_topic(partner_id)


def dlq_topic(topic: str) -> str:
    return f"{topic}{DLQ_SUFFIX}"


def is_dlq(topic: str) -> bool:
    return topic.endswith(DLQ_SUFFIX)


def shared_topic_names(*, with_dlq: bool = True) -> tuple[str, ...]:
    """The shared topics (and their dead-letter topics) a deployment creates up front."""
    names = [spec.name for spec in SHARED_TOPICS]
    if with_dlq:
        names += [dlq_topic(name) for name in names]
    return tuple(names)


def shared_topic_partitions(partitions: int | None = None) -> dict[str, int]:
    """Name -> partition count of the shared topics and their DLQs (``partitions`` overrides all)."""
    counts = {spec.name: partitions or spec.partitions for spec in SHARED_TOPICS}
    return counts | {dlq_topic(name): count for name, count in counts.items()}


def partner_topic_partitions(partner_id: str, partitions: int | None = None) -> dict[str, int]:
    """Name -> partition count of one partner's topics and their DLQs."""
    counts = {
        PARTNER_SUBMISSIONS.for_partner(partner_id): partitions or PARTNER_SUBMISSIONS.partitions,
        PARTNER_REJECTIONS.for_partner(partner_id): partitions or PARTNER_REJECTIONS.partitions,
    }
    return counts | {dlq_topic(name): count for name, count in counts.items()}


@dataclass(frozen=True)
class ResolvedTopic:
    """A concrete topic name matched against the registry."""

    name: str
    spec: TopicSpec
    partner_id: str | None = None
    dlq: bool = False


@lru_cache(maxsize=4096)
def resolve(topic: str) -> ResolvedTopic | None:
    """The registry entry of a concrete topic (a DLQ resolves to its source topic), or None."""
    dlq = is_dlq(topic)
    base = topic.removesuffix(DLQ_SUFFIX) if dlq else topic
    spec = TOPICS.get(base)
    if spec is not None and not spec.per_partner:
        return ResolvedTopic(topic, spec, dlq=dlq)
    match = _PARTNER_TOPIC.match(base)
    if match is None:
        return None
    family = PARTNER_SUBMISSIONS if match.group(2) == "submissions" else PARTNER_REJECTIONS
    return ResolvedTopic(topic, family, partner_id=match.group(1), dlq=dlq)


def looks_like_partner_topic(topic: str) -> bool:
    """True for names in the ``partner.`` namespace, valid or not."""
    return topic.startswith("partner.")
