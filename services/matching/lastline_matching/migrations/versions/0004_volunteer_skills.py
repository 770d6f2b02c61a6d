"""The volunteer's skills as columns: the candidate query reads them without decoding the profile."""

from lastline_shared.migrations import execute_ddl

revision = "0004"
down_revision = "0003"

COLUMNS = {
    "practice_areas": "TEXT[] NOT NULL DEFAULT '{}'",
    "experience_level": "TEXT NOT NULL DEFAULT 'novice'",
    "federal_courts": "TEXT[] NOT NULL DEFAULT '{}'",
    "eoir_registered": "BOOLEAN NOT NULL DEFAULT false",
    "wants_mentor": "BOOLEAN NOT NULL DEFAULT false",
    "countries_of_expertise": "TEXT[] NOT NULL DEFAULT '{}'",
    "registered_partner": "TEXT",
}


def upgrade() -> None:
    added = ";".join(
        f"ALTER TABLE volunteers ADD COLUMN {name} {definition}" for name, definition in COLUMNS.items()
    )
    # Rows projected before this revision: filled from the profile they carry.
    execute_ddl(
        added
        + """;
        UPDATE volunteers SET
            practice_areas = ARRAY(SELECT jsonb_array_elements_text(profile->'practice_areas')),
            experience_level = profile->>'experience_level',
            federal_courts = ARRAY(
                SELECT jsonb_array_elements_text(profile->'bar_admissions'->'federal_courts')
            ),
            eoir_registered = (profile->>'eoir_registered')::boolean,
            wants_mentor = (profile->>'wants_mentor')::boolean,
            countries_of_expertise = ARRAY(
                SELECT jsonb_array_elements_text(profile->'countries_of_expertise')
            ),
            registered_partner = profile->'registered_by'->>'partner_id'
        """
    )


def downgrade() -> None:
    execute_ddl(";".join(f"ALTER TABLE volunteers DROP COLUMN {name}" for name in COLUMNS))
