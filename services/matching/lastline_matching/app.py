"""The matching service's wiring: its settings, tables and runtime."""

from pathlib import Path

from lastline_matching.tables import MatchingTables
from lastline_shared.contracts.topics import MATCHES
from lastline_shared.db import new_metadata
from lastline_shared.runtime import ServiceRuntime
from lastline_shared.settings import MatchingSettings

settings = MatchingSettings()
metadata = new_metadata()
tables = MatchingTables(metadata)
runtime = ServiceRuntime(settings, metadata, migrations_dir=Path(__file__).parent / "migrations")
runtime.publishes(MATCHES)
asyncapi = runtime.asyncapi  # for `faststream docs gen lastline_matching.app:asyncapi`
