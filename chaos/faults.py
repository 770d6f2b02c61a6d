"""The fault schedule (seeded, random moments during the stream) and its injection: SIGKILL a service
instance and restart it, stop and restart the Kafka broker, stop and restart PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from chaos.fleet import Fleet
from chaos.infra import ChaosInfra
from lastline_infra import SERVICES, InfraError

DOWN_S = 3.0  # how long the broker or the database stays away
RECOVERY_S = 180.0  # each fault meets a recovered system: every instance ready again


async def _patiently(start: Callable[[], Awaitable[None]], attempts: int = 4) -> None:
    """Start a server, waiting longer than ``lastline_infra``'s own deadline when the machine is busy:
    a start that finds the server already running only waits for it to answer."""
    for attempt in range(attempts):
        try:
            await start()
            return
        except InfraError:
            if attempt == attempts - 1:
                raise


@dataclass(frozen=True)
class Fault:
    at_s: float  # seconds after the stream started (a lower bound: faults run one after another)
    kind: str  # "sigkill", "kafka-restart", "postgres-restart"
    target: str = ""  # the instance, for a SIGKILL

    def describe(self) -> str:
        return f"{self.kind} {self.target}".strip()


def plan(
    rng: random.Random,
    fleet: Fleet,
    *,
    window_s: float,
    kills_per_service: int,
    broker_restarts: int,
    postgres_restarts: int,
) -> list[Fault]:
    """Random moments within the middle 80% of the stream's planned duration."""

    def moment() -> float:
        return round(rng.uniform(0.1, 0.9) * window_s, 1)

    faults = [
        Fault(moment(), "sigkill", rng.choice(fleet.of(service)).label)
        for service in SERVICES
        for _ in range(kills_per_service)
    ]
    faults += [Fault(moment(), "kafka-restart") for _ in range(broker_restarts)]
    faults += [Fault(moment(), "postgres-restart") for _ in range(postgres_restarts)]
    return sorted(faults, key=lambda f: f.at_s)


@dataclass
class Injector:
    infra: ChaosInfra
    fleet: Fleet
    gate: asyncio.Lock  # the publisher's: held while the broker is away
    wait_for_recovery: bool = True
    done: list[dict[str, object]] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)

    async def run(self, faults: list[Fault], started_at: float) -> None:
        for fault in faults:
            await asyncio.sleep(max(0.0, started_at + fault.at_s - time.monotonic()))
            began = time.monotonic()
            await self.inject(fault)
            self.kinds[fault.kind] += 1
            injected = time.monotonic()
            recovered = await self.fleet.recovered(RECOVERY_S if self.wait_for_recovery else 0)
            self.done.append(
                {
                    "kind": fault.kind,
                    "target": fault.target,
                    "at_s": round(began - started_at, 1),
                    "took_s": round(injected - began, 1),
                    "ready_again_s": round(time.monotonic() - injected, 1) if recovered else None,
                }
            )
            print(
                f"  fault {len(self.done)}/{len(faults)}: {fault.describe()} at {began - started_at:.0f}s",
                flush=True,
            )

    async def inject(self, fault: Fault) -> None:
        if fault.kind == "sigkill":
            instance = next(i for i in self.fleet.instances if i.label == fault.target)
            await self.fleet.kill(instance)
        elif fault.kind == "kafka-restart":
            async with self.gate:
                await self.infra.stop_kafka()
                await asyncio.sleep(DOWN_S)
                await _patiently(self.infra.start_kafka)
        elif fault.kind == "postgres-restart":
            await self.infra.stop_postgres()
            await asyncio.sleep(DOWN_S)
            await _patiently(self.infra.start_postgres)
        else:
            raise ValueError(f"unknown fault {fault.kind!r}")
