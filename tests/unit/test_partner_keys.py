"""Partner API keys without a database: their shape, hash, comparison and parsing; partner fields."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from lastline_intake.partners import (
    ApiKey,
    NewPartner,
    PartnerKind,
    generate_key,
    hash_key,
    key_matches,
    parse_key,
)


def test_generated_key_reads_prefix_key_id_and_secret() -> None:
    key = generate_key()
    assert key.plaintext == f"ll_{key.key_id}_{key.secret}"
    assert len(key.key_id) == 16
    assert all(c in "0123456789abcdef" for c in key.key_id)
    assert len(key.secret) == 43  # token_urlsafe(32): 32 random bytes


def test_generated_keys_differ() -> None:
    keys = {generate_key().plaintext for _ in range(200)}
    ids = {parse_key(k).key_id for k in keys}  # type: ignore[union-attr]
    assert len(keys) == 200
    assert len(ids) == 200


def test_parse_round_trips_even_when_the_secret_contains_underscores() -> None:
    key = ApiKey(key_id="0123456789abcdef", secret="_" * 10 + "-" * 10 + "a" * 23)
    assert parse_key(key.plaintext) == key


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "ll_",
        "ll_0123456789abcdef_",
        "ll_0123456789abcdef_" + "a" * 42,  # secret one short
        "ll_0123456789abcdef_" + "a" * 44,  # one long
        "ll_0123456789ABCDEF_" + "a" * 43,  # key id upper case
        "ll_0123456789abcde_" + "a" * 44,  # key id one short
        "xx_0123456789abcdef_" + "a" * 43,  # wrong prefix
        "ll-0123456789abcdef-" + "a" * 43,
        "ll_0123456789abcdef_" + "a" * 42 + "=",  # padding is not in the alphabet
        "ll_0123456789abcdef_" + "a" * 42 + "\n",
        " ll_0123456789abcdef_" + "a" * 43,
        "Bearer ll_0123456789abcdef_" + "a" * 43,
    ],
)
def test_parse_rejects_anything_not_shaped_like_a_key(presented: str) -> None:
    assert parse_key(presented) is None


def test_hash_is_sha256_of_the_whole_key() -> None:
    key = generate_key()
    assert hash_key(key.plaintext) == hashlib.sha256(key.plaintext.encode()).digest()
    assert key.secret.encode() not in hash_key(key.plaintext)


def test_key_matches_only_its_own_hash() -> None:
    key, other = generate_key(), generate_key()
    stored = hash_key(key.plaintext)
    assert key_matches(key.plaintext, stored)
    assert not key_matches(other.plaintext, stored)
    # Same key id, different secret: the id alone does not open anything.
    forged = ApiKey(key.key_id, other.secret).plaintext
    assert not key_matches(forged, stored)


def test_new_partner_normalises_and_accepts_good_fields() -> None:
    partner = NewPartner(
        partner_id="south-tx-clinic",
        name="  South Texas Clinic ",
        kind="clinic",
        contact_email="Coordinator@Example.ORG",
    )
    assert partner.name == "South Texas Clinic"
    assert partner.kind is PartnerKind.clinic
    assert partner.contact_email == "Coordinator@example.org"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("partner_id", "South_TX"),
        ("partner_id", "x"),
        ("partner_id", "a" * 41),
        ("name", "   "),
        ("kind", "consulate"),
        ("contact_email", "not-an-email"),
    ],
)
def test_new_partner_rejects_bad_fields(field: str, value: str) -> None:
    fields = {
        "partner_id": "south-tx-clinic",
        "name": "South Texas Clinic",
        "kind": "clinic",
        "contact_email": "coordinator@example.org",
    }
    with pytest.raises(ValidationError) as info:
        NewPartner(**(fields | {field: value}))
    assert [e["loc"] for e in info.value.errors()] == [(field,)]
