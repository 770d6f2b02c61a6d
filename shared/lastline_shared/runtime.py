"""One service process: database, Kafka consumers, outbox relay and HTTP, started and stopped together.

Every service builds a :class:`ServiceRuntime`, registers its consumers with :meth:`consume`, and
serves :meth:`http_app` with uvicorn. Startup migrates the schema, ensures the topics exist, starts the
relay and the consumers; SIGTERM (through uvicorn's lifespan) stops consuming, lets in-flight batches
finish, drains the relay and closes connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, Union

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession

from lastline_shared import migrations
from lastline_shared.consumer import BatchHandler, EventProcessor, Handler, InvalidHandler
from lastline_shared.contracts.catalog import INTERNAL_BY_TYPE, SUBMISSION_BY_TYPE
from lastline_shared.contracts.envelope import encode
from lastline_shared.contracts.topics import TopicSpec, shared_topic_partitions
from lastline_shared.db import make_engine, make_session_factory, ping
from lastline_shared.inbox import Inbox, inbox_table
from lastline_shared.kafka_admin import ensure_topics
from lastline_shared.logging import configure_logging
from lastline_shared.metrics import ServiceMetrics
from lastline_shared.ops import create_http_app
from lastline_shared.outbox import Outbox, outbox_table
from lastline_shared.relay import OutboxRelay, make_producer
from lastline_shared.settings import ServiceSettings
from lastline_shared.subscriber import subscribe

log = structlog.get_logger(__name__)


class ServiceRuntime:
    def __init__(
        self,
        settings: ServiceSettings,
        metadata: MetaData,
        *,
        migrations_dir: Path,
        description: str = "",
    ) -> None:
        self.settings = settings
        self.name = settings.service_name
        self.source = f"/services/{self.name}"
        self.metadata = metadata
        self.migrations_dir = migrations_dir
        self.outbox = Outbox(outbox_table(metadata), settings.db_schema)
        self._inbox_table = inbox_table(metadata)
        self.engine = make_engine(settings.database_url, settings.db_schema)
        self.sessions = make_session_factory(self.engine)
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            client_id=f"lastline-{self.name}",
            logger=structlog.get_logger("faststream"),
            graceful_timeout=30.0,
            metadata_max_age_ms=settings.kafka_metadata_max_age_ms,
            log_level=logging.DEBUG,  # FastStream logs every message at this level; ours are enough
        )
        self.asyncapi = FastStream(
            self.broker,
            specification=AsyncAPI(title=f"Lastline {self.name}", description=description),
        )
        self.relay = OutboxRelay(
            self.engine,
            self.outbox,
            lambda: make_producer(settings.kafka_bootstrap_servers, f"lastline-{self.name}-relay"),
            database_url=settings.database_url,
            service=self.name,
            batch_size=settings.relay_batch_size,
            poll_interval_s=settings.relay_poll_interval_s,
        )
        self.processors: list[EventProcessor] = []
        self.routers: list[APIRouter] = []  # the service's own HTTP endpoints
        self._subscribers: list[Any] = []
        self._metrics = ServiceMetrics(self.name)
        self._relay_task: asyncio.Task[None] | None = None
        self._task_factories: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []

    # -- building ---------------------------------------------------------------------------

    def consume(
        self,
        *topics: str,
        handle: Handler | None = None,
        handle_batch: BatchHandler | None = None,
        on_invalid: InvalidHandler | None = None,
        pattern: str | None = None,
        name: str = "main",
        description: str | None = None,
    ) -> EventProcessor:
        """Register a consumer: one consumer group and one inbox identity per (service, name)."""
        consumer = f"{self.name}.{name}"
        processor = EventProcessor(
            consumer=consumer,
            service=self.name,
            session_factory=self.sessions,
            inbox=Inbox(self._inbox_table, consumer),
            outbox=self.outbox,
            handle=handle,
            handle_batch=handle_batch,
            on_invalid=on_invalid,
            max_retries=self.settings.consumer_max_retries,
            retry_backoff_s=self.settings.consumer_retry_backoff_s,
        )
        subscriber = subscribe(
            self.broker,
            processor,
            *topics,
            group_id=f"lastline-{consumer}",
            pattern=pattern,
            max_records=self.settings.consumer_max_records,
            description=description,
        )
        self.processors.append(processor)
        self._subscribers.append(subscriber)
        return processor

    def publishes(self, *specs: TopicSpec) -> None:
        """Declare the topics this service publishes to (through its outbox), for its AsyncAPI document."""
        for spec in specs:
            catalog = SUBMISSION_BY_TYPE if spec.partner_facing else INTERNAL_BY_TYPE
            models = tuple(catalog[event_type] for event_type in spec.event_types)
            self.broker.publisher(
                spec.name,
                title=f"{spec.name}:publish",
                description=spec.description,
                schema=models[0] if len(models) == 1 else Union[models],  # noqa: UP007
            )

    def add_task(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """A background loop (timers, retention jobs) started with the service and cancelled on stop."""
        self._task_factories.append((name, factory))

    async def emit(self, session: AsyncSession, events: Iterable[Any]) -> int:
        """Publish events from a handler: they go to the outbox in the caller's transaction."""
        return await self.outbox.add(session, [encode(e, source=self.source) for e in events])

    # -- running ----------------------------------------------------------------------------

    async def migrate(self) -> None:
        await asyncio.to_thread(
            migrations.upgrade,
            self.migrations_dir,
            self.settings.database_url,
            self.settings.db_schema,
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start everything; on exit stop consuming first, then drain the relay."""
        await self.migrate()
        await ensure_topics(
            self.settings.kafka_bootstrap_servers,
            shared_topic_partitions(self.settings.topic_partitions),
        )
        self._relay_task = asyncio.create_task(self.relay.run(), name=f"{self.name}-relay")
        # Background loops need not wait for the consumer group to (re)form (after a crash that
        # takes up to a session timeout).
        tasks = [
            asyncio.create_task(factory(), name=f"{self.name}-{n}") for n, factory in self._task_factories
        ]
        await self.broker.start()
        observer = asyncio.create_task(self._observe(), name=f"{self.name}-observer")
        # Everything loaded so far (modules, models, reference data) lives as long as the process:
        # keep it out of the collector's full passes, which otherwise rescan it on every pass.
        gc.freeze()
        log.info("service started", service=self.name)
        try:
            yield
        finally:
            log.info("service stopping", service=self.name)
            observer.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.broker.stop()  # waits for in-flight batches (graceful_timeout)
            self.relay.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._relay_task, 30)
            await self.engine.dispose()
            log.info("service stopped", service=self.name)

    async def _observe(self, interval_s: float = 10.0) -> None:
        """Refresh the gauges that are read rather than counted: outbox backlog and consumer lag."""
        while True:
            try:
                await self.relay.backlog()
                for subscriber in self._subscribers:
                    consumer = getattr(subscriber, "consumer", None)
                    if consumer is None:
                        continue
                    for tp in consumer.assignment():
                        end = consumer.highwater(tp)
                        committed = await consumer.committed(tp)
                        if end is not None:
                            lag = max(end - (committed or 0), 0)
                            self._metrics.set_consumer_lag(tp.topic, tp.partition, lag)
            except Exception as exc:  # metrics must never take the service down
                log.debug("metrics refresh failed", error=repr(exc))
            await asyncio.sleep(interval_s)

    async def _kafka_ready(self) -> None:
        if not await self.broker.ping(timeout=2.0):
            raise RuntimeError("Kafka does not answer")

    async def _db_ready(self) -> None:
        await ping(self.engine)

    async def _relay_ready(self) -> None:
        if not self.relay.running:
            raise RuntimeError("outbox relay is not running")

    def http_app(self) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            async with self.running():
                yield

        return create_http_app(
            self.settings,
            lifespan=lifespan,
            routers=self.routers,
            readiness_checks={
                "database": self._db_ready,
                "kafka": self._kafka_ready,
                "outbox_relay": self._relay_ready,
            },
        )

    def serve(self) -> None:
        """Run until SIGTERM/SIGINT (uvicorn turns them into a graceful lifespan shutdown)."""
        configure_logging(self.settings)
        # uvicorn restores the previous handler and re-raises the signal after its graceful
        # shutdown; with Python's default handler that ends the process with -15, which
        # supervisors read as a crash. A clean shutdown exits 0.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        uvicorn.run(
            self.http_app(),
            host=self.settings.http_host,
            port=self.settings.http_port,
            log_config=None,
            timeout_graceful_shutdown=30,
        )
