"""Base classes of every contract: immutable, closed (unknown fields are rejected) and self-describing.

Each concrete event class names its CloudEvents ``type`` and its topic's registry name; the record key
field comes from the topic registry, so a model and the registry cannot disagree (a mismatch fails at
import time).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from lastline_shared.contracts.topics import TOPICS, TopicSpec

SCHEMA_URN_PREFIX = "urn:lastline"


class Part(BaseModel):
    """A nested value object inside an event."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", use_attribute_docstrings=True, from_attributes=True
    )


class FieldGroup(BaseModel):
    """Fields shared by an internal event and its partner-facing counterpart (mixed into both)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class Contract(BaseModel):
    """Anything published on a Lastline topic."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    event_type: ClassVar[str]
    """The CloudEvents ``type``, e.g. ``case-opened``."""
    topic: ClassVar[str]
    """The registry name of the topic (``cases``, ``partner.<partner-id>.submissions``)."""
    schema_version: ClassVar[int] = 1
    key_field: ClassVar[str]
    """Set from the registry: the field whose value is the Kafka key."""
    partner_facing: ClassVar[bool] = False

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "event_type" not in cls.__dict__:
            return  # an abstract intermediate class
        spec = cls.topic_spec()
        if cls.event_type not in spec.event_types:
            raise TypeError(f"{cls.__name__}: {cls.event_type!r} is not allowed on {spec.name!r}")
        if spec.partner_facing != cls.partner_facing:
            raise TypeError(f"{cls.__name__}: partner-facing models belong on partner topics")
        if spec.key_field not in cls.model_fields:
            raise TypeError(f"{cls.__name__} lacks {spec.name!r}'s key field {spec.key_field!r}")
        cls.key_field = spec.key_field

    @classmethod
    def topic_spec(cls) -> TopicSpec:
        return TOPICS[cls.topic]

    @classmethod
    def dataschema(cls) -> str:
        """The CloudEvents ``dataschema``: ``urn:lastline[:partner]:<type>:v<version>``."""
        kind = ":partner" if cls.partner_facing else ""
        return f"{SCHEMA_URN_PREFIX}{kind}:{cls.event_type}:v{cls.schema_version}"

    def aggregate_id(self) -> str:
        """The aggregate this event belongs to: the Kafka key and the CloudEvents ``subject``."""
        return str(getattr(self, self.key_field))


class Event(Contract):
    """An internal event: published by a Lastline service, never carrying client PII."""


class Submission(Contract):
    """A partner-facing submission on ``partner.<partner-id>.submissions``; may carry client PII."""

    partner_facing: ClassVar[bool] = True
