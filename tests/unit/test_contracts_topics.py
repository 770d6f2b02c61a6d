"""The topic registry and its helpers."""

from __future__ import annotations

import re

import pytest

from lastline_shared.contracts.topics import (
    DEFAULT_PARTITIONS,
    REJECTIONS_PATTERN,
    SUBMISSIONS_PATTERN,
    TOPICS,
    check_partner_id,
    dlq_topic,
    partner_topic_partitions,
    partner_topics,
    rejections_topic,
    resolve,
    shared_topic_names,
    shared_topic_partitions,
    submissions_topic,
)


def test_the_registry_lists_the_architecture_topics() -> None:
    assert set(TOPICS) == {
        "volunteers",
        "cases",
        "facilities",
        "matches",
        "notifications",
        "partner.<partner-id>.submissions",
        "partner.<partner-id>.rejections",
    }
    assert all(spec.partitions == DEFAULT_PARTITIONS == 12 for spec in TOPICS.values())
    assert TOPICS["matches"].key_field == TOPICS["cases"].key_field == "case_id"
    assert TOPICS["volunteers"].key_field == "volunteer_id"
    assert TOPICS["facilities"].key_field == "facility_code"


def test_partner_topics_and_dlq_names() -> None:
    assert submissions_topic("stewart-project") == "partner.stewart-project.submissions"
    assert rejections_topic("stewart-project") == "partner.stewart-project.rejections"
    assert partner_topics("ab") == ("partner.ab.submissions", "partner.ab.rejections")
    assert dlq_topic("cases") == "cases.dlq"
    assert "cases.dlq" in shared_topic_names()
    assert "cases.dlq" not in shared_topic_names(with_dlq=False)
    assert not any(name.startswith("partner.") for name in shared_topic_names())


@pytest.mark.parametrize("bad", ["a", "A-corp", "acme_corp", "acme.corp", "x" * 41, "", "acme corp"])
def test_partner_ids_are_slugs(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid partner id"):
        check_partner_id(bad)
    with pytest.raises(ValueError, match="invalid partner id"):
        submissions_topic(bad)


def test_subscription_patterns_match_every_partner_and_nothing_else() -> None:
    submissions = re.compile(SUBMISSIONS_PATTERN)
    assert submissions.match(submissions_topic("acme"))
    assert not submissions.match(rejections_topic("acme"))
    assert not submissions.match("partner.acme.submissions.dlq")
    assert not submissions.match("partner.Bad_Id.submissions")
    assert re.match(REJECTIONS_PATTERN, rejections_topic("acme-2"))


def test_resolve_finds_the_family_partner_and_dlq() -> None:
    cases = resolve("cases")
    assert cases is not None
    assert (cases.spec.name, cases.partner_id, cases.dlq) == ("cases", None, False)
    sub = resolve("partner.acme.submissions.dlq")
    assert sub is not None
    assert (sub.spec.name, sub.partner_id, sub.dlq) == ("partner.<partner-id>.submissions", "acme", True)
    assert resolve("partner.Bad_Id.submissions") is None
    assert resolve("test-0a1b2c") is None


def test_partition_maps_for_creating_topics() -> None:
    shared = shared_topic_partitions()
    assert shared["cases"] == shared["cases.dlq"] == 12
    assert set(shared) == set(shared_topic_names())
    assert set(shared_topic_partitions(3).values()) == {3}
    assert partner_topic_partitions("acme", 2) == {
        "partner.acme.submissions": 2,
        "partner.acme.rejections": 2,
        "partner.acme.submissions.dlq": 2,
        "partner.acme.rejections.dlq": 2,
    }
