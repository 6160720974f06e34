"""End to end: the system as `make up` runs it, measured from outside with plain aiokafka.

    make bench                                   # the full table (defaults below)
    make bench ARGS="--burst 300 --load-rate 5 --load-seconds 30 --seed 1000"

One run prints, all on the same broker and machine:
- raw aiokafka pass-through (consume, produce, commit per batch) on a 3-partition topic:
  the ceiling any Kafka service here can reach, and the baseline every figure is a ratio to;
- a burst of N distinct app complaints published at once: intake→triage and
  intake→compensation rates (first publish to the N-th `case.triaged` / first offer);
- latency received→triaged (p50/p99) at a fixed offered load (default 100/s for 60 s);
- the burst again after the store was seeded with realistic stored cases (default 10k,
  then 100k), to show whether cost per complaint grows with what is stored.

The system runs as real processes (deploy/local scripts, the embedded store, its own ports
and state under .run/bench), so the figures include everything a user's `make up` pays.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "deploy" / "local"
RUN_DIR = REPO / ".run" / "bench"
KAFKA_PORT = int(os.environ.get("BENCH_KAFKA_PORT", "19392"))
MONGO_PORT = int(os.environ.get("BENCH_MONGO_PORT", "27418"))
SERVICE_PORT_BASE = int(os.environ.get("BENCH_SERVICE_PORT_BASE", "8401"))
BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"
CASE_NUMBER = re.compile(r"CS\d{8}-\d+")
MONGO_URI = f"mongodb://127.0.0.1:{MONGO_PORT}/"
DATABASES = ("complaints_intake", "complaints_triage", "complaints_compensation",
             "complaints_followup")  # fmt: skip

TEXTS = [
    "訂單到現在還沒收到，物流頁面一直顯示配送中，已經第五天了",
    "收到的馬克杯把手有裂痕，倒熱水的時候差點燙到",
    "信用卡同一筆訂單被扣了兩次款，請盡快處理",
    "退貨已經寄回兩週了，退款還是沒有進來",
    "The blender stopped working after two days, the motor just hums",
    "I was charged again after I cancelled my subscription last month",
    "客服電話等了四十分鐘還被掛斷，態度非常差",
    "App 結帳一直出現錯誤代碼，根本無法付款",
    "孩子玩的玩具零件脫落，差點吞下去，太危險了",
    "快递三天了还没到，客服也不回复",
]


def local_env() -> dict[str, str]:
    return {
        **os.environ,
        "COMPLAINTS_RUN_DIR": str(RUN_DIR),
        "LOCAL_KAFKA_PORT": str(KAFKA_PORT),
        "LOCAL_KAFKA_CONTROLLER_PORT": str(KAFKA_PORT + 1),
        "LOCAL_MONGO_PORT": str(MONGO_PORT),
        "SERVICE_PORT_BASE": str(SERVICE_PORT_BASE),
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "MONGODB_URI": MONGO_URI,
    }


def script(name: str, action: str) -> None:
    subprocess.run([str(LOCAL / name), action], env=local_env(), check=True, timeout=900)


STORE_SCRIPT = "store.sh"


PROCESSES = {
    "intake": "services/intake.pid", "triage": "services/triage.pid",
    "compensation": "services/compensation.pid", "followup": "services/followup.pid",
    "insights": "services/insights.pid", "store": "store/store.pid", "kafka": "kafka/kafka.pid",
}  # fmt: skip


def cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) each process of the system has used so far."""
    used = {}
    for name, pidfile in PROCESSES.items():
        try:
            pid = (RUN_DIR / pidfile).read_text().strip()
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


