"""Facility status, placements (from matching), and the audit logs of case packets and quarantine reads.

A snapshot of the schema at this revision, written as the DDL it runs (``snapshot_ddl``) (see
``lastline_intake.facilities``, ``.packets`` and ``.quarantine`` for what each table is for): it must
not change when the table definitions move on.
"""

from lastline_shared.migrations import drop_tables, execute_ddl

revision = "0004"
down_revision = "0003"

DDL = """
CREATE TABLE facility_status (
    facility_code TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    note TEXT,
    changed_by TEXT NOT NULL,
    changed_at TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_facility_status PRIMARY KEY (facility_code),
    CONSTRAINT ck_facility_status_status CHECK (status IN ('open', 'paused')),
    CONSTRAINT ck_facility_status_paused_has_reason CHECK (status = 'open' OR reason IS NOT NULL)
);
CREATE TABLE placements (
    match_id UUID NOT NULL,
    case_id UUID NOT NULL,
    volunteer_id UUID NOT NULL,
    role TEXT NOT NULL,
    made_at TIMESTAMP WITH TIME ZONE,
    ended_at TIMESTAMP WITH TIME ZONE,
    end_reason TEXT,
    CONSTRAINT pk_placements PRIMARY KEY (match_id)
);
CREATE INDEX ix_placements_case_id ON placements (case_id);
CREATE TABLE packet_access_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY,
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    case_id UUID,
    volunteer_id UUID,
    match_id UUID,
    attested BOOLEAN DEFAULT false NOT NULL,
    attested_name TEXT,
    client_ip TEXT,
    user_agent TEXT,
    CONSTRAINT pk_packet_access_log PRIMARY KEY (id),
    CONSTRAINT ck_packet_access_log_action CHECK (action IN ('preview', 'open')),
    CONSTRAINT ck_packet_access_log_outcome CHECK (outcome IN ('granted', 'refused'))
);
CREATE INDEX ix_packet_access_log_case_id_at ON packet_access_log (case_id, at);
CREATE INDEX ix_packet_access_log_volunteer_id_at ON packet_access_log (volunteer_id, at);
CREATE TABLE quarantine_access_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY,
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    submission_id UUID NOT NULL,
    accessed_by TEXT NOT NULL,
    value_shown BOOLEAN NOT NULL,
    client_ip TEXT,
    CONSTRAINT pk_quarantine_access_log PRIMARY KEY (id)
);
CREATE INDEX ix_quarantine_access_log_submission_id_at ON quarantine_access_log (submission_id, at);
"""

TABLES = (
    "quarantine_access_log",
    "packet_access_log",
    "placements",
    "facility_status",
)


def upgrade() -> None:
    execute_ddl(DDL)


def downgrade() -> None:
    drop_tables(*TABLES)
