"""One chaos run: fresh servers, two instances of each service, the partners' stream with faults at
random moments, then the invariants once everything has settled. Always tears down what it started."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import signal
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from pydantic import SecretStr

from chaos import checks
from chaos.catchers import MailCatcher, Volunteers, WebhookCatcher
from chaos.faults import Injector, plan
from chaos.fleet import Fleet, free_port
from chaos.infra import CHAOS_DIR, KAFKA_PORT, POSTGRES_PORT, ChaosInfra, chaos_layout, clean_environ
from chaos.observe import group_offsets, read_everything, settle
from chaos.traffic import PARTNERS, Publisher, create_partners, inject_poison, make_traffic
from lastline_infra import InfraEndpoints
from lastline_infra.platform import service_env
from lastline_intake.simulate import Traffic
from lastline_reporting.registry import FIGURES
from lastline_shared.auth import issue_staff_token
from lastline_shared.settings import ReportingSettings

EMAIL_SENDERS = 2
RELAY_BATCH = 500  # the services' default relay_batch_size


@dataclass
class Options:
    events: int = 100_000
    seed: int = 7
    rate: float = 120.0  # partner records per second
    malformed_ratio: float = 0.1
    partitions: int = 6
    instances: int = 2
    kills_per_service: int = 3
    broker_restarts: int = 2
    postgres_restarts: int = 2
    poison: int = 5
    accept_percent: int = 30
    decline_percent: int = 10
    settle_within_s: float = 1800.0
    wait_for_recovery: bool = True  # each fault only once every instance is ready again
    keep_infra: bool = False
    var_dir: Path = CHAOS_DIR
    kafka_port: int = KAFKA_PORT
    postgres_port: int = POSTGRES_PORT

    @property
    def report(self) -> Path:
        return self.var_dir / "report.json"


SHORT = {
    "events": 1_500,
    "rate": 150.0,
    "partitions": 3,
    "kills_per_service": 1,
    "broker_restarts": 1,
    "postgres_restarts": 1,
    "poison": 3,
    "settle_within_s": 300.0,
    # Faults on schedule even while the system is still recovering: on a busy machine a restarted
    # service takes a minute to be ready, and six one-minute waits do not fit a test.
    "wait_for_recovery": False,
}


def say(message: str) -> None:
    print(message, flush=True)


@dataclass
class Run:
    options: Options
    infra: ChaosInfra = field(init=False)
    mail: MailCatcher = field(default_factory=MailCatcher)
    hooks: WebhookCatcher = field(default_factory=WebhookCatcher)
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        o = self.options
        self.infra = ChaosInfra(chaos_layout(o.var_dir, o.kafka_port, o.postgres_port))

    def token(self, role: str) -> str:
        settings = ReportingSettings(auth_jwt_secret=SecretStr(self.secret))
        return issue_staff_token(settings, "chaos@lastline.invalid", role)  # type: ignore[arg-type]

    def environment(self, smtp_port: int) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
        base = clean_environ() | {
            "AUTH_JWT_SECRET": self.secret,
            "TOPIC_PARTITIONS": str(self.options.partitions),
            "LOG_JSON": "true",
        }
        per_service = {
            "notifications": {
                "NOTIFICATIONS_SMTP_PORT": str(smtp_port),
                "NOTIFICATIONS_EMAIL_SENDERS": str(EMAIL_SENDERS),
                # A short lease: a message a crash left `sending` is sent again within the run.
                # Retries keep their defaults: a proposal email for a volunteer whose contact has
                # not reached notifications yet is retried, and given up after the last attempt.
                "NOTIFICATIONS_DELIVERY_LEASE_S": "10",
            },
            "matching": {"MATCHING_ESCALATION_CHECK_EVERY_S": "5"},
        }
        return base, per_service

    async def execute(self) -> dict[str, Any]:
        o = self.options
        started = time.monotonic()
        rng = random.Random(o.seed)
        say(f"chaos: {o.events:,} partner events at {o.rate:.0f}/s, seed {o.seed}; servers in {o.var_dir}")
        try:
            endpoints, traffic = await asyncio.gather(
                self.infra.fresh(), asyncio.to_thread(make_traffic, o.events, o.seed, o.malformed_ratio)
            )
            self.timings["setup_s"] = time.monotonic() - started
            say(
                f"  servers up: Kafka {endpoints.kafka_bootstrap}, "
                f"PostgreSQL port {self.infra.layout.postgres_port}"
            )
            smtp_port, hook_port = free_port(), free_port()
            self.mail.start(smtp_port)
            await self.hooks.start(hook_port)
            base, per_service = self.environment(smtp_port)
            await create_partners(service_env("intake", endpoints, base))
            fleet = Fleet.configure(endpoints, o.var_dir / "log", base, per_service, per_service=o.instances)
            matching_url = fleet.first("matching").url
            for instance in fleet.of("notifications"):
                instance.process.env["NOTIFICATIONS_MATCHING_PUBLIC_URL"] = matching_url
            try:
                report = await self.stream(endpoints, traffic, fleet, rng, hook_port)
            finally:
                await fleet.stop()
        finally:
            await self.hooks.stop()
            self.mail.stop()
            if not o.keep_infra:
                await self.infra.down()
        report["seconds"] = {k: round(v, 1) for k, v in self.timings.items()} | {
            "total_s": round(time.monotonic() - started, 1)
        }
        return report

    async def stream(
        self, endpoints: InfraEndpoints, traffic: Traffic, fleet: Fleet, rng: random.Random, hook_port: int
    ) -> dict[str, Any]:
        """Services up, the stream published while faults are injected, then settle and judge."""
        o = self.options
        started = time.monotonic()
        stop = asyncio.Event()
        tasks: list[asyncio.Task[Any]] = []
        try:
            fleet.start()
            await fleet.ready(within_s=240)
            self.timings["services_start_s"] = time.monotonic() - started
            say(f"  {len(fleet.instances)} service processes ready (logs in {o.var_dir / 'log'})")
            await self.subscribe_webhooks(fleet, hook_port)
            volunteers = Volunteers(
                [i.url for i in fleet.of("matching")], o.accept_percent, o.decline_percent, o.seed
            )
            gate = asyncio.Lock()
            publisher = Publisher(endpoints.kafka_bootstrap, gate, o.rate)
            injector = Injector(self.infra, fleet, gate, o.wait_for_recovery)
            window = o.events / o.rate
            faults = plan(
                rng,
                fleet,
                window_s=window,
                kills_per_service=o.kills_per_service,
                broker_restarts=o.broker_restarts,
                postgres_restarts=o.postgres_restarts,
            )
            tasks.append(asyncio.create_task(fleet.supervise(stop)))
            answering_stop = asyncio.Event()
            answering = asyncio.create_task(volunteers.run(self.mail, answering_stop))
            tasks.append(answering)
            stream_started = time.monotonic()
            publishing = asyncio.create_task(publisher.run(traffic.records()))
            injecting = asyncio.create_task(injector.run(faults, stream_started))
            poison_task = asyncio.create_task(self.poison_later(endpoints, gate, window / 2))
            tasks += [publishing, injecting, poison_task]
            progress = asyncio.create_task(self.progress(publisher, fleet, injector, len(faults)))
            tasks.append(progress)
            await asyncio.gather(publishing, injecting)
            poison = await poison_task
            progress.cancel()
            self.timings["stream_s"] = time.monotonic() - stream_started
            say(f"  stream and faults done in {self.timings['stream_s']:.0f}s; settling")
            settled = await settle(
                endpoints.kafka_bootstrap, endpoints.asyncpg_dsn, within_s=o.settle_within_s
            )
            answering_stop.set()
            await answering
            settled = await settle(
                endpoints.kafka_bootstrap, endpoints.asyncpg_dsn, within_s=o.settle_within_s
            )
            self.timings["settled_s"] = time.monotonic() - stream_started
            say(f"  settled: lag {settled.lag}, backlog {settled.backlog}; checking")
            report = await self.judge(endpoints, fleet, traffic, poison, injector, volunteers, settled.done)
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return report

    async def subscribe_webhooks(self, fleet: Fleet, port: int) -> None:
        headers = {"authorization": f"Bearer {self.token('admin')}"}
        async with httpx.AsyncClient(timeout=30) as client:
            for partner in PARTNERS:
                response = await client.post(
                    f"{fleet.first('notifications').url}/v1/webhooks/subscriptions",
                    headers=headers,
                    json={
                        "partner_id": partner,
                        "url": f"http://127.0.0.1:{port}/hooks/{partner}",
                        "kinds": ["placed", "rejected", "escalated", "closed"],
                    },
                )
                response.raise_for_status()

    async def poison_later(self, endpoints: InfraEndpoints, gate: asyncio.Lock, after_s: float) -> list[Any]:
        await asyncio.sleep(after_s)
        return await inject_poison(endpoints.kafka_bootstrap, gate, self.options.poison)

    async def progress(self, publisher: Publisher, fleet: Fleet, injector: Injector, faults: int) -> None:
        while True:
            await asyncio.sleep(15)
            say(
                f"  published {publisher.published:,}/{self.options.events:,}, "
                f"faults {len(injector.done)}/{faults}, "
                f"{fleet.running()}/{len(fleet.instances)} processes up, "
                f"{sum(self.mail.snapshot().values()):,} emails, "
                f"{sum(self.hooks.webhook_ids.values()):,} webhooks"
            )

    async def figures(self, url: str) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {self.token('staff')}"}
        found: dict[str, Any] = {}
        async with httpx.AsyncClient(timeout=60) as client:
            for figure in FIGURES:
                response = await client.get(f"{url}/api/v1/staff/{figure.name}", headers=headers)
                response.raise_for_status()
                found[figure.name] = response.json()["rows"]
        return found

    async def rebuild(self, fleet: Fleet) -> None:
        reporting = fleet.first("reporting").process
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lastline_reporting", "rebuild", "--no-progress",
            env=reporting.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"reporting rebuild failed: {out.decode(errors='replace')[-2000:]}")
        say(f"  {out.decode(errors='replace').strip().splitlines()[-1]}")

    async def judge(
        self,
        endpoints: InfraEndpoints,
        fleet: Fleet,
        traffic: Traffic,
        poison: list[Any],
        injector: Injector,
        volunteers: Volunteers,
        settled: bool,
    ) -> dict[str, Any]:
        o = self.options
        topics = await read_everything(endpoints.kafka_bootstrap)
        readers = sum(
            1 for offsets in (await group_offsets(endpoints.kafka_bootstrap)).values()
            if any(tp.topic == "volunteers" for tp in offsets)
        )  # fmt: skip
        results: list[checks.Check] = [
            checks.Check("the system settled", settled, "no lag, no backlog, no new records"),
            checks.partner_stream(traffic, topics),
        ]
        # Each SIGKILL of intake and each server restart (per intake instance) may cost one relay batch.
        relay_crashes = fleet.kills["intake"] + o.instances * (
            injector.kinds["kafka-restart"] + injector.kinds["postgres-restart"]
        )
        canonical_checks, canonical = checks.canonical(traffic, topics, RELAY_BATCH * relay_crashes)
        results += canonical_checks
        rejection_check, rejected = checks.rejections(traffic, topics)
        results.append(rejection_check)
        matches = checks.events_of(topics.get("matches", []))
        volunteer_events = checks.events_of(topics.get("volunteers", []))
        conn = await asyncpg.connect(endpoints.asyncpg_dsn)
        try:
            results.append(await checks.intake_tables(conn, traffic))
            results += await checks.matching_tables(conn, matches, volunteer_events)
            window = checks.Window(
                email_senders=EMAIL_SENDERS,
                webhook_endpoints=len(PARTNERS),
                instances=o.instances,
                notifications_kills=fleet.kills["notifications"],
                postgres_restarts=injector.kinds["postgres-restart"],
            )
            delivery_checks, delivery_figures = await checks.deliveries(
                conn, self.mail.snapshot(), Counter(self.hooks.webhook_ids), window, matches, rejected
            )
            results += delivery_checks
        finally:
            await conn.close()
        dlq_check, dlq_figures = checks.dead_letters(topics, poison, readers)
        results.append(dlq_check)
        reporting_url = fleet.first("reporting").url
        live = await self.figures(reporting_url)
        await self.rebuild(fleet)
        rebuilt = await self.figures(reporting_url)
        results.append(checks.same_figures(live, rebuilt))
        results.append(checks.figures_match_topics(live, canonical, rejected, matches))
        (o.var_dir / "figures.json").write_text(json.dumps(live, indent=1, default=str) + "\n")
        return {
            "ok": all(c.ok for c in results),
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(o).items()},
            "events": {
                "published": len(traffic.items),
                "accepted": len(traffic.accepted()),
                "rejected": len(traffic.rejected()),
                "canonical_expected": sum(traffic.expected_events().values()),
                "canonical_distinct": len(canonical.by_id),
                "canonical_copies": canonical.copies,
                "matches_events": len(matches.by_id),
                "matches_copies": matches.copies,
                "records_on_all_topics": sum(len(v) for v in topics.values()),
            },
            "faults": {
                "injected": dict(injector.kinds) | {"sigkill_by_service": dict(fleet.kills)},
                "unexpected_exits": dict(fleet.unexpected_exits),
                "schedule": injector.done,
            },
            "answers": dict(volunteers.outcomes) | {"failed_attempts": volunteers.attempts_failed},
            "deliveries": delivery_figures,
            "dlq": dlq_figures,
            "lost": sum(c.lost for c in results),
            "duplicated": sum(c.duplicated for c in results),
            "checks": [asdict(c) for c in results],
        }


def print_report(report: dict[str, Any]) -> None:
    say("")
    say("chaos report")
    events = report["events"]
    say(
        f"  events: {events['published']:,} published ({events['accepted']:,} accepted, "
        f"{events['rejected']:,} rejected), {events['canonical_distinct']:,} canonical events "
        f"({events['canonical_copies']} copies)"
    )
    injected = report["faults"]["injected"]
    say(f"  faults: {json.dumps(injected)}; unexpected exits {report['faults']['unexpected_exits']}")
    say(f"  lost {report['lost']}, duplicated {report['duplicated']}")
    for check in report["checks"]:
        say(f"  {'ok  ' if check['ok'] else 'FAIL'} {check['name']}: {check['detail']}")
    say(f"  {'all invariants hold' if report['ok'] else 'INVARIANTS BROKEN'}; {report.get('seconds')}")


def write_report(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


async def main(options: Options) -> int:
    """Ctrl-C or SIGTERM cancels the run, whose finally blocks stop the services and servers (a
    background job of a non-interactive shell would otherwise ignore SIGINT)."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    run = Run(options)
    try:
        report = await run.execute()
    except BaseException as error:
        failed = {"ok": False, "error": f"{type(error).__name__}: {error}", "seconds": run.timings}
        write_report(options.report, failed)
        raise
    write_report(options.report, report)
    print_report(report)
    say(f"  report: {options.report}")
    return 0 if report["ok"] else 1
