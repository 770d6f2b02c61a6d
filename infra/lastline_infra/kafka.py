"""A single-node Apache Kafka (KRaft) from Maven Central jars, run as a plain JVM process.

The jars come from ``infra/pom.xml`` via ``mvn dependency:copy-dependencies`` (cached in ~/.m2 and
var/kafka/libs); storage is formatted once with a kept cluster id; the broker runs detached with
its pid in var/kafka/kafka.pid. Ready means a metadata request succeeds, never a sleep.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from string import Template

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from lastline_infra.errors import InfraError
from lastline_infra.layout import INFRA_DIR, TEMPLATES_DIR, Layout
from lastline_infra.processes import (
    cmdline,
    pid_alive,
    port_in_use,
    read_pid,
    run_captured,
    spawn_detached,
    tail,
    terminate,
    wait_until,
)

POM = INFRA_DIR / "pom.xml"
JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
INSTALL_HINT = "apt-get install openjdk-17-jdk-headless maven"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
TOPIC_ALREADY_EXISTS = 36


def java_executable() -> str:
    """The ``java`` to run Kafka with (JAVA_HOME first); raises unless it is Java 17 or newer."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise InfraError(f"Kafka needs Java 17 or newer and none was found: {INSTALL_HINT}")
    return java


async def _java_major(java: str) -> int:
    _, out = await run_captured([java, "-version"])
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return 0
    major = int(match.group(1))
    # Java 8 and older report "1.8.0_…".
    return int(match.group(2) or 0) if major == 1 else major


async def check_java() -> str:
    java = java_executable()
    if (major := await _java_major(java)) < 17:
        raise InfraError(f"Kafka 4 needs Java 17 or newer, {java} is Java {major}: {INSTALL_HINT}")
    return java


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def libs_ready(layout: Layout) -> bool:
    stamp = layout.kafka_libs / ".pom-sha256"
    return stamp.exists() and stamp.read_text().strip() == _pom_digest()


async def ensure_kafka_libs(layout: Layout) -> None:
    """Copy the broker's jars into var/kafka/libs unless they match infra/pom.xml already."""
    if libs_ready(layout):
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InfraError(f"fetching the Kafka jars needs Maven (mvn): {INSTALL_HINT}")
    # Download into a scratch folder and rename: an interrupted fetch never looks complete.
    scratch = layout.kafka_dir / "libs.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    returncode, out = await run_captured(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={scratch}",
        ]
    )
    if returncode != 0:
        last = out.strip().splitlines()[-1:] or ["(no output)"]
        raise InfraError(f"mvn could not fetch the Kafka jars (is Maven Central reachable?): {last[0]}")
    (scratch / ".pom-sha256").write_text(_pom_digest() + "\n")
    shutil.rmtree(layout.kafka_libs, ignore_errors=True)
    scratch.rename(layout.kafka_libs)


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (as Uuid.randomUuid)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka's tools read a leading "-" as an option
            return cluster_id


def _formatted_cluster_id(layout: Layout) -> str | None:
    meta = layout.kafka_data / "meta.properties"
    if not meta.exists():
        return None
    for line in meta.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id":
            return value.strip()
    return None


def cluster_id(layout: Layout) -> str:
    """The cluster id the storage is (or will be) formatted with, kept in var/kafka/cluster-id."""
    kept = _formatted_cluster_id(layout)
    if kept is None and layout.kafka_cluster_id_file.exists():
        kept = layout.kafka_cluster_id_file.read_text().strip() or None
    kept = kept or new_cluster_id()
    layout.kafka_cluster_id_file.write_text(kept + "\n")
    return kept


def write_kafka_config(layout: Layout) -> None:
    values = {
        "host": layout.host,
        "kafka_port": layout.kafka_port,
        "controller_port": layout.kafka_controller_port,
        "data_dir": layout.kafka_data,
        "logs_dir": layout.kafka_logs,
    }
    for template, target in (
        ("server.properties", layout.kafka_properties),
        ("log4j2.xml", layout.kafka_log4j_config),
    ):
        text = Template((TEMPLATES_DIR / template).read_text()).substitute(values)
        target.write_text(text)


def _java_argv(java: str, layout: Layout, main_class: str, *args: str) -> list[str]:
    return [
        java,
        *JVM_OPTIONS,
        f"-Dlog4j2.configurationFile={layout.kafka_log4j_config}",
        f"-Dkafka.logs.dir={layout.kafka_logs}",
        "-cp",
        f"{layout.kafka_libs}/*",
        main_class,
        *args,
    ]


