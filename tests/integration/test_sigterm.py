"""SIGTERM in the middle of a burst: the real service processes finish what they hold,
commit and exit; once restarted, every complaint is on the outbound topics exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.support.infra import REPO_ROOT, Infra
from tests.support.kafka import EventReader, Upstream
from tests.support.wait import eventually

BURST = 300
SERVICES = ("intake", "triage")
SAMPLES = REPO_ROOT / "deploy" / "local" / "samples"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Processes:
    """The services as `python -m services.<name>`, as production runs them."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.running: dict[str, asyncio.subprocess.Process] = {}
        self.ports = {name: _free_port() for name in SERVICES}

    async def start(self) -> None:
        for name in SERVICES:
            log = (self.logs / f"{name}.log").open("ab")
            self.running[name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"services.{name}", cwd=REPO_ROOT,
                env={**self.env, "HTTP_PORT": str(self.ports[name])}, stdout=log, stderr=log,
            )  # fmt: skip
        for name in SERVICES:
            port = self.ports[name]

            async def ready(port: int = port) -> bool:
                return await asyncio.to_thread(_ready, port)

            await eventually(ready, 90, f"{name} to answer /readyz")

    async def terminate(self) -> dict[str, int]:
        for process in self.running.values():
            process.send_signal(signal.SIGTERM)
        codes = {}
        for name, process in self.running.items():
            codes[name] = await asyncio.wait_for(process.wait(), 60)
        self.running = {}
        return codes

    async def kill(self) -> None:
        for process in self.running.values():
            if process.returncode is None:
                process.kill()
                await process.wait()


def complaint(number: int, run: str) -> bytes:
    sample = json.loads((SAMPLES / "app-late-delivery.json").read_text(encoding="utf-8"))
    sample["submission_id"] = f"burst-{run}-{number}"
    sample["customer_id"] = f"C-burst-{number % 17}"
    sample["message"] = f"{sample['message']} (#{number})"
    return json.dumps(sample, ensure_ascii=False).encode()


@pytest.mark.timeout(400)
async def test_sigterm_during_a_burst_loses_nothing_and_duplicates_nothing(
    infra: Infra, namespace: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    prefix = f"{namespace}.term{run}."
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
           "MONGODB_URI": infra.mongodb_uri, "MONGODB_DATABASE_PREFIX": f"{namespace}term{run}",
           "CONSUMER_GROUP_PREFIX": f"{namespace}term{run}", "TOPIC_PREFIX": prefix,
           "LOG_LEVEL": "WARNING"}  # fmt: skip
    processes = Processes(env, tmp_path)
    reader = EventReader(infra.kafka_bootstrap_servers, (prefix + "cases.opened",
                                                         prefix + "cases.triaged",
                                                         prefix + "complaints.dlq"))  # fmt: skip
    upstream = Upstream(infra.kafka_bootstrap_servers)
    try:
        await processes.start()
        await reader.start()
        await upstream.start()
        for number in range(BURST):
            await upstream.send(prefix + "complaints.inbound.app", complaint(number, run))
        # Terminate while the burst is being worked through, not before, not after.
        await reader.wait_for(lambda s: s.type == "complaint.case.triaged", count=20, timeout=120)
        opened_before = len(reader.matching(lambda s: s.type == "complaint.case.opened"))
        codes = await processes.terminate()
        assert codes == dict.fromkeys(SERVICES, 0), "a graceful exit"
        assert opened_before < BURST, "SIGTERM came after the burst was done: not a test"

        await processes.start()
        opened = await reader.wait_for(
            lambda s: s.type == "complaint.case.opened", count=BURST, timeout=240
        )
        triaged = await reader.wait_for(
            lambda s: s.type == "complaint.case.triaged", count=BURST, timeout=240
        )
        # One more complaint behind the burst on every partition's queue: once it is
        # triaged, anything duplicated by the restart would already be on the topics.
        await upstream.send(prefix + "complaints.inbound.app", complaint(BURST, run))
        await reader.wait_for(
            lambda s: (
                s.type == "complaint.case.triaged"
                and s.data.get("case_number") not in {o.data["case_number"] for o in opened[:BURST]}
            ),
            timeout=120,
        )
        opened = reader.matching(lambda s: s.type == "complaint.case.opened")
        triaged = reader.matching(lambda s: s.type == "complaint.case.triaged")
        refs = Counter(s.data["source_ref"] for s in opened)
        assert len(refs) == BURST + 1 and set(refs.values()) == {1}, "each complaint once"
        assert len({s.event["id"] for s in opened}) == len(opened) == BURST + 1
        cases = Counter(s.data["case_number"] for s in triaged)
        assert len(cases) == BURST + 1 and set(cases.values()) == {1}, "each case triaged once"
        assert not reader.matching(lambda s: s.type == "complaint.input.rejected")
        print(f"SIGTERM after {opened_before} of {BURST} cases opened; restart finished the rest")
    finally:
        await processes.kill()
        await reader.stop()
        await upstream.stop()
