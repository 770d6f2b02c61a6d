"""The intake service's wiring: its settings, tables and runtime."""

from pathlib import Path

from lastline_intake.partners import PartnerRepository
from lastline_shared.contracts.topics import CASES, FACILITIES, PARTNER_REJECTIONS, VOLUNTEERS
from lastline_shared.db import new_metadata
from lastline_shared.runtime import ServiceRuntime
from lastline_shared.settings import IntakeSettings

settings = IntakeSettings()
metadata = new_metadata()
partners = PartnerRepository(metadata)
runtime = ServiceRuntime(settings, metadata, migrations_dir=Path(__file__).parent / "migrations")
runtime.publishes(VOLUNTEERS, CASES, FACILITIES, PARTNER_REJECTIONS)
asyncapi = runtime.asyncapi  # for `faststream docs gen lastline_intake.app:asyncapi`
