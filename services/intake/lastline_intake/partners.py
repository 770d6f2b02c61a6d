"""Partner organizations and their API keys.

A key reads ``ll_<key-id>_<secret>``: the key id is public (it names the key in listings and logs and
finds its row), the secret is 32 random bytes. The database keeps only a SHA-256 of the whole key, so
a leaked table does not leak working keys. The plaintext exists once, in what :meth:`issue_key` returns.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, StringConstraints
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    Row,
    Table,
    Text,
    func,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from lastline_shared.contracts.primitives import PARTNER_ID_PATTERN, Email
from lastline_shared.contracts.topics import check_partner_id

KEY_PREFIX = "ll"
_KEY = re.compile(rf"^{KEY_PREFIX}_(?P<key_id>[0-9a-f]{{16}})_(?P<secret>[A-Za-z0-9_-]{{43}})$")
"""16 hex digits of key id; ``token_urlsafe(32)`` is 43 characters of the URL-safe base64 alphabet."""

LAST_USED_RESOLUTION = timedelta(minutes=1)
"""``last_used_at`` is refreshed at most this often, so verifying a key is not a write per request."""


class PartnerKind(enum.StrEnum):
    detention_project = "detention-project"
    law_firm = "law-firm"
    clinic = "clinic"
    bar_association = "bar-association"
    other = "other"


# -- keys (pure functions) -----------------------------------------------------------------------


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    secret: str

    @property
    def plaintext(self) -> str:
        return f"{KEY_PREFIX}_{self.key_id}_{self.secret}"


def generate_key() -> ApiKey:
    return ApiKey(key_id=secrets.token_hex(8), secret=secrets.token_urlsafe(32))


def parse_key(presented: str) -> ApiKey | None:
    """The key's parts, or None if ``presented`` is not shaped like a Lastline key."""
    match = _KEY.match(presented)
    return ApiKey(match["key_id"], match["secret"]) if match else None


def hash_key(plaintext: str) -> bytes:
    # A plain SHA-256 is enough: the secret is 256 random bits, so there is nothing to brute-force
    # and no need for a slow password hash (bcrypt, argon2), which would cost on every request.
    return hashlib.sha256(plaintext.encode()).digest()


def key_matches(presented: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_key(presented), stored_hash)


# -- records -------------------------------------------------------------------------------------

DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class NewPartner(BaseModel):
    """What a partner is created with, checked before it reaches the database."""

    partner_id: Annotated[str, AfterValidator(check_partner_id)]
    name: DisplayName
    kind: PartnerKind
    contact_email: Email


@dataclass(frozen=True)
class Partner:
    partner_id: str
    name: str
    kind: PartnerKind
    contact_email: str
    created_at: datetime
    active: bool


@dataclass(frozen=True)
class KeyInfo:
    """A key as listings show it: never its hash."""

    key_id: str
    partner_id: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class PartnerError(Exception):
    """A partner operation refused, with a message meant for the person who asked."""


class PartnerExists(PartnerError):
    pass


class UnknownPartner(PartnerError):
    pass


class UnknownKey(PartnerError):
    pass


# -- tables and repository -----------------------------------------------------------------------


