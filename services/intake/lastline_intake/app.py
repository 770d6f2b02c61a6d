"""The intake service's wiring: its settings, tables and runtime."""

from pathlib import Path

from lastline_intake import consumers, facilities, http_api, packets, quarantine, retention
from lastline_intake.partners import PartnerRepository
from lastline_intake.pii import Keyring, decode_key
from lastline_intake.processing import SubmissionProcessor
from lastline_intake.tables import IntakeTables
from lastline_shared.clock import network_today
from lastline_shared.contracts.topics import CASES, FACILITIES, PARTNER_REJECTIONS, VOLUNTEERS
from lastline_shared.db import new_metadata
from lastline_shared.runtime import ServiceRuntime
from lastline_shared.settings import IntakeSettings

settings = IntakeSettings()
metadata = new_metadata()
partners = PartnerRepository(metadata)
tables = IntakeTables(metadata)
keyring = Keyring.from_settings(
    {key_id: key.get_secret_value() for key_id, key in settings.pii_keys.items()}, settings.pii_active_key_id
)
index_key = decode_key(settings.pii_index_key.get_secret_value())
runtime = ServiceRuntime(settings, metadata, migrations_dir=Path(__file__).parent / "migrations")
runtime.publishes(VOLUNTEERS, CASES, FACILITIES, PARTNER_REJECTIONS)
processor = SubmissionProcessor(
    tables, partners, runtime.outbox, keyring, index_key, today=network_today(settings.network_timezone)
)
consumers.register(runtime, processor)
asyncapi = runtime.asyncapi  # for `faststream docs gen lastline_intake.app:asyncapi`
runtime.routers.append(
    http_api.build_router(sessions=runtime.sessions, processor=processor, partners=partners)
)
# Staff and volunteer endpoints: facility status, case packets, quarantine review; PII retention.
facilities.register(runtime)
packets.register(runtime, tables=tables, partners=partners, keyring=keyring, settings=settings)
quarantine.register(runtime, tables=tables, keyring=keyring)
pii_retention = retention.register(runtime, tables=tables, partners=partners, settings=settings)
