"""The notifications service's wiring: its settings, tables and runtime."""

from pathlib import Path

from lastline_shared.contracts.topics import NOTIFICATIONS
from lastline_shared.db import new_metadata
from lastline_shared.runtime import ServiceRuntime
from lastline_shared.settings import NotificationsSettings

settings = NotificationsSettings()
metadata = new_metadata()
runtime = ServiceRuntime(settings, metadata, migrations_dir=Path(__file__).parent / "migrations")
runtime.publishes(NOTIFICATIONS)
asyncapi = runtime.asyncapi  # for `faststream docs gen lastline_notifications.app:asyncapi`
