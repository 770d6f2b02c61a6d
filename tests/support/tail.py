"""Every event published on some topics from a moment on, decoded and collected in the background,
for tests that wait for what the services publish."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TypeVar

from aiokafka import AIOKafkaConsumer

from lastline_shared.contracts.base import Contract
from lastline_shared.contracts.envelope import Envelope, decode
from lastline_shared.kafka_admin import end_offsets

T = TypeVar("T", bound=Contract)


class TopicTail:
    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self.events: list[Envelope] = []
        self.undecodable = 0
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            for batch in (await self._consumer.getmany(timeout_ms=200)).values():
                for r in batch:
                    item = decode(r.topic, r.key, list(r.headers), r.value)
                    if isinstance(item, Envelope):
                        self.events.append(item)
                    else:
                        self.undecodable += 1

    async def wait_for(
        self,
        model: type[T],
        match: Callable[[T], bool] = lambda _: True,
        *,
        count: int = 1,
        timeout_s: float = 30.0,
    ) -> list[T]:
        """The data of the ``model`` events ``match`` accepts, once there are ``count`` of them
        (AssertionError after ``timeout_s``)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(found := self.of(model, match)) < count:
            if self.task is not None and self.task.done():
                self.task.result()  # the reader failed: say why
            if asyncio.get_running_loop().time() > deadline:
                what = model.__name__
                raise AssertionError(f"{len(found)} of {count} {what} events within {timeout_s:.0f}s")
            await asyncio.sleep(0.1)
        return found

    def of(self, model: type[T], match: Callable[[T], bool] = lambda _: True) -> list[T]:
        """The data of the ``model`` events seen so far that ``match`` accepts, in order."""
        return [e.data for e in self.events if isinstance(e.data, model) and match(e.data)]


@contextlib.asynccontextmanager
async def tail(bootstrap: str, topics: Sequence[str]) -> AsyncIterator[TopicTail]:
    """A :class:`TopicTail` of ``topics`` from their current end."""
    ends = await end_offsets(bootstrap, topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign(list(ends))
        for tp, offset in ends.items():
            consumer.seek(tp, offset)
        found = TopicTail(consumer)
        found.task = task = asyncio.create_task(found.run())
        try:
            yield found
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await consumer.stop()
