"""What the systemic-issue detector adds to triage, per complaint, against what triage
does anyway, measured in the same run on the same complaints.

    .venv/bin/python -m tests.bench.insights --complaints 2000

Complaints: the texts of the corpus (tests/corpus/inputs) and the bundled samples that
intake turns into cases, plus the cracked-mug texts of the integration test, cycled with
distinct case numbers, customers and times over 15 days; a third are app forms naming a
product (SKU and name), as app forms do.

Measured (one store, started here on TEST_MONGO_PORT unless MONGODB_URI is set; the
store client is built as ServiceKit builds it: coalescing, one transaction per batch):

- cpu: triage's decision (``decide``) vs the detector's key extraction (``text_features``),
  per complaint, no store;
- store, one at a time (latency): triage's own effect (``apply_once`` of the case with its
  outbox, then ``flush_outbox``) vs ``Detector.observe`` (keys, counts, insights);
- store, 64 at a time (as triage's lanes run): the same two, wall time per complaint.

Ratios are to triage's own work in the same run; absolute figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient, monitoring

from services.intake.complaint import Complaint, from_app, from_email, from_social
from services.policy import Policy, load_policy
from services.runtime.coalescing import CoalescingDatabase, StoreBatcher
from services.runtime.documents import apply_once
from services.runtime.kafka import OutboundMessage
from services.runtime.outbox import add_to_outbox, flush_outbox
from services.triage.events import facts_from_opened
from services.triage.insights.detection import Detector, InsightMetrics
from services.triage.insights.keys import folded_terms, text_features, warm_up
from services.triage.insights.store import InsightStore
from services.triage.rules import decide
from tests.support.infra import start_local

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 8, 2, 0, tzinfo=UTC)
MUG_TEXTS = [
    ("", "馬克杯第一次倒熱水把手就裂了"),
    ("馬克杯裂了", "訂購的馬克杯收到時杯身就有裂痕。"),
    ("", "马克杯的把手裂开了"),
    ("", "The mug handle cracked on first use"),
    ("Cracked mug", "My mug arrived cracked along the handle."),
]
PRODUCTS = [
    {"sku": "MUG-01", "name": "陶瓷馬克杯"},
    {"sku": "TEA-02", "name": "陶瓷茶壺"},
    {"sku": "KET-03", "name": "Electric kettle"},
]
Document = dict[str, Any]


def _parser(path: Path) -> Callable[[bytes, datetime], Complaint] | None:
    if path.suffix == ".eml":
        return from_email
    if "social-" in path.name:
        return from_social
    return from_app if "app-" in path.name else None


def corpus_texts() -> list[tuple[str, str]]:
    """(subject, text) of every corpus and sample input intake accepts as a complaint."""
    files = [*sorted((ROOT / "tests" / "corpus" / "inputs").iterdir()),
             *sorted((ROOT / "deploy" / "local" / "samples").iterdir())]  # fmt: skip
    found: list[tuple[str, str]] = []
    for path in files:
        parser = _parser(path)
        if parser is None:
            continue
        try:
            complaint = parser(path.read_bytes(), START)
        except Exception:  # the corpus holds bad inputs on purpose
            continue
        if complaint.auto_reply_reason is None and (complaint.text or complaint.subject):
            found.append((complaint.subject, complaint.text))
    return found


def complaints(count: int, run: str) -> list[Document]:
    """``count`` cases as cases.opened carries them, over 15 days, distinct customers."""
    texts = [*corpus_texts(), *MUG_TEXTS]
    step = timedelta(days=15) / max(count, 1)
    cases = []
    for n in range(count):
        subject, text = texts[n % len(texts)]
        case: Document = {
            "case_number": f"CS-{run}-{n:06d}",
            "channel": "app" if n % 3 == 0 else "email",
            "received_at": (START + step * n).isoformat(),
            "subject": subject,
            "text": text,
            "customer_id": f"C-{run}-{n % (count // 2 + 1)}",
        }
        if n % 3 == 0:
            case["items"] = [PRODUCTS[n % len(PRODUCTS)]]
        cases.append(case)
    return cases


@dataclass
class StoreCommands(monitoring.CommandListener):
    """Commands sent to the store and the statements in them, per phase of the bench."""

    phase: str = ""
    commands: Counter[str] = field(default_factory=Counter)
    statements: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self.phase or event.command_name in {"commitTransaction", "abortTransaction"}:
            return
        self.commands[self.phase] += 1
        collection = event.command.get(event.command_name)
        self.kinds[f"{self.phase} {event.command_name} {collection}"] += 1
        ops = event.command.get("ops") or event.command.get("updates") or [None]
        self.statements[self.phase] += len(ops)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def per_item_ms(seconds: float, items: int) -> float:
    return seconds * 1000 / max(items, 1)


def cpu(cases: list[Document]) -> dict[str, float]:
    policy = load_policy()
    rules = policy.insights
    ignore = folded_terms(rules.ignore_terms)
    categories = []
    started = time.perf_counter()
    for case in cases:
        categories.append(decide(facts_from_opened(case, None, 0), policy).category)
    decided = time.perf_counter() - started
    started = time.perf_counter()
    for case in cases:
        text_features(f"{case['subject']}\n{case['text']}", rules.couriers, rules.cities,
                      rules.keywords_per_script, ignore)  # fmt: skip
    extracted = time.perf_counter() - started
    for case, category in zip(cases, categories, strict=True):
        case["category"] = category
    return {"decide_ms": per_item_ms(decided, len(cases)),
            "keys_ms": per_item_ms(extracted, len(cases))}  # fmt: skip


async def timed(work: Iterable[Callable[[], Awaitable[Any]]], concurrency: int) -> float:
    """Wall time of running ``work`` with at most ``concurrency`` at a time."""
    pending = list(work)
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[Any]]) -> None:
        async with gate:
            await job()

    started = time.perf_counter()
    await asyncio.gather(*(one(job) for job in pending))
    return time.perf_counter() - started


REGIMES = ("quiet", "default")


def _policy(regime: str) -> Policy:
    """The bundled policy; ``quiet``: no group is ever an insight (counting only)."""
    policy = load_policy()
    if regime == "default":
        return policy
    never = {"min_cases": dict.fromkeys(policy.insights.min_cases, 10**6),
             "safety_min_cases": 10**6}  # fmt: skip
    return policy.model_copy(update={"insights": policy.insights.model_copy(update=never)})


async def store(uri: str, cases: list[Document], concurrency: int) -> dict[str, float]:
    listener = StoreCommands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        uri, tz_aware=True, event_listeners=[listener]
    )
    name = f"bench_insights_{uuid.uuid4().hex[:6]}"
    results: dict[str, float] = {}
    try:
        for regime, lanes in itertools.product(REGIMES, (1, concurrency)):
            label = f"{regime}.{lanes}"
            database = CoalescingDatabase(client, f"{name}_{regime}_{lanes}", StoreBatcher(client))
            triaged = database["cases"]
            detector = _detector(database, cases, _policy(regime))
            await detector.store.ensure_indexes()
            joined: list[str] = []

            async def publish(_: list[Document]) -> None:
                return None

            def triage_effect(
                case: Document, triaged: Any = triaged
            ) -> Callable[[], Awaitable[Any]]:
                async def effect() -> None:
                    message = OutboundMessage(
                        id=f"t-{case['case_number']}", topic="cases.triaged",
                        key=case["case_number"], value=json.dumps(case),
                    )  # fmt: skip
                    update = {"$set": {"opened": case, "decision": {"category": case["category"]},
                                       **add_to_outbox([message])}}  # fmt: skip
                    await apply_once(triaged, case["case_number"], f"e-{case['case_number']}",
                                     update)  # fmt: skip
                    await flush_outbox(triaged, case["case_number"], publish)

                return effect

            def observe(
                case: Document, detector: Detector = detector, joined: list[str] = joined
            ) -> Callable[[], Awaitable[Any]]:
                async def counted() -> None:
                    if (await detector.observe(case, case["category"])).insights:
                        joined.append(case["case_number"])

                return counted

            # Alternating blocks of the two, so that the store's state grows alike for both.
            spent = {"triage": 0.0, "detector": 0.0}
            block = max(concurrency * 4, 50)
            for start in range(0, len(cases), block):
                chunk = cases[start : start + block]
                listener.phase = f"{label}.triage"
                spent["triage"] += await timed(map(triage_effect, chunk), lanes)
                listener.phase = f"{label}.detector"
                spent["detector"] += await timed(map(observe, chunk), lanes)
                listener.phase = ""
            results[f"{label}.triage_ms"] = per_item_ms(spent["triage"], len(cases))
            results[f"{label}.detector_ms"] = per_item_ms(spent["detector"], len(cases))
            insights = await database["insights"].count_documents({})
            results[f"{label}.insights_opened"] = float(insights)
            results[f"{label}.joined"] = float(len(joined))
            for side in ("triage", "detector"):
                phase = f"{label}.{side}"
                results[f"{phase}_commands"] = listener.commands[phase] / len(cases)
                results[f"{phase}_statements"] = listener.statements[phase] / len(cases)
            await client.drop_database(f"{name}_{regime}_{lanes}")
    finally:
        await client.close()
    if os.environ.get("BENCH_COMMANDS"):
        for kind, count in sorted(listener.kinds.items()):
            print(f"  {kind}: {count}")
    return results


def _detector(database: Any, cases: list[Document], policy: Policy) -> Detector:
    now = datetime.fromisoformat(cases[-1]["received_at"])

    async def publish(_: list[Document]) -> None:
        return None

    return Detector(InsightStore(database, database["cases"]), lambda: policy, lambda: now,
                    publish, InsightMetrics(CollectorRegistry()))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--complaints", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="CPU rounds (median reported)")
    args = parser.parse_args()
    warm_up()
    run = uuid.uuid4().hex[:6]
    cases = complaints(args.complaints, run)
    rounds = [cpu(cases) for _ in range(args.rounds)]
    figures = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    with ExitStack() as stack:
        uri = os.environ.get("MONGODB_URI") or start_local(stack, kafka=False, mongo=True)[1]
        assert uri is not None
        figures |= asyncio.run(store(uri, cases, args.concurrency))
    print(f"{len(cases)} complaints, {len(corpus_texts()) + len(MUG_TEXTS)} distinct texts")
    print(f"cpu: decide {figures['decide_ms']:.3f} ms, key extraction {figures['keys_ms']:.3f} ms"
          f" per complaint ({figures['keys_ms'] / figures['decide_ms']:.1f}x decide)")  # fmt: skip
    for regime, lanes in itertools.product(REGIMES, (1, args.concurrency)):
        label = f"{regime}.{lanes}"
        triage, detector = figures[f"{label}.triage_ms"], figures[f"{label}.detector_ms"]
        print(f"store, {regime} policy, {lanes} at a time: triage's own effect {triage:.3f} ms, "
              f"detector {detector:.3f} ms per complaint ({detector / triage:.2f}x triage's "
              f"effect); {figures[f'{label}.insights_opened']:.0f} insights opened, "
              f"{figures[f'{label}.joined']:.0f} complaints in one")  # fmt: skip
        print(f"  store commands per complaint: triage {figures[f'{label}.triage_commands']:.2f} "
              f"({figures[f'{label}.triage_statements']:.2f} statements), detector "
              f"{figures[f'{label}.detector_commands']:.2f} "
              f"({figures[f'{label}.detector_statements']:.2f} statements)")  # fmt: skip


if __name__ == "__main__":
    main()
