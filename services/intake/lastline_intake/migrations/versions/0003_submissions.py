# ruff: noqa: E501  (generated DDL)
"""Submissions, quarantine, volunteers, cases, partners' references to them, held updates.

A snapshot of the schema at this revision, written as the DDL it runs (``snapshot_ddl``) (see ``lastline_intake.tables``
for what each table is for): it must not change when the table definitions move on.
"""

from lastline_shared.migrations import drop_tables, execute_ddl

revision = "0003"
down_revision = "0002"

DDL = """
CREATE TABLE submissions (
    submission_id UUID NOT NULL,
    partner_id TEXT,
    event_id TEXT,
    event_type TEXT,
    external_id TEXT,
    channel TEXT NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    record_kind TEXT,
    record_id UUID,
    reasons JSONB,
    decided_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT pk_submissions PRIMARY KEY (submission_id),
    CONSTRAINT ck_submissions_status CHECK (status IN ('processing', 'accepted', 'held', 'rejected'))
);
CREATE UNIQUE INDEX ix_submissions_partner_id_event_id ON submissions (partner_id, event_id);
CREATE INDEX ix_submissions_partner_id_received_at ON submissions (partner_id, received_at);
CREATE TABLE quarantine (
    submission_id UUID NOT NULL,
    partner_id TEXT,
    channel TEXT NOT NULL,
    topic TEXT,
    partition INTEGER,
    "offset" BIGINT,
    record_key BYTEA,
    headers JSONB NOT NULL,
    value_encrypted BYTEA,
    value_bytes INTEGER NOT NULL,
    reasons JSONB NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    reviewed_at TIMESTAMP WITH TIME ZONE,
    reviewed_by TEXT,
    review_note TEXT,
    CONSTRAINT pk_quarantine PRIMARY KEY (submission_id),
    CONSTRAINT fk_quarantine_submission_id_submissions FOREIGN KEY(submission_id) REFERENCES submissions (submission_id) ON DELETE CASCADE
);
CREATE INDEX ix_quarantine_received_at ON quarantine (received_at) WHERE reviewed_at IS NULL;
CREATE TABLE volunteers (
    volunteer_id UUID NOT NULL,
    email_key TEXT NOT NULL,
    status TEXT NOT NULL,
    profile JSONB NOT NULL,
    version INTEGER NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_volunteers PRIMARY KEY (volunteer_id),
    CONSTRAINT ck_volunteers_status CHECK (status IN ('active', 'withdrawn')),
    CONSTRAINT uq_volunteers_email_key UNIQUE (email_key)
);
CREATE TABLE volunteer_refs (
    partner_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    volunteer_id UUID NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_volunteer_refs PRIMARY KEY (partner_id, external_id),
    CONSTRAINT fk_volunteer_refs_volunteer_id_volunteers FOREIGN KEY(volunteer_id) REFERENCES volunteers (volunteer_id)
);
CREATE INDEX ix_volunteer_refs_volunteer_id ON volunteer_refs (volunteer_id);
CREATE TABLE cases (
    case_id UUID NOT NULL,
    status TEXT NOT NULL,
    a_number_index TEXT,
    facts JSONB NOT NULL,
    pii BYTEA,
    pii_key_id TEXT,
    outcome TEXT,
    closed_on DATE,
    pii_erased_at TIMESTAMP WITH TIME ZONE,
    version INTEGER NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_cases PRIMARY KEY (case_id),
    CONSTRAINT ck_cases_status CHECK (status IN ('open', 'closed'))
);
CREATE INDEX ix_cases_closed_on ON cases (closed_on) WHERE status = 'closed' AND pii IS NOT NULL;
CREATE UNIQUE INDEX uq_cases_open_a_number ON cases (a_number_index) WHERE status = 'open' AND a_number_index IS NOT NULL;
CREATE TABLE case_refs (
    partner_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    case_id UUID NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_case_refs PRIMARY KEY (partner_id, external_id),
    CONSTRAINT fk_case_refs_case_id_cases FOREIGN KEY(case_id) REFERENCES cases (case_id)
);
CREATE INDEX ix_case_refs_case_id ON case_refs (case_id);
CREATE TABLE held_submissions (
    submission_id UUID NOT NULL,
    record_kind TEXT NOT NULL,
    partner_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_id TEXT NOT NULL,
    traceparent TEXT,
    payload BYTEA NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_held_submissions PRIMARY KEY (submission_id),
    CONSTRAINT ck_held_submissions_record_kind CHECK (record_kind IN ('case', 'volunteer')),
    CONSTRAINT fk_held_submissions_submission_id_submissions FOREIGN KEY(submission_id) REFERENCES submissions (submission_id) ON DELETE CASCADE
);
CREATE INDEX ix_held_submissions_partner_id_record_kind_external_id__ec8e ON held_submissions (partner_id, record_kind, external_id, received_at);
"""

TABLES = (
    "held_submissions",
    "case_refs",
    "cases",
    "volunteer_refs",
    "volunteers",
    "quarantine",
    "submissions",
)


def upgrade() -> None:
    execute_ddl(DDL)


def downgrade() -> None:
    drop_tables(*TABLES)
