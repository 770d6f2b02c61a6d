"""Every change to a volunteer's row takes a new ``version`` from a sequence (a trigger, so no write
can forget it): each matching instance keeps its in-memory pools in step by reading the rows past the
highest version it has seen (``lastline_matching.pools``)."""

from alembic import context, op

from lastline_shared.migrations import execute_ddl

revision = "0006"
down_revision = "0005"

DDL = """
CREATE SEQUENCE volunteer_versions;
ALTER TABLE volunteers ADD COLUMN version BIGINT NOT NULL DEFAULT nextval('volunteer_versions');
CREATE INDEX ix_volunteers_version ON volunteers (version)
"""

# Its own statement: the body holds semicolons. ``SET search_path FROM CURRENT`` keeps the service's
# schema for nextval() whatever the caller's search path (the services use a schema translate map).
FUNCTION = """
CREATE FUNCTION next_volunteer_version() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    NEW.version := nextval('volunteer_versions');
    RETURN NEW;
END
$$
"""

TRIGGER = """
CREATE TRIGGER volunteers_version BEFORE UPDATE ON volunteers
FOR EACH ROW EXECUTE FUNCTION next_volunteer_version()
"""


def upgrade() -> None:
    execute_ddl(DDL)
    op.execute(FUNCTION)
    op.execute(TRIGGER)


def downgrade() -> None:
    op.execute(f'SET LOCAL search_path TO "{context.config.attributes["schema"]}"')
    op.execute("DROP TRIGGER volunteers_version ON volunteers")
    op.execute("DROP FUNCTION next_volunteer_version()")
    op.execute("ALTER TABLE volunteers DROP COLUMN version")
    op.execute("DROP SEQUENCE volunteer_versions")
