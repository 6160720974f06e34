"""The system under test as real processes on private ports and a private state directory.

Kafka and the store are started and stopped through deploy/local's scripts (whatever
server store.sh runs); a hard kill reads the script's pid file and sends SIGKILL. Each
service instance is `python -m services.<name>` in its own session with its own log,
as `make up` runs it; the Popen objects are kept so that only what we started is ever
signalled.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.support.infra import REPO_ROOT
from tests.support.wait import waited

LOCAL = REPO_ROOT / "deploy" / "local"
LAYOUT = {"intake": 2, "triage": 2, "compensation": 1, "followup": 1, "insights": 1}
# The module each service runs (triage's insights worker lives in the triage package).
MODULES = {"insights": "services.triage.insights"}


@dataclass(frozen=True)
class Ports:
    kafka: int
    controller: int
    store: int
    http_base: int


def _http_status(url: str, timeout: float = 3.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def _ready_gauge(url: str) -> float | None:
    try:
        with urllib.request.urlopen(url, timeout=3.0) as response:
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("complaints_service_ready{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def _pid_gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def _cut_self_connections(port: int, cut: list[int]) -> None:
    """Every 0.2 s, destroy TCP connections from 127.0.0.1:port to itself (``ss -K``),
    TIME-WAIT ones too: a client drops such a connection at once (its request comes back
    as the answer), and the TIME-WAIT it leaves blocks the server's bind for a minute."""
    address = f"127.0.0.1:{port}"
    while True:
        process = await asyncio.create_subprocess_exec(
            "ss", "-K", "-tan", "src", address, "dst", address,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await process.communicate()
        cut.extend(1 for line in out.decode().splitlines() if line.startswith(("ESTAB", "TIME")))
        await asyncio.sleep(0.2)  # polling the socket table while the server starts


def _forget_zombie(pid: int, pid_file: Path) -> None:
    # Dead but not reaped yet: the script would take it for alive and not start a new one.
    if Path(f"/proc/{pid}").exists():
        pid_file.unlink(missing_ok=True)


@dataclass
class Instance:
    """One service process: ``intake-1``, ``triage-2``, ``followup-1``…"""

    service: str
    index: int
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False
    starts: int = 0
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, env: dict[str, str]) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", MODULES.get(self.service, f"services.{self.service}")],
            cwd=REPO_ROOT,
            env={**env, "HTTP_PORT": str(self.port)}, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        self.starts += 1
        self.paused = False

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.running():
            assert self.process is not None
            os.kill(self.process.pid, signum)

    def kill(self) -> None:
        """kill -9, and reap it."""
        if self.process is None:
            return
        self.signal(signal.SIGKILL)
        self.process.wait(30)
        self.process = None
        self.paused = False
        if self._log is not None:
            self._log.close()

    def terminate(self, timeout: float = 40.0) -> int | None:
        if self.process is None:
            return None
        if self.paused:
            self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self.process = None
        if self._log is not None:
            self._log.close()
        return code

    def peak_rss_kib(self) -> int | None:
        """VmHWM: the process's peak resident set size, in KiB."""
        if self.pid is None:
            return None
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return None

    async def readyz(self) -> int:
        return await asyncio.to_thread(_http_status, f"{self.url}/readyz")

    async def ready_gauge(self) -> float | None:
        """complaints_service_ready as Prometheus scrapes it (/metrics, not /readyz)."""
        return await asyncio.to_thread(_ready_gauge, f"{self.url}/metrics")