async def format_storage(java: str, layout: Layout) -> None:
    """Format the KRaft metadata log once; later starts reuse it (and its cluster id)."""
    if (layout.kafka_data / "meta.properties").exists():
        return
    argv = _java_argv(
        java,
        layout,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id(layout),
        "-c",
        str(layout.kafka_properties),
    )
    returncode, out = await run_captured(argv)
    if returncode != 0:
        lines = out.strip().splitlines()
        raise InfraError(f"formatting Kafka storage failed: {lines[-1] if lines else returncode}")


def kafka_pid(layout: Layout) -> int | None:
    """The pid of the broker this tree started, if it still runs."""
    pid = read_pid(layout.kafka_pid_file)
    if pid is None or not pid_alive(pid):
        return None
    argv = cmdline(pid)
    if "kafka.Kafka" not in argv or str(layout.kafka_properties) not in argv:
        return None  # the pid was reused by an unrelated process
    return pid


async def kafka_answers(bootstrap: str, *, within_s: float = 10.0) -> bool:
    """True when the broker serves a metadata request that lists at least one broker."""
    host, _, port = bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    if not port_in_use(host or "127.0.0.1", int(port)):
        return False  # not even listening: skip aiokafka, which logs every refused connection
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(within_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), within_s)
        cluster = await asyncio.wait_for(admin.describe_cluster(), within_s)
    except Exception:  # any failure means "not ready yet"
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    return bool(cluster.get("brokers"))


def _taken_port(layout: Layout) -> int | None:
    for port in (layout.kafka_port, layout.kafka_controller_port):
        if port_in_use(layout.host, port):
            return port
    return None


async def start_kafka(layout: Layout) -> int:
    """Start the local broker unless it runs already; return its pid once it answers."""
    pid = kafka_pid(layout)
    if pid is None:
        if (port := _taken_port(layout)) is not None:
            raise InfraError(
                f"port {port} is taken by something other than lastline's Kafka: stop it, move "
                "ours with LASTLINE_KAFKA_PORT / LASTLINE_KAFKA_CONTROLLER_PORT, or set "
                f"KAFKA_BOOTSTRAP_SERVERS={layout.host}:{layout.kafka_port} to use that broker"
            )
        java = await check_java()
        await ensure_kafka_libs(layout)
        for folder in (layout.kafka_data, layout.kafka_logs):
            folder.mkdir(parents=True, exist_ok=True)
        write_kafka_config(layout)
        await format_storage(java, layout)
        argv = _java_argv(java, layout, "kafka.Kafka", str(layout.kafka_properties))
        pid = spawn_detached(argv, layout.kafka_stdout, cwd=layout.kafka_dir)
        layout.kafka_pid_file.write_text(f"{pid}\n")
    await wait_kafka_ready(layout, pid)
    return pid


async def wait_kafka_ready(layout: Layout, pid: int) -> None:
    def died() -> str | None:
        if pid_alive(pid):
            return None
        return f"the broker exited; see {layout.kafka_logs}:\n{tail(layout.kafka_stdout)}"

    await wait_until(
        lambda: kafka_answers(layout.kafka_bootstrap),
        within_s=READY_TIMEOUT_S,
        what=f"Kafka on {layout.kafka_bootstrap}",
        give_up=died,
    )


async def stop_kafka(layout: Layout) -> bool:
    """Stop the local broker (SIGTERM, SIGKILL after a deadline); False if it was not running."""
    pid = kafka_pid(layout)
    if pid is None:
        layout.kafka_pid_file.unlink(missing_ok=True)
        return False
    await terminate(pid, grace_s=STOP_TIMEOUT_S)
    layout.kafka_pid_file.unlink(missing_ok=True)
    return True


async def create_topics(
    bootstrap: str, topics: Mapping[str, int], *, replication_factor: int = 1
) -> list[str]:
    """Create the topics that do not exist yet ({name: partitions}); return the ones created."""
    if not topics:
        return []
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, partitions, replication_factor) for name, partitions in topics.items()]
        )
    finally:
        await admin.close()
    created: list[str] = []
    for name, code, *rest in response.topic_errors:
        if code == 0:
            created.append(name)
        elif code != TOPIC_ALREADY_EXISTS:
            raise InfraError(f"creating topic {name!r} failed with Kafka error {code}: {rest}")
    return created
