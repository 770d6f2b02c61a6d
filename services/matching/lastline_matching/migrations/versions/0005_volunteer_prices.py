"""The last global pass's dual price per volunteer, read by online decisions.

A snapshot of the schema at this revision (``snapshot_ddl``; see ``lastline_matching.tables``).
"""

from lastline_shared.migrations import drop_tables, execute_ddl

revision = "0005"
down_revision = "0004"

DDL = """
CREATE TABLE volunteer_prices (
    volunteer_id UUID NOT NULL,
    price FLOAT NOT NULL,
    CONSTRAINT pk_volunteer_prices PRIMARY KEY (volunteer_id)
);
"""


def upgrade() -> None:
    execute_ddl(DDL)


def downgrade() -> None:
    drop_tables("volunteer_prices")