class Cluster:
    """Kafka, the store and the service instances of one run, under ``run_dir``."""

    def __init__(
        self, run_dir: Path, ports: Ports, layout: dict[str, int] | None = None,
        service_env: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.run_dir = run_dir
        self.ports = ports
        self.clock_file = run_dir / "clock-offset"
        self.bootstrap = f"127.0.0.1:{ports.kafka}"
        self.mongodb_uri = f"mongodb://127.0.0.1:{ports.store}/"
        logs = run_dir / "services"
        self.instances: list[Instance] = []
        port = ports.http_base
        for service, count in (layout or LAYOUT).items():
            for index in range(1, count + 1):
                self.instances.append(
                    Instance(service, index, port, logs / f"{service}-{index}.log")
                )
                port += 1
        self.service_env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "MONGODB_URI": self.mongodb_uri,
            "CLOCK_OFFSET_FILE": str(self.clock_file),
            "LOG_LEVEL": "WARNING",
            **(service_env or {}),
        }

    # --- infrastructure through the deploy/local scripts -------------------------------

    def _script_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "COMPLAINTS_RUN_DIR": str(self.run_dir),
            "LOCAL_KAFKA_PORT": str(self.ports.kafka),
            "LOCAL_KAFKA_CONTROLLER_PORT": str(self.ports.controller),
            "LOCAL_MONGO_PORT": str(self.ports.store),
        }

    async def script(self, name: str, action: str, timeout: float = 300) -> None:
        log = self.run_dir / "scripts.log"

        def run() -> None:
            with log.open("ab") as out:
                subprocess.run([str(LOCAL / name), action], env=self._script_env(), check=True,
                               stdout=out, stderr=out, timeout=timeout)  # fmt: skip

        await asyncio.to_thread(run)

    async def start_again(self, name: str, port: int, attempts: int = 10) -> tuple[int, int]:
        """Start a server that was stopped or killed mid-run; (failed tries, self-connections
        cut).

        The ports `make chaos` is given lie in the kernel's ephemeral range. A client that
        keeps reconnecting to a port nobody listens on walks its source port through that
        range until it picks the very port it dials, and is then connected to itself
        (seen: 127.0.0.1:49092 -> 127.0.0.1:49092; the client drops it at once, and its
        TIME-WAIT holds the port for a minute): the restarted server cannot bind. An artifact of the test machine's port layout,
        not of the system, so such connections (of our own service processes) are cut with
        `ss -K` while the server starts, and a start that failed anyway is tried again.
        """
        cut: list[int] = []
        clearing = asyncio.create_task(_cut_self_connections(port, cut))
        try:
            for failed in range(attempts):
                try:
                    await self.script(name, "start")
                    return failed, len(cut)
                except subprocess.CalledProcessError:
                    if failed == attempts - 1:
                        raise
                    await asyncio.sleep(2.0)  # back-off before the next start
            return attempts, len(cut)
        finally:
            clearing.cancel()
            await asyncio.gather(clearing, return_exceptions=True)

    def _pid_from(self, pid_file: Path) -> int | None:
        try:
            return int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    async def hard_kill(self, pid_file: Path) -> int | None:
        """SIGKILL the process a script's pid file names; return once it is gone."""
        pid = self._pid_from(pid_file)
        if pid is None or _pid_gone(pid):
            return None
        os.kill(pid, signal.SIGKILL)

        async def gone() -> bool:  # in the process table
            return _pid_gone(pid)

        if await waited(gone, 30, step=0.05) is None:
            raise RuntimeError(f"pid {pid} survived SIGKILL for 30 s")
        _forget_zombie(pid, pid_file)
        return pid

    @property
    def store_pid_file(self) -> Path:
        return self.run_dir / "store" / "store.pid"

    @property
    def kafka_pid_file(self) -> Path:
        return self.run_dir / "kafka" / "kafka.pid"

    async def start_infra(self) -> None:
        """Fresh state: Kafka and the store from empty directories."""
        await self.stop_infra()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        (self.run_dir / "services").mkdir(parents=True)
        self.set_clock_offset(0)
        # A previous run's clients may have left the ports held (see start_again).
        await self.start_again("kafka.sh", self.ports.kafka)
        await self.start_again("store.sh", self.ports.store)

    async def stop_infra(self) -> None:
        if self.run_dir.exists():
            await self.script("store.sh", "stop")
            await self.script("kafka.sh", "stop")

    # --- services ----------------------------------------------------------------------

    def instance(self, name: str) -> Instance:
        return next(item for item in self.instances if item.name == name)

    def of_service(self, service: str) -> list[Instance]:
        return [item for item in self.instances if item.service == service]

    async def start_services(self, timeout: float = 120) -> None:
        for instance in self.instances:
            if not instance.running():
                instance.start(self.service_env)
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float, instances: list[Instance] | None = None) -> float:
        """Seconds until every instance answered /readyz with 200; raises on timeout."""
        started = time.monotonic()
        waiting = list(instances or self.instances)
        while waiting:
            for instance in list(waiting):
                if not instance.running():
                    raise RuntimeError(f"{instance.name} exited; see {instance.log_path}")
                if await instance.readyz() == 200:
                    waiting.remove(instance)
            if waiting and time.monotonic() - started > timeout:
                names = ", ".join(item.name for item in waiting)
                raise TimeoutError(f"not ready after {timeout:.0f} s: {names}")
            if waiting:
                await asyncio.sleep(0.2)  # polling /readyz
        return time.monotonic() - started

    def stop_services(self) -> dict[str, int | None]:
        return {instance.name: instance.terminate() for instance in self.instances}

    def kill_everything(self) -> None:
        for instance in self.instances:
            instance.kill()

    def set_clock_offset(self, seconds: float) -> None:
        partial = self.clock_file.with_suffix(".tmp")
        partial.write_text(f"{seconds:.3f}")
        partial.replace(self.clock_file)  # atomic: readers never see half a number
