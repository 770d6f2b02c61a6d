"""Cases waiting for a decision, claimed by the decision loops.

A snapshot of the schema at this revision (``snapshot_ddl``; see ``lastline_matching.tables``).
"""

from lastline_shared.migrations import drop_tables, execute_ddl

revision = "0003"
down_revision = "0002"

DDL = """
CREATE TABLE pending_cases (
    case_id UUID NOT NULL,
    due_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    attempts INTEGER DEFAULT '0' NOT NULL,
    CONSTRAINT pk_pending_cases PRIMARY KEY (case_id)
);
CREATE INDEX ix_pending_cases_due_at ON pending_cases (due_at);
"""


def upgrade() -> None:
    execute_ddl(DDL)


def downgrade() -> None:
    drop_tables("pending_cases")