async def settle(timeout: float = 120.0, window: float = 2.0, idle: float = 0.05) -> float:
    """Wait until the store is at rest (below ``idle`` of a core over ``window`` seconds),
    so that each burst starts from rest: after a bulk seed the store writes its new pages
    for a while (checkpoints, eviction), which is the seed's cost and not the burst's.
    Returns the seconds waited (reported; bounded by ``timeout``)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        before = cpu_seconds().get("store", 0.0)
        await asyncio.sleep(window)  # a sampling interval, not synchronisation
        if cpu_seconds().get("store", 0.0) - before < idle * window:
            break
    return time.perf_counter() - started


class System:
    """Kafka, the store and the four services, started like `make up` on fresh state."""

    def start(self) -> None:
        self.stop()
        shutil.rmtree(RUN_DIR, ignore_errors=True)
        script("kafka.sh", "start")
        script(STORE_SCRIPT, "start")
        script("services.sh", "start")

    def stop(self) -> None:
        for name in ("services.sh", STORE_SCRIPT, "kafka.sh"):
            subprocess.run([str(LOCAL / name), "stop"], env=local_env(), check=False,
                           capture_output=True, timeout=120)  # fmt: skip


# --- raw Kafka pass-through ------------------------------------------------------------


async def create_topics(names: list[str], partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


async def raw_passthrough(count: int, size: int) -> float:
    """Records/s of consume → produce → commit per batch, the ceiling for a service here."""
    run = uuid.uuid4().hex[:8]
    source, sink = f"bench.raw.{run}.in", f"bench.raw.{run}.out"
    await create_topics([source, sink])
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5,
                                enable_idempotence=True)  # fmt: skip
    await producer.start()
    try:
        payload = b"x" * size
        await asyncio.gather(*[await producer.send(source, payload) for _ in range(count)])
        consumer = AIOKafkaConsumer(source, bootstrap_servers=BOOTSTRAP, group_id=f"raw-{run}",
                                    enable_auto_commit=False, auto_offset_reset="earliest")  # fmt: skip
        await consumer.start()
        try:
            done, started = 0, None
            while done < count:
                batch = await consumer.getmany(timeout_ms=500, max_records=500)
                if started is None and batch:
                    started = time.perf_counter()
                sends = [await producer.send(sink, record.value)
                         for records in batch.values() for record in records]  # fmt: skip
                await asyncio.gather(*sends)
                await consumer.commit()
                done += len(sends)
            assert started is not None
            return count / (time.perf_counter() - started)
        finally:
            await consumer.stop()
    finally:
        await producer.stop()


# --- the system, from outside ---------------------------------------------------------


@dataclass
class Outcomes:
    """What the system published for each submission, with the Kafka timestamps."""

    case_of: dict[str, str] = field(default_factory=dict)  # submission id -> case number
    triaged_ms: dict[str, int] = field(default_factory=dict)  # case number -> first triage
    offered_ms: dict[str, int] = field(default_factory=dict)  # case number -> first offer
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class Watcher:
    """Reads cases.opened/triaged/compensation from their current end, in the background."""

    def __init__(self) -> None:
        self.outcomes = Outcomes()
        self.consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None,
                                         enable_auto_commit=False)  # fmt: skip
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        partitions = [TopicPartition(topic, p) for topic in
                      ("cases.opened", "cases.triaged", "cases.compensation") for p in range(3)]  # fmt: skip
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        for partition in partitions:  # resolve the end positions before anything is published
            await self.consumer.position(partition)
        self.task = asyncio.create_task(self.read())

    async def read(self) -> None:
        outcomes = self.outcomes
        while True:
            batch = await self.consumer.getmany(timeout_ms=200, max_records=2000)
            for records in batch.values():
                for record in records:
                    event = json.loads(record.value)
                    data, kind = event.get("data") or {}, event.get("type")
                    case = str(data.get("case_number"))
                    if kind == "complaint.case.opened":
                        outcomes.case_of[data["source_ref"]] = case
                    elif kind == "complaint.case.triaged":
                        outcomes.triaged_ms.setdefault(case, record.timestamp)
                    elif kind in ("complaint.compensation.proposed",
                                  "complaint.compensation.approval_requested"):  # fmt: skip
                        outcomes.offered_ms.setdefault(case, record.timestamp)
            if batch:
                outcomes.changed.set()

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.consumer.stop()

    async def wait(self, submissions: list[str], timeout: float) -> None:
        """Until every submission is triaged and offered, or fail with how far it got."""
        deadline = time.monotonic() + timeout
        outcomes = self.outcomes
        while True:
            cases = [outcomes.case_of.get(s) for s in submissions]
            triaged = sum(1 for c in cases if c in outcomes.triaged_ms)
            offered = sum(1 for c in cases if c in outcomes.offered_ms)
            if triaged == offered == len(submissions):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"after {timeout:.0f}s: {triaged} triaged, {offered} offered"
                                   f" of {len(submissions)}")  # fmt: skip
            outcomes.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(outcomes.changed.wait(), timeout=5)


def app_complaint(run: str, n: int, customers: int) -> tuple[str, bytes]:
    submission = f"bench-{run}-{n}"
    body = {
        "submission_id": submission,
        "customer_id": f"C-{n % customers:05d}",
        "order_id": f"O-{run}-{n}",
        "order_value": {"amount": f"{300 + n % 50 * 37}.00", "currency": "TWD"},
        "subject": "訂單問題",
        "message": f"{TEXTS[n % len(TEXTS)]}（訂單 {run}-{n}）",
        "contact": {"email": f"c{n % customers}@example.com"},
        "locale": "zh-TW",
        "submitted_at": datetime.now(UTC).isoformat(),
    }
    return submission, json.dumps(body, ensure_ascii=False).encode()


class Publisher:
    def __init__(self) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=2)
        self.sent_ms: dict[str, int] = {}

    async def __aenter__(self) -> Publisher:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def send(self, submission: str, value: bytes) -> asyncio.Future[Any]:
        now = datetime.now(UTC)
        self.sent_ms[submission] = int(now.timestamp() * 1000)
        sent: asyncio.Future[Any] = await self.producer.send(
            "complaints.inbound.app", value, key=submission.encode(),
            headers=[("received-at", now.isoformat().encode())],
        )  # fmt: skip
        return sent


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def burst(watcher: Watcher, count: int, customers: int, timeout: float) -> dict[str, float]:
    run = uuid.uuid4().hex[:6]
    complaints = [app_complaint(run, n, customers) for n in range(count)]
    cpu_before = cpu_seconds()
    async with Publisher() as publisher:
        sends = [await publisher.send(s, v) for s, v in complaints]
        await asyncio.gather(*sends)
    submissions = [s for s, _ in complaints]
    await watcher.wait(submissions, timeout)
    cpu_after = cpu_seconds()
    outcomes = watcher.outcomes
    first = min(publisher.sent_ms.values())
    cases = [outcomes.case_of[s] for s in submissions]
    triaged = max(outcomes.triaged_ms[c] for c in cases)
    offered = max(outcomes.offered_ms[c] for c in cases)
    latencies = [outcomes.triaged_ms[outcomes.case_of[s]] - publisher.sent_ms[s]
                 for s in submissions]  # fmt: skip
    return {
        "triage_rate": count / max(0.001, (triaged - first) / 1000),
        "compensation_rate": count / max(0.001, (offered - first) / 1000),
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        **{f"cpu_ms:{name}": 1000 * (cpu_after[name] - cpu_before[name]) / count
           for name in cpu_after if name in cpu_before},
    }  # fmt: skip


async def steady(watcher: Watcher, rate: float, seconds: float, customers: int) -> dict[str, float]:
    """Publish at ``rate`` per second for ``seconds``; latency received → triaged."""
    run = uuid.uuid4().hex[:6]
    total = int(rate * seconds)
    submissions: list[str] = []
    async with Publisher() as publisher:
        start = time.perf_counter()
        pending = []
        for n in range(total):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the offered load, not synchronisation
            submission, value = app_complaint(run, n, customers)
            submissions.append(submission)
            pending.append(await publisher.send(submission, value))
        await asyncio.gather(*pending)
        offered_seconds = time.perf_counter() - start
    await watcher.wait(submissions, timeout=seconds + 600)
    outcomes = watcher.outcomes
    latencies = [outcomes.triaged_ms[outcomes.case_of[s]] - publisher.sent_ms[s]
                 for s in submissions]  # fmt: skip
    return {
        "offered_rate": total / offered_seconds,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies),
        "mean_ms": statistics.fmean(latencies),
    }


# --- seeding the store with realistic stored cases -------------------------------------


def _replace(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {_replace(k, old, new): _replace(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(item, old, new) for item in value]
    return value


async def seed(total: int, customers: int) -> float:
    """Grow every service's store to ``total`` cases by cloning what the system stored.

    Clones get case numbers of past days, customers from a pool, no pending events, and
    mostly no due work (old cases are resolved); one in twenty keeps an alarm, an expiry or
    a follow-up in the far future, so the indexes the loops use hold real entries.
    """
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGO_URI, tz_aware=True)
    started = time.perf_counter()
    far = datetime(2099, 1, 1, tzinfo=UTC)
    rng = random.Random(7)
    try:
        for database in DATABASES:
            db = client[database]
            for name in await db.list_collection_names():
                if name in ("counters", "customers", "budgets"):
                    continue
                templates = await db[name].find({}).to_list(50)
                if not templates:
                    continue
                have = await db[name].count_documents({})
                batch: list[dict[str, Any]] = []
                for k in range(have, total):
                    template = templates[k % len(templates)]
                    found = CASE_NUMBER.search(json.dumps(template, default=str))
                    old = found.group(0) if found else None
                    case = f"CS2025{(k // 9000) % 12 + 1:02d}{(k // 300) % 28 + 1:02d}-{k:07d}"
                    clone = copy.deepcopy({k2: v for k2, v in template.items() if k2 != "outbox"})
                    clone = _replace(clone, old, case) if old else clone
                    if str(clone["_id"]) == str(template["_id"]):
                        clone["_id"] = f"{template['_id']}-seed{k}"
                    if "customer_id" in clone:
                        clone["customer_id"] = f"C-{rng.randrange(customers):05d}"
                    keep_due = k % 20 == 0
                    for due in ("next_alarm_at", "offer_expires_at", "next_at", "check_at"):
                        if due in clone:
                            clone[due] = far if keep_due else None
                    if name == "insights":  # past insights: a few are open at a time
                        clone["status"] = "subsided"
                    if name == "insight_keys":
                        clone["open_insight"] = None
                    batch.append(clone)
                    if len(batch) == 1000:
                        await db[name].insert_many(batch, ordered=False)
                        batch = []
                if batch:
                    await db[name].insert_many(batch, ordered=False)
    finally:
        await client.close()
    return time.perf_counter() - started


# --- the run ----------------------------------------------------------------------------


class Report(list[str]):
    """The table, printed line by line as figures come in (a long run shows progress)."""

    def append(self, line: str) -> None:
        print(line, flush=True)
        super().append(line)

    def __iadd__(self, lines: Iterable[str]) -> Report:  # type: ignore[override,misc]
        for line in lines:
            self.append(line)
        return self


async def measure(args: argparse.Namespace) -> list[str]:
    lines = Report()
    lines.append(f"machine: {os.cpu_count()} cores; store: {STORE_SCRIPT}; "
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")  # fmt: skip
    raw = await raw_passthrough(args.raw_records, 600)
    lines.append(f"raw aiokafka pass-through (3 partitions, batch commit): {raw:8.0f} records/s")
    watcher = Watcher()
    await watcher.start()
    try:
        # A first burst warms every process (group joins, pools, caches, the broker's JIT).
        await burst(watcher, args.warmup, args.customers, timeout=600)
        quiet = await settle()
        result = await burst(watcher, args.burst, args.customers, timeout=args.timeout)
        lines += row(f"empty store (quiet after {quiet:.0f} s)", args.burst, result, raw)
        if args.load_seconds > 0:
            load = await steady(watcher, args.load_rate, args.load_seconds, args.customers)
            lines.append(
                f"fixed load {load['offered_rate']:.0f}/s for {args.load_seconds:.0f} s: "
                f"received→triaged p50 {load['p50_ms']:.0f} ms, p99 {load['p99_ms']:.0f} ms, "
                f"max {load['max_ms']:.0f} ms"
            )
        base_rate = result["triage_rate"]
        for size in args.seed:
            took = await seed(size, args.customers * 40)
            quiet = await settle()
            result = await burst(watcher, args.burst, args.customers, timeout=args.timeout)
            label = f"{size:,} cases stored (seeded in {took:.0f} s, quiet after {quiet:.0f} s)"
            lines += row(label, args.burst, result, raw)
            lines.append(f"  triage rate vs empty store: {result['triage_rate'] / base_rate:.2f}")
    finally:
        await watcher.stop()
    return lines


def row(label: str, count: int, result: dict[str, float], raw: float) -> list[str]:
    return [
        f"{label}: burst of {count}",
        f"  intake→triage       {result['triage_rate']:8.1f} complaints/s"
        f"  (ratio to raw {result['triage_rate'] / raw:.3f})",
        f"  intake→compensation {result['compensation_rate']:8.1f} complaints/s"
        f"  (ratio to raw {result['compensation_rate'] / raw:.3f})",
        f"  received→triaged in the burst: p50 {result['p50_ms']:.0f} ms, "
        f"p99 {result['p99_ms']:.0f} ms",
        "  CPU per complaint: " + ", ".join(
            f"{key.split(':')[1]} {value:.2f} ms" for key, value in result.items()
            if key.startswith("cpu_ms:")),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--load-rate", type=float, default=100.0)
    parser.add_argument("--load-seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--raw-records", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--keep", action="store_true", help="leave the system running")
    args = parser.parse_args()
    system = System()
    system.start()
    try:
        lines = asyncio.run(measure(args))
    finally:
        if not args.keep:
            system.stop()
    print("\n--- summary ---\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
