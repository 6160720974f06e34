"""Real Kafka and MongoDB-wire servers for the tests, found or started in this order:

1. KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI set: use them.
2. A Docker daemon answers: testcontainers (Kafka in KRaft mode, MongoDB).
3. Otherwise: the local Kafka and store from deploy/local, on their own ports and
   with fresh state, started once per test session and stopped at its end.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL = REPO_ROOT / "deploy" / "local"
TEST_RUN_DIR = REPO_ROOT / ".run" / "test"
TEST_KAFKA_PORT = int(os.environ.get("TEST_KAFKA_PORT", "19092"))
TEST_MONGO_PORT = int(os.environ.get("TEST_MONGO_PORT", "27018"))


@dataclass
class Infra:
    kafka_bootstrap_servers: str
    mongodb_uri: str
    kafka_origin: str
    mongo_origin: str
    kafka_version: str = "unknown"
    mongo_version: str = "unknown"

    def describe(self) -> list[str]:
        return [
            f"Kafka broker: {self.kafka_bootstrap_servers} ({self.kafka_origin}), "
            f"version {self.kafka_version}",
            f"MongoDB-wire server: {self.mongodb_uri} ({self.mongo_origin}), {self.mongo_version}",
        ]


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _local_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        COMPLAINTS_RUN_DIR=str(TEST_RUN_DIR),
        LOCAL_KAFKA_PORT=str(TEST_KAFKA_PORT),
        LOCAL_KAFKA_CONTROLLER_PORT=str(TEST_KAFKA_PORT + 1),
        LOCAL_MONGO_PORT=str(TEST_MONGO_PORT),
    )
    return env


def _run_script(script: str, action: str) -> None:
    subprocess.run([str(LOCAL / script), action], env=_local_env(), check=True, timeout=600)


def start_local(stack: ExitStack, kafka: bool, mongo: bool) -> tuple[str | None, str | None]:
    """Start what is asked on fresh state; register the stops on ``stack``."""
    kafka_url = mongo_url = None
    if kafka:
        _run_script("kafka.sh", "stop")
        shutil.rmtree(TEST_RUN_DIR / "kafka", ignore_errors=True)
        _run_script("kafka.sh", "start")
        stack.callback(_run_script, "kafka.sh", "stop")
        kafka_url = f"127.0.0.1:{TEST_KAFKA_PORT}"
    if mongo:
        _run_script("store.sh", "stop")
        shutil.rmtree(TEST_RUN_DIR / "store", ignore_errors=True)
        _run_script("store.sh", "start")
        stack.callback(_run_script, "store.sh", "stop")
        mongo_url = f"mongodb://127.0.0.1:{TEST_MONGO_PORT}/"
    return kafka_url, mongo_url


def start_containers(stack: ExitStack, kafka: bool, mongo: bool) -> tuple[str | None, str | None]:
    kafka_url = mongo_url = None
    if kafka:
        from testcontainers.kafka import KafkaContainer

        container = KafkaContainer("confluentinc/cp-kafka:7.8.0").with_kraft()
        stack.enter_context(container)
        kafka_url = container.get_bootstrap_server()
    if mongo:
        from testcontainers.mongodb import MongoDbContainer

        mongo_container = MongoDbContainer("mongo:8")
        stack.enter_context(mongo_container)
        mongo_url = mongo_container.get_connection_url()
    return kafka_url, mongo_url


def local_kafka_version() -> str:
    log = TEST_RUN_DIR / "kafka" / "server.log"
    if log.exists():
        found = re.search(r"Kafka version: (\S+)", log.read_text(errors="replace"))
        if found:
            return f"Apache Kafka {found.group(1)} (from the broker's own log)"
    return "unknown"


async def probe_versions(infra: Infra) -> None:
    """Ask both servers who they are: real requests, so a dead server fails the session."""
    from aiokafka.admin import AIOKafkaAdminClient
    from pymongo import AsyncMongoClient

    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        infra.kafka_version += (
            f"; cluster {cluster['cluster_id']}, {len(cluster['brokers'])} broker(s)"
        )
    finally:
        await admin.close()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(infra.mongodb_uri)
    try:
        info = await client.admin.command("buildInfo")
        if "secantusVersion" in info:
            flavour = f"SecantusDB secantusd-rs {info['secantusVersion']}"
        elif "ferretdbVersion" in info:
            flavour = f"FerretDB {info['ferretdbVersion']}"
        else:
            flavour = "MongoDB"
        infra.mongo_version = f"{flavour}, reports wire version {info.get('version')}"
    finally:
        await client.close()


def provide_infra(stack: ExitStack, say: Callable[[str], None]) -> Infra:
    kafka_env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    mongo_env = os.environ.get("MONGODB_URI")
    need_kafka, need_mongo = not kafka_env, not mongo_env
    origin = "environment"
    kafka_url, mongo_url = kafka_env, mongo_env
    if need_kafka or need_mongo:
        if docker_available():
            origin = "testcontainers"
            started = start_containers(stack, need_kafka, need_mongo)
        else:
            origin = "local (deploy/local, no Docker daemon)"
            say("no Docker daemon: starting the local Kafka and store for this session")
            started = start_local(stack, need_kafka, need_mongo)
        kafka_url = kafka_url or started[0]
        mongo_url = mongo_url or started[1]
    assert kafka_url and mongo_url
    infra = Infra(
        kafka_bootstrap_servers=kafka_url,
        mongodb_uri=mongo_url,
        kafka_origin="environment" if kafka_env else origin,
        mongo_origin="environment" if mongo_env else origin,
    )
    if infra.kafka_origin.startswith("local"):
        infra.kafka_version = local_kafka_version()
    asyncio.run(probe_versions(infra))
    return infra
