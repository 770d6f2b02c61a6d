"""The reporting service's wiring: settings, tables, consumers, figures, API, dashboard and live updates."""

from __future__ import annotations

from pathlib import Path

from lastline_reporting import api, consumers, dashboard
from lastline_reporting.consumers import Projector, Topics
from lastline_reporting.generations import Generations
from lastline_reporting.labels import Labels
from lastline_reporting.live import LiveUpdates
from lastline_reporting.registry import Reporting
from lastline_reporting.tables import ReportingTables
from lastline_shared.db import new_metadata
from lastline_shared.runtime import ServiceRuntime
from lastline_shared.settings import ReportingSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def build(
    settings: ReportingSettings, *, topics: Topics | None = None, labels: Labels | None = None
) -> ServiceRuntime:
    """A reporting runtime (tests and benchmarks build their own, on their own schema and topics)."""
    metadata = new_metadata()
    tables = ReportingTables(metadata)
    runtime = ServiceRuntime(settings, metadata, migrations_dir=MIGRATIONS)
    generations = Generations(tables, settings.db_schema)
    projector = Projector(generations)
    consumers.register(runtime, projector, topics or Topics())
    live = LiveUpdates(settings.database_url, projector.channel)
    runtime.add_task("live-updates", live.run)
    reporting = Reporting(runtime.engine, generations, labels)
    runtime.routers.append(api.build_router(reporting))
    runtime.routers.append(dashboard.build_router(dashboard.Dashboard(reporting, live)))
    return runtime


settings = ReportingSettings()
runtime = build(settings)
metadata = runtime.metadata
asyncapi = runtime.asyncapi  # for `faststream docs gen lastline_reporting.app:asyncapi`
