"""PII encryption at rest (AES-256-GCM with a keyring) and blind indexes."""

from __future__ import annotations

import base64
from datetime import date
from uuid import UUID

import pytest

from lastline_intake.pii import (
    FORMAT_VERSION,
    NONCE_BYTES,
    TAG_BYTES,
    DecryptionError,
    Keyring,
    PiiError,
    UnknownKeyError,
    blind_index,
    decode_key,
    generate_key,
    key_id_of,
)
from lastline_shared.contracts.submissions import Client, ClientContact

K1, K2 = generate_key(), generate_key()
AAD = b"case:6f1c1d2e-8a57-4f0e-9a43-1b7f6f4b2c01"
SECRET = "Ixchel Pérez Tzoc, A201234567".encode()


def ring(active: str = "k1", **keys: str) -> Keyring:
    return Keyring.from_settings(keys or {"k1": K1}, active_key_id=active)


def test_round_trip() -> None:
    keyring = ring()
    blob = keyring.encrypt(SECRET, aad=AAD)
    assert keyring.decrypt(blob, aad=AAD) == SECRET
    assert SECRET not in blob


def test_blob_describes_itself() -> None:
    blob = ring().encrypt(SECRET, aad=AAD)
    assert blob[0] == FORMAT_VERSION
    assert blob[1:4] == b"\x02k1"
    assert key_id_of(blob) == "k1"
    assert len(blob) == 4 + NONCE_BYTES + len(SECRET) + TAG_BYTES


def test_each_encryption_has_its_own_nonce() -> None:
    keyring = ring()
    blobs = {keyring.encrypt(SECRET, aad=AAD) for _ in range(50)}
    assert len(blobs) == 50
    assert len({blob[4 : 4 + NONCE_BYTES] for blob in blobs}) == 50


def test_empty_plaintext_round_trips() -> None:
    keyring = ring()
    assert keyring.decrypt(keyring.encrypt(b"", aad=AAD), aad=AAD) == b""


def test_wrong_aad_fails() -> None:
    keyring = ring()
    blob = keyring.encrypt(SECRET, aad=AAD)
    with pytest.raises(DecryptionError, match="another row"):
        keyring.decrypt(blob, aad=b"case:another")


def test_aad_is_required() -> None:
    keyring = ring()
    with pytest.raises(ValueError, match="aad"):
        keyring.encrypt(SECRET, aad=b"")
    with pytest.raises(ValueError, match="aad"):
        keyring.decrypt(keyring.encrypt(SECRET, aad=AAD), aad=b"")


@pytest.mark.parametrize(
    "position",
    [
        0,  # version
        1,  # key id length
        2,  # key id
        4,  # nonce
        4 + NONCE_BYTES,  # ciphertext
        -1,  # tag
    ],
)
def test_any_changed_byte_fails(position: int) -> None:
    keyring = ring()
    blob = bytearray(keyring.encrypt(SECRET, aad=AAD))
    blob[position] ^= 0x01
    with pytest.raises(PiiError):
        keyring.decrypt(bytes(blob), aad=AAD)


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x02\x02k1" + bytes(40), b"\x01\x02k1" + bytes(20)])
def test_malformed_blobs_fail_cleanly(blob: bytes) -> None:
    with pytest.raises(DecryptionError):
        ring().decrypt(blob, aad=AAD)


def test_the_same_key_id_with_other_key_bytes_fails() -> None:
    blob = ring().encrypt(SECRET, aad=AAD)
    with pytest.raises(DecryptionError):
        ring(k1=K2).decrypt(blob, aad=AAD)


def test_rotation_old_keys_still_decrypt_new_writes_use_the_active_key() -> None:
    old_blob = ring().encrypt(SECRET, aad=AAD)
    rotated = ring("k2", k1=K1, k2=K2)
    assert rotated.decrypt(old_blob, aad=AAD) == SECRET
    assert rotated.needs_reencryption(old_blob)
    new_blob = rotated.encrypt(rotated.decrypt(old_blob, aad=AAD), aad=AAD)
    assert key_id_of(new_blob) == "k2"
    assert not rotated.needs_reencryption(new_blob)
    # Once every row is re-encrypted, the old key can go.
    assert ring("k2", k2=K2).decrypt(new_blob, aad=AAD) == SECRET


def test_unknown_key_id_is_its_own_error() -> None:
    blob = ring().encrypt(SECRET, aad=AAD)
    with pytest.raises(UnknownKeyError, match="'k1'"):
        ring("k2", k2=K2).decrypt(blob, aad=AAD)


@pytest.mark.parametrize(
    ("keys", "active", "problem"),
    [
        ({"k1": K1}, "k2", "active key id"),
        ({"k1": "not base64!"}, "k1", "not valid base64"),
        ({"k1": base64.b64encode(bytes(16)).decode()}, "k1", "32 bytes"),
        ({"bad id": K1}, "bad id", "key id"),
        ({"": K1}, "", "key id"),
    ],
)
def test_settings_are_checked(keys: dict[str, str], active: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Keyring.from_settings(keys, active_key_id=active)


def test_repr_shows_ids_not_keys() -> None:
    keyring = ring("k2", k1=K1, k2=K2)
    assert repr(keyring) == "Keyring(active_key_id='k2', key_ids=['k1', 'k2'])"
    assert keyring.key_ids == frozenset({"k1", "k2"})
    assert keyring.active_key_id == "k2"


def test_json_helpers_round_trip_dicts_and_models() -> None:
    keyring = ring()
    record = {"name": "Ixchel", "born": date(1994, 7, 3), "id": UUID(int=1), "aliases": ["Ixchel P."]}
    blob = keyring.encrypt_json(record, aad=AAD)
    assert keyring.decrypt_json(blob, aad=AAD) == {
        "name": "Ixchel",
        "born": "1994-07-03",
        "id": "00000000-0000-0000-0000-000000000001",
        "aliases": ["Ixchel P."],
    }
    client = Client(
        given_name="Ixchel",
        family_name="Pérez Tzoc",
        a_number="A201234567",
        date_of_birth=date(1994, 7, 3),
        contact=ClientContact(phone="+1 229 555 0142"),
    )
    blob = keyring.encrypt_json(client, aad=AAD)
    assert b"Ixchel" not in blob
    assert keyring.decrypt_model(blob, Client, aad=AAD) == client
    with pytest.raises(DecryptionError):
        keyring.decrypt_model(blob, Client, aad=b"case:another")


def test_generate_key_makes_distinct_256_bit_keys() -> None:
    assert len(decode_key(K1)) == 32
    assert K1 != K2
    assert len({generate_key() for _ in range(20)}) == 20


def test_blind_index_is_stable_and_key_dependent() -> None:
    key, other = decode_key(K1), decode_key(K2)
    index = blind_index("201234567", key)
    assert index == blind_index("201234567", key)
    assert len(index) == 64
    assert int(index, 16) >= 0  # hex
    assert "201234567" not in index
    assert blind_index("201234567", other) != index
    assert blind_index("201234568", key) != index
    assert blind_index("dana@example.org", key) != blind_index("Dana@example.org", key)  # normalise first


def test_blind_index_refuses_short_keys() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        blind_index("201234567", b"short")
