# ruff: noqa: E501  (generated DDL)
"""Generations of read-model tables and the pointer to the current one.

A snapshot of the schema at this revision, written as the DDL it runs (``snapshot_ddl``; see
``lastline_reporting.tables``): it must not change when the tables move on. The read-model tables
themselves are created per generation by the code that fills them (``lastline_reporting.readmodel``).
"""

from lastline_shared.migrations import drop_tables, execute_ddl

revision = "0002"
down_revision = "0001"

DDL = """
CREATE TABLE generations (
    generation INTEGER NOT NULL,
    model_version INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    swapped_at TIMESTAMP WITH TIME ZONE,
    events BIGINT,
    CONSTRAINT pk_generations PRIMARY KEY (generation),
    CONSTRAINT ck_generations_status CHECK (status IN ('building', 'current', 'retired', 'dropped', 'failed'))
);
CREATE TABLE current_generation (
    singleton BOOLEAN DEFAULT true NOT NULL,
    generation INTEGER NOT NULL,
    CONSTRAINT pk_current_generation PRIMARY KEY (singleton),
    CONSTRAINT ck_current_generation_singleton CHECK (singleton),
    CONSTRAINT fk_current_generation_generation_generations FOREIGN KEY(generation) REFERENCES generations (generation)
);
"""

TABLES = ("current_generation", "generations")


def upgrade() -> None:
    execute_ddl(DDL)


def downgrade() -> None:
    drop_tables(*TABLES)
