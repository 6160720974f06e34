"""One chaos round: a fresh system, steady traffic and desk actions, seeded faults, a jump
of the shared clock past the offers' expiry and the follow-ups' due dates, then the
system settles and the verdict is read from the outside."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from schemas.topics import CASE_ACTIONS
from tests.chaos import store
from tests.chaos.cluster import Cluster, Ports
from tests.chaos.desk import Desk, encode_action
from tests.chaos.faults import Fault, FaultTimings, Injector, schedule
from tests.chaos.outbound import Producer, Seen, Tail, end_offsets, group_lags, read_all
from tests.chaos.traffic import DriverClock, Traffic
from tests.chaos.verdict import Verdict, judge
from tests.support.wait import waited

DEFAULT_FAULTS = {"kill_service": 2, "kill_store": 1, "restart_kafka": 1, "pause_service": 1}


@dataclass
class RoundOptions:
    rate: float = 20.0  # complaints per second
    duration: float = 150.0  # seconds of traffic at least (longer if the faults need it)
    faults: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_FAULTS))
    timings: FaultTimings = field(default_factory=FaultTimings)
    warmup: float = 10.0  # traffic before the first fault
    tail: float = 10.0  # traffic after the last fault
    jump_days: float = 8.0  # past the 72 h offer expiry and the 3–7 day follow-ups
    customers: int = 40
    settle_timeout: float = 900.0
    quiet_seconds: float = 5.0
    accept_barrier_timeout: float = 300.0
    kill_after_jump: bool = True  # one kill -9 of a background loop's owner in its burst

    @classmethod
    def short(cls) -> RoundOptions:
        """The round `make test` runs: a few hundred complaints, each fault once."""
        return cls(
            rate=3.0, duration=90.0, faults=dict.fromkeys(DEFAULT_FAULTS, 1),
            timings=FaultTimings(gap=(5.0, 10.0)), settle_timeout=600.0,
        )  # fmt: skip


@dataclass
class RoundResult:
    seed: int
    verdict: Verdict
    faults: list[Fault]
    timeline: list[str]

    def report(self) -> str:
        lines = [f"round seed {self.seed}", *(f"  {line}" for line in self.timeline)]
        lines.extend(f"  fault {fault.describe()}" for fault in self.faults)
        return "\n".join([*lines, self.verdict.report()])


# The desk's sends retry while the broker is away, each bounded by its own deadline.
DESK_LAST_SEND_SECONDS = 120.0


async def until_moment(started: float, offset: float) -> None:
    """Return ``offset`` seconds after ``started``: the next moment of the round's schedule."""
    await asyncio.sleep(max(0.0, started + offset - time.monotonic()))  # the schedule itself


