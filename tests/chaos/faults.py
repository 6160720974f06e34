"""Faults on a seeded schedule, one at a time, each recorded with what was observed.

kill_service   kill -9 a random service instance, start it again a few seconds later
kill_store     kill -9 the MongoDB-wire server; while it is away every instance's
               /readyz must say 503; start it again after 20–30 s
restart_kafka  stop the broker (as an upgrade would), keep it away for 45–60 s (longer
               than the producers' 40 s delivery timeout, so publishes in flight fail
               rather than wait) and start it again
pause_service  SIGSTOP an instance of a two-instance service for longer than the
               consumer session timeout, so its partitions move; SIGCONT: a zombie owner
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from dataclasses import dataclass, field

from tests.chaos.cluster import Cluster, Instance
from tests.chaos.outbound import group_state
from tests.support.wait import waited

KINDS = ("kill_service", "kill_store", "restart_kafka", "pause_service")


@dataclass(frozen=True)
class FaultTimings:
    service_down: tuple[float, float] = (2.0, 6.0)
    store_down: tuple[float, float] = (20.0, 30.0)
    # Past aiokafka's request_timeout_ms (40 s): a publish in flight fails instead of
    # waiting for the broker, so what a handler stored but could not publish must survive.
    kafka_down: tuple[float, float] = (45.0, 60.0)
    pause: tuple[float, float] = (16.0, 22.0)  # aiokafka's session timeout is 10 s
    gap: tuple[float, float] = (8.0, 20.0)
    readiness_deadline: float = 60.0


@dataclass
class Fault:
    at: float  # seconds into the round
    kind: str
    target: str = ""
    hold: float = 0.0
    notes: list[str] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None

    def describe(self) -> str:
        what = f"{self.kind}({self.target})" if self.target else self.kind
        return f"t+{self.at:5.1f}s {what} for {self.hold:.1f}s: {'; '.join(self.notes)}"


def schedule(
    rng: random.Random, cluster: Cluster, counts: dict[str, int], timings: FaultTimings,
    start_after: float,
) -> list[Fault]:  # fmt: skip
    """Faults in a seeded random order, one after the other with random gaps."""
    kinds = [kind for kind in KINDS for _ in range(counts.get(kind, 0))]
    rng.shuffle(kinds)
    twins = [i for i in cluster.instances if len(cluster.of_service(i.service)) > 1]
    plan: list[Fault] = []
    at = start_after
    for kind in kinds:
        if kind == "kill_service":
            fault = Fault(
                at, kind, rng.choice(cluster.instances).name, rng.uniform(*timings.service_down)
            )
        elif kind == "kill_store":
            fault = Fault(at, kind, "store", rng.uniform(*timings.store_down))
        elif kind == "restart_kafka":
            fault = Fault(at, kind, "kafka", rng.uniform(*timings.kafka_down))
        else:
            target = rng.choice(twins or cluster.instances)
            fault = Fault(at, kind, target.name, rng.uniform(*timings.pause))
        plan.append(fault)
        # The next one after this one's expected length (Kafka takes ~20 s) and a gap.
        at += (fault.hold or 25.0) + rng.uniform(*timings.gap)
    return plan


def _port_notes(retries: int, cut: int) -> str:
    """What it took to get the port back (see Cluster.start_again)."""
    notes = [f"{cut} self-connections cut"] if cut else []
    notes += [f"{retries} failed starts"] if retries else []
    return f" ({', '.join(notes)})" if notes else ""


class Injector:
    def __init__(self, cluster: Cluster, timings: FaultTimings) -> None:
        self.cluster = cluster
        self.timings = timings
        self.problems: list[str] = []
        # One fault at a time per target: the kill after the clock jump runs beside the
        # schedule, and two faults on one instance at once make neither what it says (a
        # pause of an instance that a kill has just taken away pauses nothing).
        self._targets: dict[str, asyncio.Lock] = {}

    @property
    def busy(self) -> set[str]:
        """Targets a fault is working on now."""
        return {target for target, lock in self._targets.items() if lock.locked()}

    async def run(self, fault: Fault) -> None:
        async with self._targets.setdefault(fault.target, asyncio.Lock()):
            fault.started = time.monotonic()
            await getattr(self, fault.kind)(fault)
            fault.ended = time.monotonic()

    async def kill_service(self, fault: Fault) -> None:
        instance = self.cluster.instance(fault.target)
        pid = instance.pid
        instance.kill()
        fault.notes.append(f"pid {pid} killed")
        await asyncio.sleep(fault.hold)  # the outage itself
        instance.start(self.cluster.service_env)
        fault.notes.append(f"restarted as pid {instance.pid}")

    async def kill_store(self, fault: Fault) -> None:
        pid = await self.cluster.hard_kill(self.cluster.store_pid_file)
        fault.notes.append(f"store pid {pid} killed")
        outage_started = time.monotonic()
        instances = self.cluster.instances
        # What Prometheus would see first (the alert's metric, refreshed by each service on
        # its own), then what an orchestrator's readiness probe sees.
        gauge_zero: dict[str, float] = {}
        not_ready: dict[str, float] = {}

        async def every_gauge_says_not_ready() -> bool:
            for instance in instances:
                if instance.name not in gauge_zero and await instance.ready_gauge() == 0.0:
                    gauge_zero[instance.name] = time.monotonic() - outage_started
            return len(gauge_zero) == len(instances)

        async def every_probe_says_not_ready() -> bool:
            for instance in instances:
                if instance.name not in not_ready and await instance.readyz() == 503:
                    not_ready[instance.name] = time.monotonic() - outage_started
            return len(not_ready) == len(instances)

        await waited(every_gauge_says_not_ready, max(fault.hold - 4, 5), step=0.25)
        await waited(
            every_probe_says_not_ready,
            max(fault.hold - 2 - (time.monotonic() - outage_started), 3),
            step=0.25,
        )
        for what, seen in (("complaints_service_ready 0", gauge_zero), ("/readyz 503", not_ready)):
            missing = [i.name for i in instances if i.name not in seen]
            if missing:
                self.problems.append(f"store down but no {what} on {', '.join(missing)}")
            fault.notes.append(f"{what} on {len(seen)}/{len(instances)} instances "
                               f"within {max(seen.values(), default=0):.1f}s")  # fmt: skip
        remaining = fault.hold - (time.monotonic() - outage_started)
        if remaining > 0:
            await asyncio.sleep(remaining)  # the outage itself
        retries, cut = await self.cluster.start_again("store.sh", self.cluster.ports.store)
        fault.notes.append("store started again" + _port_notes(retries, cut))

    async def restart_kafka(self, fault: Fault) -> None:
        started = time.monotonic()
        await self.cluster.script("kafka.sh", "stop")
        remaining = fault.hold - (time.monotonic() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)  # the outage itself
        retries, cut = await self.cluster.start_again("kafka.sh", self.cluster.ports.kafka)
        fault.notes.append(
            f"broker stopped, away {fault.hold:.0f}s, started again after "
            f"{time.monotonic() - started:.0f}s" + _port_notes(retries, cut)
        )

    async def pause_service(self, fault: Fault) -> None:
        instance: Instance = self.cluster.instance(fault.target)
        # The service's one consumer group (all its topics): where its leaving shows.
        group = f"complaints.{instance.service}"
        peers = len(self.cluster.of_service(instance.service))
        instance.signal(signal.SIGSTOP)
        instance.paused = True
        paused_at = time.monotonic()
        fault.notes.append(f"pid {instance.pid} stopped")

        async def settled_without_it() -> bool:
            state, members = await group_state(self.cluster.bootstrap, group)
            return state == "Stable" and len(members) == peers - 1

        moved = await waited(settled_without_it, fault.hold, step=1.0)
        fault.notes.append(
            f"{group} rebalanced without it after {moved:.0f}s" if moved is not None
            else f"{group} did not rebalance without it within {fault.hold:.0f}s"
        )  # fmt: skip
        remaining = fault.hold - (time.monotonic() - paused_at)
        if remaining > 0:
            await asyncio.sleep(remaining)  # the pause itself
        instance.signal(signal.SIGCONT)
        instance.paused = False

        async def rejoined() -> bool:
            state, members = await group_state(self.cluster.bootstrap, group)
            return state == "Stable" and len(members) == peers

        back = await waited(rejoined, 60, step=1.0)
        fault.notes.append(
            "continued as a zombie owner; " + (f"back in the group after {back:.0f}s"
                                               if back is not None else "not back within 60s")
        )  # fmt: skip
