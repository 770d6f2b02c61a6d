"""One chaos run: fresh servers, two instances of each service, the partners' stream with faults at
random moments, then the invariants once everything has settled. Always tears down what it started."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
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
from chaos.observe import Settled, group_offsets, read_topics, settle
from chaos.traffic import PARTNERS, Publisher, create_partners, inject_poison, make_traffic
from lastline_infra import InfraEndpoints
from lastline_infra.platform import service_env
from lastline_intake.simulate import Traffic
from lastline_reporting.registry import FIGURES
from lastline_shared.auth import issue_staff_token
from lastline_shared.settings import ReportingSettings

EMAIL_SENDERS = 2
RELAY_BATCH = 500  # the services' default relay_batch_size
# Once settled, the volunteers answer the last proposals, and the system settles again: the settle
# budget covers both, but these two waits get at least this long.
ANSWERS_WITHIN_S = 120.0
RESETTLE_AT_LEAST_S = 120.0
FIGURES_WITHIN_S = 120.0  # every staff figure once, from a reporting instance that may be busy


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
    settle_within_s: float = 1800.0  # the settle budget (docs/chaos.md, "Settling")
    checks_within_s: float = 900.0  # the checks' budget: reading every topic, the tables, a rebuild
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
    "checks_within_s": 300.0,
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
    answering_paused: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while the run waits for the system to settle: the volunteers take no new proposals."""
    hooks: WebhookCatcher = field(default_factory=WebhookCatcher)
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    timings: dict[str, float] = field(default_factory=dict)
    published_at: float = 0.0  # when the report was first written: 0 until then

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
                # The verdict before the teardown: whatever stopping takes, the report is out.
                self.publish(report, started)
            finally:
                await fleet.stop()
        finally:
            await self.hooks.stop()
            self.mail.stop()
            if not o.keep_infra:
                await self.infra.down()
        self.timings["teardown_s"] = time.monotonic() - self.published_at
        self.publish(report, started, quietly=True)
        return report

    def publish(self, report: dict[str, Any], started: float, *, quietly: bool = False) -> None:
        report["seconds"] = {k: round(v, 1) for k, v in self.timings.items()} | {
            "total_s": round(time.monotonic() - started, 1)
        }
        write_report(self.options.report, report)
        if not quietly:
            self.published_at = time.monotonic()
            print_report(report)

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
            answering = asyncio.create_task(volunteers.run(self.mail, answering_stop, self.answering_paused))
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
            settled = await self.settle_all(endpoints, answering, answering_stop)
            self.timings["settled_s"] = time.monotonic() - stream_started
            if settled.done:
                say(f"  settled in {settled.seconds:.0f}s; checking")
            else:
                say(f"  {settled.reason()}; checking what can be judged")
            checks_started = time.monotonic()
            report = await self.judge(endpoints, fleet, traffic, poison, injector, volunteers, settled)
            self.timings["checks_s"] = time.monotonic() - checks_started
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return report

    async def settle_all(
        self, endpoints: InfraEndpoints, answering: asyncio.Task[None], answering_stop: asyncio.Event
    ) -> Settled:
        """Wait for the system to settle within the settle budget; then let the volunteers answer the
        last proposals and wait for it to settle again (each of these at least a couple of minutes).
        When it does not settle in the budget, nothing more is waited for: the checks judge what they
        can and say what was left."""
        o = self.options
        deadline = time.monotonic() + o.settle_within_s
        bootstrap, dsn = endpoints.kafka_bootstrap, endpoints.asyncpg_dsn
        # The volunteers pause meanwhile: each answer makes new events (a decline, the next offer),
        # and a 100,000-event run never went quiet while they kept answering.
        self.answering_paused.set()
        settled = await settle(bootstrap, dsn, within_s=o.settle_within_s, say=say)
        self.answering_paused.clear()
        answering_stop.set()
        if settled.done:
            answers_within = max(ANSWERS_WITHIN_S, deadline - time.monotonic())
            done, _ = await asyncio.wait({answering}, timeout=answers_within)
            if not done:
                say(f"  the volunteers' last answers took over {answers_within:.0f}s: cut short")
            within = max(RESETTLE_AT_LEAST_S, deadline - time.monotonic())
            settled = await settle(bootstrap, dsn, within_s=within, say=say)
        answering.cancel()
        await asyncio.gather(answering, return_exceptions=True)
        return settled

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

    async def rebuild(self, fleet: Fleet, within_s: float) -> None:
        """``lastline-reporting rebuild``, killed when it takes longer than ``within_s``."""
        reporting = fleet.first("reporting").process
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lastline_reporting", "rebuild", "--no-progress",
            env=reporting.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(process.communicate(), within_s)
        except BaseException:  # the timeout, or the run being cancelled: never leave it running
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
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
        settled: Settled,
    ) -> dict[str, Any]:
        """Every check, each phase within what is left of the checks' budget: a phase that runs out
        of time or fails leaves its checks not judged (and says why) rather than the run hanging."""
        o = self.options
        deadline = time.monotonic() + o.checks_within_s

        def left(share: float = 1.0) -> float:
            return max(1.0, (deadline - time.monotonic()) * share)

        bootstrap = endpoints.kafka_bootstrap
        results: list[checks.Check] = [checks.settled_check(settled)]

        # Kafka: every topic read once, the records the checks look into kept.
        say("  checks: reading every topic")
        topics = await read_topics(bootstrap, within_s=left(0.5), keep=checks.keep_topic, say=say)
        say(f"  checks: {topics.total():,} records, {len(topics.counts)} topics, {topics.seconds:.0f}s")
        readers: int | None = None
        with contextlib.suppress(Exception):
            committed = await asyncio.wait_for(group_offsets(bootstrap), min(60.0, left()))
            readers = sum(1 for tps in committed.values() if any(tp.topic == "volunteers" for tp in tps))
        results.append(checks.partner_stream(traffic, topics))
        # Each SIGKILL of intake and each server restart (per intake instance) may cost one relay batch.
        relay_crashes = fleet.kills["intake"] + o.instances * (
            injector.kinds["kafka-restart"] + injector.kinds["postgres-restart"]
        )
        canonical_checks, canonical = checks.canonical(traffic, topics, RELAY_BATCH * relay_crashes)
        results += canonical_checks
        rejection_check, rejected = checks.rejections(traffic, topics)
        results.append(rejection_check)
        matches = checks.events_of(topics.records("matches"))
        volunteer_events = checks.events_of(topics.records("volunteers"))
        dlq_check, dlq_figures = checks.dead_letters(topics, poison, readers or 0)
        results.append(dlq_check)

        # The services' tables, in one snapshot.
        delivery_figures: dict[str, Any] = {}

        async def tables() -> list[checks.Check]:
            conn = await asyncpg.connect(endpoints.asyncpg_dsn, timeout=30, command_timeout=left())
            try:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    found = [await checks.intake_tables(conn, traffic)]
                    found += await checks.matching_tables(conn, matches, volunteer_events)
                    window = checks.Window(
                        email_senders=EMAIL_SENDERS,
                        webhook_endpoints=len(PARTNERS),
                        instances=o.instances,
                        notifications_kills=fleet.kills["notifications"],
                        postgres_restarts=injector.kinds["postgres-restart"],
                    )
                    delivery_checks, figures = await checks.deliveries(
                        conn, self.received, window, matches, rejected
                    )
                    found += delivery_checks
                    delivery_figures.update(figures)
            finally:
                conn.terminate()  # read-only: nothing to finish, and never a wait on a server gone away
            return found

        say("  checks: the services' tables")
        results += await self.phase("reading the services' tables", checks.TABLE_CHECKS, left(0.5), tables)
        if not topics.complete:
            checks.overrule(results, checks.TOPIC_DEPENDENT, topics.reason())
        if readers is None:
            checks.overrule(results, [checks.DEAD_LETTERS], "the consumer groups could not be listed")

        # Reporting: live figures against a rebuild, only once the system has settled (a rebuild
        # while the live consumers still lag compares two different moments).
        live: dict[str, Any] = {}
        reporting_url = fleet.first("reporting").url
        if settled.done and topics.complete:

            async def reporting() -> list[checks.Check]:
                figures_within = min(FIGURES_WITHIN_S, left())
                live.update(await asyncio.wait_for(self.figures(reporting_url), figures_within))
                say("  checks: reporting rebuild")
                await self.rebuild(fleet, left())
                rebuilt = await asyncio.wait_for(self.figures(reporting_url), min(FIGURES_WITHIN_S, left()))
                return [
                    checks.same_figures(live, rebuilt),
                    checks.figures_match_topics(live, canonical, rejected, matches),
                ]

            results += await self.phase("checking reporting", checks.REPORTING_CHECKS, left(), reporting)
        else:
            reason = settled.brief() if not settled.done else topics.reason()
            results += checks.not_judged(checks.REPORTING_CHECKS, reason)
            with contextlib.suppress(Exception):  # kept for a look afterwards, if reporting answers
                live.update(await asyncio.wait_for(self.figures(reporting_url), min(30.0, left())))
        if live:
            (o.var_dir / "figures.json").write_text(json.dumps(live, indent=1, default=str) + "\n")
        if not settled.done:
            checks.excuse_unsettled(results, settled.brief())
        code, words = checks.verdict(results)
        judged = [c for c in results if c.judged]
        return {
            "ok": code == 0,
            "exit_code": code,
            "verdict": words,
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(o).items()},
            "settled": {
                "done": settled.done,
                "seconds": round(settled.seconds, 1),
                "lag": settled.lag,
                "lag_per_group": {g: n for g, n in settled.lags.items() if n},
                "backlog": {k: v for k, v in settled.backlog.items() if v},
            },
            "events": {
                "published": len(traffic.items),
                "accepted": len(traffic.accepted()),
                "rejected": len(traffic.rejected()),
                "canonical_expected": sum(traffic.expected_events().values()),
                "canonical_distinct": len(canonical.by_id),
                "canonical_copies": canonical.copies,
                "matches_events": len(matches.by_id),
                "matches_copies": matches.copies,
                "records_on_all_topics": topics.total(),
                "topics_read_s": round(topics.seconds, 1),
                "unread": topics.unread,
            },
            "faults": {
                "injected": dict(injector.kinds) | {"sigkill_by_service": dict(fleet.kills)},
                "unexpected_exits": dict(fleet.unexpected_exits),
                "schedule": injector.done,
            },
            "answers": dict(volunteers.outcomes) | {"failed_attempts": volunteers.attempts_failed},
            "deliveries": delivery_figures,
            "dlq": dlq_figures,
            "lost": sum(c.lost for c in judged),
            "duplicated": sum(c.duplicated for c in judged),
            "not_judged": [c.name for c in results if not c.judged],
            "checks": [asdict(c) | {"status": c.status} for c in results],
        }

    def received(self) -> tuple[Counter[str], Counter[str]]:
        return self.mail.snapshot(), Counter(self.hooks.webhook_ids)

    async def phase(
        self,
        what: str,
        names: Sequence[str],
        within_s: float,
        work: Callable[[], Awaitable[list[checks.Check]]],
    ) -> list[checks.Check]:
        """``work``'s checks, or every one of ``names`` not judged when it fails or runs out of time."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(within_s):
                return await work()
        except TimeoutError:
            reason = f"{what} did not finish within {within_s:.0f}s"
        except Exception as error:
            reason = f"{what} failed ({type(error).__name__}: {error})"[:500]
        say(f"  checks: {reason} after {time.monotonic() - started:.0f}s")
        return checks.not_judged(names, reason)


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
    marks = {"ok": "ok  ", "FAIL": "FAIL", "not judged": "--  "}
    for check in report["checks"]:
        say(f"  {marks[check['status']]} {check['name']}: {check['detail']}")
    say(f"  {report['verdict']}; {report.get('seconds')}")


def write_report(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


async def main(options: Options) -> int:
    """Ctrl-C or SIGTERM cancels the run, whose finally blocks stop the services and servers (a
    background job of a non-interactive shell would otherwise ignore SIGINT).

    Exit code 0 when every invariant holds, 1 when one is broken, 3 when the system did not settle
    (or a phase of the checks ran out of time) and every check that could be judged holds."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    run = Run(options)
    try:
        report = await run.execute()
    except BaseException as error:
        if not run.published_at:  # a report already written says more than this one would
            failed = {"ok": False, "error": f"{type(error).__name__}: {error}", "seconds": run.timings}
            write_report(options.report, failed)
        raise
    say(f"  report: {options.report}")
    code: int = report["exit_code"]
    return code