def partners_table(metadata: MetaData) -> Table:
    return Table(
        "partners",
        metadata,
        Column("partner_id", Text, primary_key=True),
        Column("name", Text, nullable=False),
        Column("kind", Text, nullable=False),
        Column("contact_email", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("active", Boolean, nullable=False, server_default=true()),
        CheckConstraint(f"partner_id ~ '{PARTNER_ID_PATTERN}'", name="partner_id"),
        CheckConstraint("kind IN ({})".format(", ".join(f"'{k.value}'" for k in PartnerKind)), name="kind"),
    )


def partner_api_keys_table(metadata: MetaData) -> Table:
    return Table(
        "partner_api_keys",
        metadata,
        Column("key_id", Text, primary_key=True),
        Column(
            "partner_id",
            Text,
            ForeignKey("partners.partner_id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("key_hash", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("revoked_at", DateTime(timezone=True), nullable=True),
        Column("last_used_at", DateTime(timezone=True), nullable=True),
        Index(None, "partner_id"),
    )


class PartnerRepository:
    """Partners and keys in intake's schema. Every method runs in the caller's transaction."""

    def __init__(self, metadata: MetaData) -> None:
        self.partners = partners_table(metadata)
        self.keys = partner_api_keys_table(metadata)

    async def create_partner(
        self,
        session: AsyncSession,
        partner_id: str,
        *,
        name: str,
        kind: PartnerKind | str,
        contact_email: str,
    ) -> Partner:
        """Raises pydantic's ``ValidationError`` for bad fields, ``PartnerExists`` for a taken id."""
        new = NewPartner(partner_id=partner_id, name=name, kind=kind, contact_email=contact_email)
        row = (
            await session.execute(
                insert(self.partners)
                .values(
                    partner_id=new.partner_id,
                    name=new.name,
                    kind=new.kind.value,
                    contact_email=new.contact_email,
                )
                .on_conflict_do_nothing(index_elements=["partner_id"])
                .returning(*self.partners.c)
            )
        ).one_or_none()
        if row is None:
            raise PartnerExists(f"partner {new.partner_id!r} already exists")
        return _partner(row)

    async def get_partner(self, session: AsyncSession, partner_id: str) -> Partner | None:
        row = (
            await session.execute(select(self.partners).where(self.partners.c.partner_id == partner_id))
        ).one_or_none()
        return _partner(row) if row else None

    async def list_partners(self, session: AsyncSession) -> list[Partner]:
        rows = await session.execute(select(self.partners).order_by(self.partners.c.partner_id))
        return [_partner(row) for row in rows]

    async def issue_key(self, session: AsyncSession, partner_id: str) -> str:
        """A new key for the partner; the returned plaintext is the only copy there will ever be."""
        if await self.get_partner(session, partner_id) is None:
            raise UnknownPartner(f"no partner {partner_id!r}")
        key = generate_key()
        await session.execute(
            insert(self.keys).values(
                key_id=key.key_id, partner_id=partner_id, key_hash=hash_key(key.plaintext)
            )
        )
        return key.plaintext

    async def verify_key(self, session: AsyncSession, presented: str) -> str | None:
        """The partner id a presented key belongs to, or None (malformed, unknown, revoked, or the
        partner is inactive). Records the key's use in the caller's transaction."""
        key = parse_key(presented)
        if key is None:
            return None
        k, p = self.keys, self.partners
        row = (
            await session.execute(
                select(k.c.partner_id, k.c.key_hash, k.c.last_used_at)
                .join(p, p.c.partner_id == k.c.partner_id)
                .where(k.c.key_id == key.key_id, k.c.revoked_at.is_(None), p.c.active.is_(True))
            )
        ).one_or_none()
        if row is None or not key_matches(presented, row.key_hash):
            return None
        if row.last_used_at is None or datetime.now(UTC) - row.last_used_at >= LAST_USED_RESOLUTION:
            await session.execute(update(k).where(k.c.key_id == key.key_id).values(last_used_at=func.now()))
        return str(row.partner_id)

    async def revoke_key(self, session: AsyncSession, key_id: str) -> KeyInfo:
        """Revoke a key by its id (revoking twice keeps the first time). Raises ``UnknownKey``."""
        k = self.keys
        await session.execute(
            update(k).where(k.c.key_id == key_id, k.c.revoked_at.is_(None)).values(revoked_at=func.now())
        )
        row = (await session.execute(select(*_key_columns(k)).where(k.c.key_id == key_id))).one_or_none()
        if row is None:
            raise UnknownKey(f"no API key {key_id!r}")
        return KeyInfo(**row._mapping)

    async def list_keys(self, session: AsyncSession, partner_id: str | None = None) -> list[KeyInfo]:
        k = self.keys
        query = select(*_key_columns(k)).order_by(k.c.partner_id, k.c.created_at, k.c.key_id)
        if partner_id is not None:
            query = query.where(k.c.partner_id == partner_id)
        return [KeyInfo(**row._mapping) for row in await session.execute(query)]


def _key_columns(keys: Table) -> tuple[Column[Any], ...]:
    c = keys.c
    return (c.key_id, c.partner_id, c.created_at, c.revoked_at, c.last_used_at)


def _partner(row: Row[Any]) -> Partner:
    values = dict(row._mapping)
    return Partner(**(values | {"kind": PartnerKind(values["kind"])}))
