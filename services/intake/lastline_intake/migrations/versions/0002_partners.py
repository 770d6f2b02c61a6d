"""Partners and their API keys (hashes only).

Written out rather than built from ``lastline_intake.partners``: a migration is a snapshot of the
schema at this revision and must not change when the table definitions move on.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("partner_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("contact_email", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.PrimaryKeyConstraint("partner_id", name=op.f("pk_partners")),
        sa.CheckConstraint("partner_id ~ '^[a-z0-9-]{2,40}$'", name=op.f("ck_partners_partner_id")),
        sa.CheckConstraint(
            "kind IN ('detention-project', 'law-firm', 'clinic', 'bar-association', 'other')",
            name=op.f("ck_partners_kind"),
        ),
    )
    op.create_table(
        "partner_api_keys",
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("partner_id", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_partner_api_keys")),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.partner_id"],
            name=op.f("fk_partner_api_keys_partner_id_partners"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_partner_api_keys_partner_id"), "partner_api_keys", ["partner_id"])


def downgrade() -> None:
    op.drop_table("partner_api_keys")
    op.drop_table("partners")