class Round:
    def __init__(self, seed: int, options: RoundOptions, run_dir: Path, ports: Ports) -> None:
        self.seed, self.options = seed, options
        self.rng = random.Random(seed)
        self.clock = DriverClock()
        self.cluster = Cluster(run_dir, ports)
        tag = f"s{seed}"
        self.traffic = Traffic(random.Random(seed * 7 + 1), self.clock, tag, options.customers)
        self.producer = Producer(self.cluster.bootstrap)
        self.desk = Desk(
            random.Random(seed * 7 + 2), self.clock, self.traffic, self.send_action, tag
        )
        self.tail = Tail(self.cluster.bootstrap, self.desk.on_record)
        self.injector = Injector(self.cluster, options.timings)
        self.timeline: list[str] = []
        self.late_faults: list[Fault] = []
        self.started = 0.0

    def note(self, text: str) -> None:
        line = f"t+{time.monotonic() - self.started:6.1f}s {text}"
        self.timeline.append(line)
        print(f"[chaos {self.seed}] {line}", flush=True)

    async def send_action(self, action: dict[str, Any]) -> None:
        await self.producer.send(
            CASE_ACTIONS, encode_action(action), key=action["case_number"].encode()
        )

    # --- the parts ----------------------------------------------------------------------

    async def run_traffic(self, until: asyncio.Event) -> None:
        sent, began = 0, time.monotonic()
        while not until.is_set():
            due = int((time.monotonic() - began) * self.options.rate) - sent
            for _ in range(due):
                topic, key, value, headers = self.traffic.next()
                await self.producer.send(topic, value, key=key, headers=headers)
                sent += 1
            await asyncio.sleep(0.02)  # pacing to the configured rate

    async def jump_clock(self) -> None:
        """Close accepts, wait until every accept sent took effect, then move time on."""
        self.desk.close_accepts()
        barrier = time.monotonic()

        async def accepts_confirmed() -> bool:  # in the desk's view of the topics
            return not self.desk.unconfirmed_accepts

        if await waited(accepts_confirmed, self.options.accept_barrier_timeout, step=0.2) is None:
            self.injector.problems.append(
                f"{len(self.desk.unconfirmed_accepts)} accepts without effect after "
                f"{self.options.accept_barrier_timeout:.0f}s: {sorted(self.desk.unconfirmed_accepts)[:5]}"
            )  # fmt: skip
        self.clock.offset += timedelta(days=self.options.jump_days)
        self.cluster.set_clock_offset(self.clock.offset.total_seconds())
        self.traffic.epoch += 1
        self.desk.accepts_open = True
        self.note(f"clock jumped {self.options.jump_days:g} days (accepts settled in "
                  f"{time.monotonic() - barrier:.1f}s)")  # fmt: skip

    async def desk_idle(self) -> bool:
        return not self.desk.in_flight

    async def run_faults(self, plan: list[Fault]) -> None:
        for fault in plan:
            await until_moment(self.started, fault.at)
            self.note(f"fault {fault.kind} {fault.target}")
            await self.injector.run(fault)
            self.note(f"fault over: {'; '.join(fault.notes)}")

    async def run_jump(self, jump_at: float) -> None:
        await until_moment(self.started, jump_at)
        await self.jump_clock()
        if not self.options.kill_after_jump:
            return
        # The busiest moment for the background loops: every offer expires and every
        # follow-up falls due at once. Kill one of their owners in the middle of it.
        owners = [i for i in self.cluster.instances
                  if i.service != "intake" and i.name not in self.injector.busy] or [
                  i for i in self.cluster.instances if i.service != "intake"]  # fmt: skip
        fault = Fault(time.monotonic() - self.started, "kill_service",
                      self.rng.choice(owners).name, self.rng.uniform(*self.options.timings.service_down))  # fmt: skip
        await asyncio.sleep(self.rng.uniform(0.2, 3.0))  # into the burst the jump set off
        self.late_faults.append(fault)
        self.note(f"fault {fault.kind} {fault.target} (after the jump)")
        await self.injector.run(fault)
        self.note(f"fault over: {'; '.join(fault.notes)}")

    async def settle(self) -> float:
        """Every group has committed everything, nothing scheduled is due, and no record
        has been published for quiet_seconds."""
        began = time.monotonic()
        quiet_since, last_total = time.monotonic(), -1
        while time.monotonic() - began < self.options.settle_timeout:
            total = sum((await end_offsets(self.cluster.bootstrap)).values())
            if total != last_total:
                quiet_since, last_total = time.monotonic(), total
            lags = await group_lags(self.cluster.bootstrap)
            due = await store.due_work(self.cluster.mongodb_uri, self.clock.now())
            if not any(lags.values()) and not due:
                if time.monotonic() - quiet_since >= self.options.quiet_seconds:
                    return time.monotonic() - began
            else:
                quiet_since = time.monotonic()
            await asyncio.sleep(0.5)  # polling lag and the topics' ends
        lagging = {group: lag for group, lag in lags.items() if lag}
        self.injector.problems.append(
            f"did not settle in {self.options.settle_timeout:.0f}s: lag {lagging}, due work {due}"
        )
        return time.monotonic() - began

    def keep_evidence(self, seen: list[Seen]) -> None:
        """What was sent and what came out, beside the logs, for replaying a failure by eye."""
        ledger = self.traffic.ledger
        with (self.cluster.run_dir / "outbound.jsonl").open("w") as out:
            for item in seen:
                out.write(json.dumps({"topic": item.topic, "partition": item.partition,
                                      "offset": item.offset, "event": item.event}) + "\n")  # fmt: skip
        with (self.cluster.run_dir / "sent.jsonl").open("w") as out:
            for sub in ledger.submissions:
                out.write(json.dumps({"kind": sub.kind, "key": sub.source_key, "of": sub.of,
                                      "sent_at": str(sub.sent_at)}) + "\n")  # fmt: skip
            for bad in ledger.bad_inputs:
                out.write(json.dumps({"kind": "bad", "topic": bad.topic, "why": bad.why,
                                      "raw": bad.raw.decode("utf-8", "replace")}) + "\n")  # fmt: skip
            for action in ledger.actions:
                out.write(json.dumps({"kind": "action", **action}) + "\n")

    def log_errors(self) -> dict[str, int]:
        counts = {}
        for instance in self.cluster.instances:
            text = (
                instance.log_path.read_text(errors="replace") if instance.log_path.exists() else ""
            )
            counts[instance.name] = len(re.findall(r'"level": ?"(ERROR|CRITICAL)"|Traceback', text))
        return counts

    # --- the round ----------------------------------------------------------------------

    async def run(self) -> RoundResult:
        print(f"[chaos {self.seed}] starting Kafka, the store and "
              f"{len(self.cluster.instances)} service instances", flush=True)  # fmt: skip
        await self.cluster.start_infra()
        try:
            await self.cluster.start_services()
            return await self._run_started()
        finally:
            self.cluster.stop_services()
            await self.cluster.stop_infra()

    async def _run_started(self) -> RoundResult:
        options = self.options
        plan = schedule(self.rng, self.cluster, options.faults, options.timings, options.warmup)
        last_fault = plan[-1].at + (plan[-1].hold or 25) if plan else options.warmup
        traffic_for = max(options.duration, last_fault + options.tail)
        # Late enough for offers to be accepted first, early enough for surveys after it.
        jump_at = self.rng.uniform(0.35, 0.55) * traffic_for
        await self.producer.start()
        for topic, key, value, headers in self.traffic.profiles():
            await self.producer.send(topic, value, key=key, headers=headers)
        await self.tail.start()
        stop = asyncio.Event()
        self.started = time.monotonic()
        self.note(f"traffic at {options.rate:g}/s for ~{traffic_for:.0f}s, {len(plan)} faults, "
                  f"clock jump at t+{jump_at:.0f}s")  # fmt: skip
        tasks = [asyncio.create_task(self.run_traffic(stop)), asyncio.create_task(self.desk.run())]
        jump = asyncio.create_task(self.run_jump(jump_at))
        try:
            await self.run_faults(plan)
            await jump
            last_fault_end = time.monotonic()
            ready_in = await self.cluster.wait_ready(options.timings.readiness_deadline)
            self.note(f"every instance ready {ready_in:.1f}s after the last fault")
            await until_moment(self.started, traffic_for)
            self.desk.stop_initiating()
            stop.set()
            if await waited(self.desk_idle, DESK_LAST_SEND_SECONDS) is None:
                self.injector.problems.append(
                    f"the desk's last sends still in flight after {DESK_LAST_SEND_SECONDS:.0f}s"
                )
        except (TimeoutError, RuntimeError) as late:
            self.injector.problems.append(f"readiness within {options.timings.readiness_deadline:.0f}s "
                                          f"of the last fault: {late}")  # fmt: skip
            last_fault_end = time.monotonic()
        finally:
            stop.set()
            self.desk.stop_initiating()
            # A driver task that died early (its exception would vanish with the cancel)
            # leaves the round without traffic and its last submission unsent: say so.
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    self.injector.problems.append(f"driver task failed: {task.exception()!r}")
            for task in [*tasks, jump]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.note(f"traffic stopped: {len(self.traffic.ledger.submissions)} complaints, "
                  f"{len(self.traffic.ledger.bad_inputs)} bad inputs, "
                  f"{len(self.traffic.ledger.actions)} actions; settling")  # fmt: skip
        settled_in = await self.settle()
        self.note(f"settled in {settled_in:.1f}s ({time.monotonic() - last_fault_end:.0f}s after "
                  f"the last fault)")  # fmt: skip
        await self.tail.stop()
        await self.producer.stop()
        for instance in self.cluster.instances:
            if not instance.running():
                self.injector.problems.append(f"{instance.name} is not running at the end")
        seen = await read_all(self.cluster.bootstrap)
        snapshot = await store.snapshot(self.cluster.mongodb_uri)
        self.keep_evidence(seen)
        verdict = judge(
            self.traffic.ledger, seen, snapshot, self.clock.now(), self.injector.problems
        )
        verdict.count("service log errors", self.log_errors())
        verdict.count("driver send retries (broker away) / producers replaced",
                      f"{self.producer.retries} / {self.producer.replaced}")  # fmt: skip
        return RoundResult(self.seed, verdict, [*plan, *self.late_faults], self.timeline)


async def run_round(seed: int, options: RoundOptions, run_dir: Path, ports: Ports) -> RoundResult:
    return await Round(seed, options, run_dir, ports).run()
