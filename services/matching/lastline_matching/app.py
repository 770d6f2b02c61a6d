"""The matching service's wiring: its settings, tables, service layer, consumers, timers and HTTP."""

from datetime import timedelta
from pathlib import Path

from lastline_matching import consumers, responses, staff, timers
from lastline_matching.choosing import Chooser
from lastline_matching.placement import Placement, Timing
from lastline_matching.pools import LivePools
from lastline_matching.reoptimise import PassLimits, Reoptimiser
from lastline_matching.store import MatchingStore
from lastline_matching.tables import MatchingTables
from lastline_shared.clock import network_today
from lastline_shared.contracts.topics import MATCHES
from lastline_shared.db import new_metadata
from lastline_shared.runtime import ServiceRuntime
from lastline_shared.settings import MatchingSettings

settings = MatchingSettings()
metadata = new_metadata()
tables = MatchingTables(metadata)
runtime = ServiceRuntime(settings, metadata, migrations_dir=Path(__file__).parent / "migrations")
runtime.publishes(MATCHES)
placement = Placement(
    MatchingStore(tables, mentor_capacity=settings.mentor_capacity, schema=settings.db_schema),
    runtime.outbox,
    Chooser(today=network_today(settings.network_timezone), mentor_capacity=settings.mentor_capacity),
    timing=Timing(
        base=timedelta(hours=settings.proposal_ttl_hours),
        floor=timedelta(hours=settings.proposal_ttl_floor_hours),
        share=settings.proposal_ttl_share,
        urgent_days=settings.urgent_days,
        urgent_fanout=settings.urgent_fanout,
    ),
    today=network_today(settings.network_timezone),
    pools=LivePools(
        tables, mentor_capacity=settings.mentor_capacity, rebuild_every_s=settings.pool_rebuild_every_s
    ),
)
consumers.register(runtime, placement)
timers.register(
    runtime,
    placement,
    expiry_every_s=settings.expiry_check_every_s,
    escalation_every_s=settings.escalation_check_every_s,
    decision_loops=settings.decision_loops,
    decision_batch=settings.decision_batch,
    reoptimiser=Reoptimiser(
        placement,
        limits=PassLimits(
            budget_s=settings.reoptimise_budget_s,
            max_cases=settings.reoptimise_max_cases,
            keep_bonus=settings.reoptimise_keep_bonus,
            pricing_days=settings.reoptimise_pricing_days,
            max_changes=settings.reoptimise_max_changes,
        ),
        schema=settings.db_schema,
    ),
    reoptimise_every_s=settings.reoptimise_every_s,
)
runtime.routers.append(
    responses.build_router(sessions=runtime.sessions, placement=placement, settings=settings)
)
runtime.routers.append(staff.build_router(sessions=runtime.sessions, placement=placement))
asyncapi = runtime.asyncapi  # for `faststream docs gen lastline_matching.app:asyncapi`
