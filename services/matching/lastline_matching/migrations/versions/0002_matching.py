"""Projections of volunteers, cases and facilities; proposals, matches and declines.

A snapshot of the schema at this revision, written as the DDL it runs (``snapshot_ddl``; see
``lastline_matching.tables`` for what each table is for): it must not change when the tables move on.
"""

from lastline_shared.migrations import drop_tables, execute_ddl

revision = "0002"
down_revision = "0001"

DDL = """
CREATE TABLE volunteers (
    volunteer_id UUID NOT NULL,
    status TEXT NOT NULL,
    profile JSONB NOT NULL,
    roles TEXT[] NOT NULL,
    languages TEXT[] NOT NULL,
    facilities_reachable TEXT[] NOT NULL,
    remote BOOLEAN NOT NULL,
    can_mentor BOOLEAN NOT NULL,
    max_active_cases INTEGER NOT NULL,
    active_cases INTEGER DEFAULT '0' NOT NULL,
    reserved INTEGER DEFAULT '0' NOT NULL,
    mentees INTEGER DEFAULT '0' NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_volunteers PRIMARY KEY (volunteer_id),
    CONSTRAINT ck_volunteers_status CHECK (status IN ('active', 'withdrawn')),
    CONSTRAINT ck_volunteers_counts CHECK (active_cases >= 0 AND reserved >= 0 AND mentees >= 0)
);
CREATE INDEX ix_volunteers_facilities_reachable ON volunteers USING gin (facilities_reachable);
CREATE INDEX ix_volunteers_languages ON volunteers USING gin (languages);
CREATE INDEX ix_volunteers_roles ON volunteers USING gin (roles);
CREATE TABLE cases (
    case_id UUID NOT NULL,
    status TEXT NOT NULL,
    facts JSONB NOT NULL,
    facility_code TEXT NOT NULL,
    next_hearing_date DATE,
    opened_at TIMESTAMP WITH TIME ZONE NOT NULL,
    placed_at TIMESTAMP WITH TIME ZONE,
    escalated_level SMALLINT,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_cases PRIMARY KEY (case_id),
    CONSTRAINT ck_cases_status CHECK (status IN ('open', 'placed', 'closed'))
);
CREATE INDEX ix_cases_next_hearing_date ON cases (next_hearing_date) WHERE status = 'open';
CREATE TABLE facilities (
    facility_code TEXT NOT NULL,
    paused BOOLEAN NOT NULL,
    reason TEXT,
    changed_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_facilities PRIMARY KEY (facility_code)
);
CREATE TABLE proposals (
    proposal_id UUID NOT NULL,
    case_id UUID NOT NULL,
    volunteer_id UUID NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    score FLOAT NOT NULL,
    components JSONB NOT NULL,
    reasons JSONB NOT NULL,
    mentor_needed BOOLEAN NOT NULL,
    attempt INTEGER NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
    decided_at TIMESTAMP WITH TIME ZONE,
    outcome_reason TEXT,
    CONSTRAINT pk_proposals PRIMARY KEY (proposal_id),
    CONSTRAINT ck_proposals_status CHECK (status IN ('open', 'accepted', 'declined', 'expired', 'retracted'))
);
CREATE INDEX ix_proposals_case_id ON proposals (case_id);
CREATE INDEX ix_proposals_expires_at ON proposals (expires_at) WHERE status = 'open';
CREATE INDEX ix_proposals_volunteer_id_status ON proposals (volunteer_id, status);
CREATE UNIQUE INDEX uq_proposals_open ON proposals (case_id, role, volunteer_id) WHERE status = 'open';
CREATE TABLE matches (
    match_id UUID NOT NULL,
    case_id UUID NOT NULL,
    volunteer_id UUID NOT NULL,
    role TEXT NOT NULL,
    proposal_id UUID,
    status TEXT NOT NULL,
    mentor_id UUID,
    overridden_by TEXT,
    made_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    ended_at TIMESTAMP WITH TIME ZONE,
    end_reason TEXT,
    CONSTRAINT pk_matches PRIMARY KEY (match_id),
    CONSTRAINT ck_matches_status CHECK (status IN ('active', 'ended'))
);
CREATE INDEX ix_matches_mentor_id ON matches (mentor_id) WHERE status = 'active';
CREATE INDEX ix_matches_volunteer_id_status ON matches (volunteer_id, status);
CREATE UNIQUE INDEX uq_matches_active ON matches (case_id, role) WHERE status = 'active';
CREATE TABLE declines (
    case_id UUID NOT NULL,
    volunteer_id UUID NOT NULL,
    reason TEXT NOT NULL,
    declined_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_declines PRIMARY KEY (case_id, volunteer_id)
);
"""

TABLES = ("declines", "matches", "proposals", "facilities", "cases", "volunteers")


def upgrade() -> None:
    execute_ddl(DDL)


def downgrade() -> None:
    drop_tables(*TABLES)
