# ruff: noqa: E501  (generated DDL)
"""Projections (volunteers, cases, placements, held events), deliveries, webhook subscriptions, inbox.

A snapshot of the schema at this revision, written as the DDL it runs (``snapshot_ddl``) (see
``lastline_notifications.tables`` for what each table is for): it must not change when the table
definitions move on.
"""

from lastline_shared.migrations import drop_tables, execute_ddl

revision = "0002"
down_revision = "0001"

DDL = """
CREATE TABLE volunteers (
    volunteer_id UUID NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    language TEXT NOT NULL,
    status TEXT NOT NULL,
    event_time TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_volunteers PRIMARY KEY (volunteer_id),
    CONSTRAINT ck_volunteers_status CHECK (status IN ('active', 'withdrawn'))
);
CREATE TABLE cases (
    case_id UUID NOT NULL,
    status TEXT NOT NULL,
    facility_code TEXT NOT NULL,
    court_code TEXT NOT NULL,
    case_type TEXT NOT NULL,
    languages TEXT[] NOT NULL,
    next_hearing_date DATE,
    referrals JSONB NOT NULL,
    event_time TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_cases PRIMARY KEY (case_id),
    CONSTRAINT ck_cases_status CHECK (status IN ('open', 'closed'))
);
CREATE TABLE placements (
    match_id UUID NOT NULL,
    case_id UUID NOT NULL,
    volunteer_id UUID NOT NULL,
    role TEXT NOT NULL,
    mentor_id UUID,
    active BOOLEAN NOT NULL,
    made_at TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_placements PRIMARY KEY (match_id)
);
CREATE INDEX ix_placements_case_id ON placements (case_id);
CREATE INDEX ix_placements_volunteer_id ON placements (volunteer_id) WHERE active;
CREATE TABLE held_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY,
    case_id UUID NOT NULL,
    event_id TEXT NOT NULL,
    source TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_time TIMESTAMP WITH TIME ZONE NOT NULL,
    data TEXT NOT NULL,
    CONSTRAINT pk_held_events PRIMARY KEY (id)
);
CREATE INDEX ix_held_events_case_id_id ON held_events (case_id, id);
CREATE TABLE deliveries (
    notification_id UUID NOT NULL,
    source_event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    channel TEXT NOT NULL,
    destination TEXT NOT NULL,
    recipient_kind TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    template TEXT NOT NULL,
    case_id UUID,
    context JSONB NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER DEFAULT '0' NOT NULL,
    next_attempt_at TIMESTAMP WITH TIME ZONE NOT NULL,
    claim_token UUID,
    failure TEXT,
    last_error TEXT,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    finished_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT pk_deliveries PRIMARY KEY (notification_id),
    CONSTRAINT ck_deliveries_status CHECK (status IN ('pending', 'sending', 'sent', 'failed'))
);
CREATE INDEX ix_deliveries_channel_next_attempt_at ON deliveries (channel, next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX ix_deliveries_destination_next_attempt_at ON deliveries (destination, next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX ix_deliveries_status_created_at ON deliveries (status, created_at) WHERE status = 'failed';
CREATE UNIQUE INDEX uq_deliveries_once ON deliveries (source_event_id, channel, recipient_id, template, destination);
CREATE TABLE webhook_subscriptions (
    subscription_id UUID NOT NULL,
    partner_id TEXT NOT NULL,
    url TEXT NOT NULL,
    kinds TEXT[] NOT NULL,
    secret TEXT NOT NULL,
    active BOOLEAN DEFAULT true NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    disabled_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT pk_webhook_subscriptions PRIMARY KEY (subscription_id)
);
CREATE INDEX ix_webhook_subscriptions_partner_id ON webhook_subscriptions (partner_id) WHERE active;
CREATE TABLE inbox_items (
    item_id BIGINT GENERATED ALWAYS AS IDENTITY,
    kind TEXT NOT NULL,
    source_event_id TEXT NOT NULL,
    case_id UUID,
    facility_code TEXT,
    partner_id TEXT,
    level INTEGER,
    next_hearing_date DATE,
    title TEXT NOT NULL,
    details JSONB NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    done_at TIMESTAMP WITH TIME ZONE,
    done_by TEXT,
    CONSTRAINT pk_inbox_items PRIMARY KEY (item_id),
    CONSTRAINT ck_inbox_items_kind CHECK (kind IN ('escalation', 'placement', 'rejection', 'delivery_failed', 'match_ended'))
);
CREATE INDEX ix_inbox_items_kind_level_next_hearing_date ON inbox_items (kind, level, next_hearing_date) WHERE done_at IS NULL;
CREATE UNIQUE INDEX uq_inbox_items_once ON inbox_items (source_event_id, kind);
"""

TABLES = (
    "inbox_items",
    "webhook_subscriptions",
    "deliveries",
    "held_events",
    "placements",
    "cases",
    "volunteers",
)


def upgrade() -> None:
    execute_ddl(DDL)


def downgrade() -> None:
    drop_tables(*TABLES)
