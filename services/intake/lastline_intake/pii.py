"""Client PII at rest: AES-256-GCM under a keyring, and blind indexes to find records without decrypting.

An encrypted blob describes itself::

    version (1 byte) | key id length (1 byte) | key id (ASCII) | nonce (12 bytes) | ciphertext + tag

(the tag is the last 16 bytes). The header and the caller's ``aad`` (the row the blob belongs to,
such as ``case:<case id>``) are authenticated with the ciphertext: a blob copied into another row, or
changed in any byte, does not decrypt. New blobs use the active key and every key in the ring still
decrypts, so a key rotates by adding a new key and making it active, re-encrypting old rows
(:meth:`Keyring.needs_reencryption`) at leisure, and only then removing the old key.

A blind index (HMAC-SHA256 under its own key) of a normalised value (an A-number, a volunteer's email)
finds duplicates with an equality lookup and reveals nothing without the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel
from pydantic_core import to_json

FORMAT_VERSION = 1
KEY_BYTES = 32
"""AES-256 keys, and the minimum for blind-index keys."""
NONCE_BYTES = 12
TAG_BYTES = 16
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

M = TypeVar("M", bound=BaseModel)


class PiiError(Exception):
    """A blob that cannot be decrypted. Messages never contain key material or plaintext."""


class UnknownKeyError(PiiError):
    """The blob was encrypted under a key id the keyring does not hold (removed too early?)."""


class DecryptionError(PiiError):
    """The blob is malformed, was changed, or belongs to another row (other ``aad``)."""


def generate_key() -> str:
    """A new random 256-bit key, base64-encoded, for settings (encryption or blind-index key)."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")


def decode_key(encoded: str) -> bytes:
    """The 32 bytes of a base64-encoded key; ``ValueError`` if it is not exactly that."""
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("key is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"key must be {KEY_BYTES} bytes (AES-256) once base64-decoded")
    return key


def _header(key_id: str) -> bytes:
    raw = key_id.encode("ascii")
    return bytes((FORMAT_VERSION, len(raw))) + raw


def key_id_of(blob: bytes) -> str:
    """The id of the key a blob was encrypted with (for re-encryption jobs); ``DecryptionError`` if
    the blob is not one of ours."""
    if len(blob) < 2 or blob[0] != FORMAT_VERSION:
        raise DecryptionError("not an encrypted blob of a known version")
    end = 2 + blob[1]
    if len(blob) < end + NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("encrypted blob is truncated")
    try:
        key_id = blob[2:end].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError("encrypted blob has a malformed key id") from None
    if not _KEY_ID.match(key_id):
        raise DecryptionError("encrypted blob has a malformed key id")
    return key_id


def _require_aad(aad: bytes) -> None:
    if not aad:
        raise ValueError("aad must name the row the blob belongs to (e.g. b'case:<id>')")


class Keyring:
    """The encryption keys by id and the one new blobs use."""

    __slots__ = ("_active_key_id", "_ciphers")

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        for key_id, key in keys.items():
            if not _KEY_ID.match(key_id):
                raise ValueError(f"key id {key_id!r} must be 1 to 64 of A-Z a-z 0-9 . _ -")
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id!r} must be {KEY_BYTES} bytes (AES-256)")
        if active_key_id not in keys:
            raise ValueError(f"the active key id {active_key_id!r} is not among the keys")
        self._active_key_id = active_key_id
        self._ciphers = MappingProxyType({key_id: AESGCM(key) for key_id, key in keys.items()})

    @classmethod
    def from_settings(cls, keys: Mapping[str, str], active_key_id: str) -> Keyring:
        """From settings: ``{key id: base64 key}`` (see :func:`generate_key`) and the active id."""
        decoded: dict[str, bytes] = {}
        for key_id, encoded in keys.items():
            try:
                decoded[key_id] = decode_key(encoded)
            except ValueError as error:
                raise ValueError(f"key {key_id!r}: {error}") from None
        return cls(decoded, active_key_id)

    def __repr__(self) -> str:
        return f"Keyring(active_key_id={self._active_key_id!r}, key_ids={sorted(self._ciphers)!r})"

    @property
    def active_key_id(self) -> str:
        return self._active_key_id

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._ciphers)

    def encrypt(self, plaintext: bytes, *, aad: bytes) -> bytes:
        """A self-describing blob of ``plaintext`` under the active key, bound to ``aad``."""
        _require_aad(aad)
        header = _header(self._active_key_id)
        # A random 96-bit nonce per blob: safe for far more blobs per key than intake will write.
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + self._ciphers[self._active_key_id].encrypt(nonce, plaintext, header + aad)

    def decrypt(self, blob: bytes, *, aad: bytes) -> bytes:
        """The plaintext of a blob from :meth:`encrypt` with the same ``aad``.

        Raises :class:`UnknownKeyError` if its key is not in the ring, :class:`DecryptionError` if it
        was changed, is malformed, or was bound to another ``aad``.
        """
        _require_aad(aad)
        key_id = key_id_of(blob)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyError(f"no key {key_id!r} in the keyring")
        nonce_at = 2 + blob[1]
        header, nonce = blob[:nonce_at], blob[nonce_at : nonce_at + NONCE_BYTES]
        try:
            return cipher.decrypt(nonce, blob[nonce_at + NONCE_BYTES :], header + aad)
        except InvalidTag:
            raise DecryptionError("the blob was changed or belongs to another row") from None

    def needs_reencryption(self, blob: bytes) -> bool:
        """Whether the blob was written under a key other than the active one."""
        return key_id_of(blob) != self._active_key_id

    def encrypt_json(self, value: BaseModel | Mapping[str, Any], *, aad: bytes) -> bytes:
        """A pydantic model or a dict (dates, UUIDs and enums allowed) as encrypted JSON."""
        raw = value.model_dump_json().encode() if isinstance(value, BaseModel) else to_json(value)
        return self.encrypt(raw, aad=aad)

    def decrypt_json(self, blob: bytes, *, aad: bytes) -> Any:
        """The JSON value of a blob from :meth:`encrypt_json` (dates and UUIDs come back as strings)."""
        return json.loads(self.decrypt(blob, aad=aad))

    def decrypt_model(self, blob: bytes, model: type[M], *, aad: bytes) -> M:
        """The pydantic model of a blob from :meth:`encrypt_json`, validated again."""
        return model.model_validate_json(self.decrypt(blob, aad=aad))


def blind_index(value: str, key: bytes) -> str:
    """HMAC-SHA256 of ``value`` under ``key`` (its own key, not an encryption key), as 64 hex digits.

    Equal values give equal indexes, so a unique index finds duplicates; normalise first
    (``rules.normalise_a_number``, ``rules.normalise_email``), since ``A-123...`` and ``123...`` differ.
    """
    if len(key) < KEY_BYTES:
        raise ValueError(f"blind-index key must be at least {KEY_BYTES} bytes")
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
