"""What the systemic-issue detector costs triage, measured on triage itself: the real
handler and batch path (``ServiceKit.process_batch``: lanes, coalescing store client, one
transaction per store round) on a real store, WITH the detector and WITHOUT it (the
same service with the detector bypassed), batch after batch alternately, in one run.

    .venv/bin/python -m tests.bench.insights [--complaints 2000] [--batch 500]

Streams (cases.opened events as intake publishes them, in batches as the consumer
gets them):

- ``recall``: after 14 days of steady history (1 complaint a day per product from
  other customers, not measured), ``--complaints`` complaints in 12 hours from 500
  customers about 3 products (cracked mugs, leaking teapots, kettles that trip the
  fuse), in both scripts and English, app forms with the SKU and mails without: every
  key of the three products goes over its threshold and stays there;
- ``steady``: ``--complaints`` complaints spread over 15 days, the corpus' and samples'
  texts cycled, a third app forms naming one of the 3 products, ~2 complaints per
  customer: no insight.

Printed per stream: triage's CPU per complaint (this process: handler, detector,
store client; not the store server's), store commands per complaint (finds,
bulkWrites, updates, …; not commit/abort) and write statements per complaint (what the
bulkWrites carry), with and without the detector and their ratio; the same for the
first and the second half of the stream (the detector's cost must not grow with the
surge); insights opened and events published. Kafka is not involved: published events
are counted, not sent. The machine is shared: read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import monitoring

from services.intake.complaint import Complaint, from_app, from_email, from_social
from services.runtime.kit import ServiceKit
from services.runtime.metrics import STORE_LISTENERS
from services.runtime.records import InboundRecord
from services.triage.insights.keys import warm_up
from services.triage.insights.turn import Observed
from services.triage.service import TriageService
from services.triage.settings import TriageSettings
from tests.support.infra import start_local

ROOT = Path(__file__).resolve().parents[2]
SURGE = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
Document = dict[str, Any]
PRODUCTS = {
    "MUG-01": ({"sku": "MUG-01", "name": "陶瓷馬克杯"}, [
        ("", "馬克杯第一次倒熱水把手就裂了"), ("馬克杯裂了", "訂購的馬克杯收到時杯身就有裂痕。"),
        ("", "马克杯的把手裂开了"), ("", "The mug handle cracked on first use"),
        ("Cracked mug", "My mug arrived cracked along the handle.")]),
    "TEA-02": ({"sku": "TEA-02", "name": "陶瓷茶壺"}, [
        ("", "茶壺的壺嘴一直漏水"), ("茶壺漏水", "新買的茶壺倒水時壺蓋漏水。"),
        ("", "茶壶漏水，桌子都湿了"), ("", "The teapot leaks from the lid"),
        ("Leaking teapot", "My teapot leaks every time I pour.")]),
    "KET-03": ({"sku": "KET-03", "name": "Electric kettle"}, [
        ("", "快煮壺一插電就跳電"), ("快煮壺跳電", "電熱水壺插上電源後整個房間跳電。"),
        ("", "电热水壶一插电就跳闸"), ("", "The electric kettle trips the fuse"),
        ("Kettle trips fuse", "My new kettle trips the breaker when switched on.")]),
}  # fmt: skip


def _parser(path: Path) -> Any:
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
            complaint: Complaint = parser(path.read_bytes(), SURGE)
        except Exception:  # the corpus holds bad inputs on purpose
            continue
        if complaint.auto_reply_reason is None and (complaint.text or complaint.subject):
            found.append((complaint.subject, complaint.text))
    return found


def opened(number: str, customer: str, at: datetime, subject: str, text: str,
           item: Document | None) -> Document:  # fmt: skip
    data: Document = {"case_number": number, "channel": "app" if item else "email",
                      "customer_id": customer, "language": "zh-Hant", "received_at": at.isoformat(),
                      "subject": subject, "text": text, "source_ref": f"ref-{number}"}  # fmt: skip
    if item:
        data["items"] = [item]
    return data


def recall(count: int, run: str) -> tuple[list[Document], list[Document]]:
    """(history, surge): 14 days of one complaint a day per product, then ``count``
    complaints in 12 hours from 500 customers about the 3 products."""
    history = []
    for day in range(14, 0, -1):
        for index, (item, texts) in enumerate(PRODUCTS.values()):
            subject, text = texts[day % len(texts)]
            at = SURGE - timedelta(days=day, hours=-index)
            history.append(opened(f"CS-{run}-h{day}-{index}", f"H-{run}-{day}-{index}", at,
                                  subject, text, item if day % 2 else None))  # fmt: skip
    surge = []
    step = timedelta(hours=12) / max(count, 1)
    products = list(PRODUCTS.values())
    for n in range(count):
        item, texts = products[n % 3]
        subject, text = texts[(n // 3) % len(texts)]
        surge.append(opened(f"CS-{run}-{n:06d}", f"C-{run}-{n % 500}", SURGE + step * n,
                            subject, text, item if n % 2 == 0 else None))  # fmt: skip
    return history, surge


def steady(count: int, run: str) -> list[Document]:
    texts = corpus_texts()
    step = timedelta(days=15) / max(count, 1)
    items = [item for item, _ in PRODUCTS.values()]
    return [opened(f"CS-{run}-{n:06d}", f"C-{run}-{n % (count // 2 + 1)}",
                   SURGE - timedelta(days=15) + step * n, *texts[n % len(texts)],
                   items[n % 3] if n % 3 == 0 else None)
            for n in range(count)]  # fmt: skip


def records(cases: list[Document], topic: str, offset: int) -> list[InboundRecord]:
    found = []
    for index, data in enumerate(cases):
        event = {"specversion": "1.0", "id": str(uuid.uuid5(uuid.NAMESPACE_URL, data["case_number"])),
                 "source": "/complaints/intake", "type": "complaint.case.opened",
                 "time": data["received_at"], "subject": data["case_number"],
                 "datacontenttype": "application/json", "data": data}  # fmt: skip
        found.append(InboundRecord(topic, 0, offset + index, data["case_number"].encode(),
                                   json.dumps(event, ensure_ascii=False).encode(), 0))  # fmt: skip
    return found


@dataclass
class Counted(monitoring.CommandListener):
    """Store commands and write statements one service sends, while counting."""

    on: bool = False
    commands: int = 0
    statements: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self.on or event.command_name in {"commitTransaction", "abortTransaction"}:
            return
        self.commands += 1
        self.kinds[event.command_name] += 1
        ops = event.command.get("ops") or event.command.get("updates")
        self.statements += len(ops) if ops else 0

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class Triage:
    """One triage service on its own database, fed batches directly."""

    def __init__(self, uri: str, database: str, detector: bool) -> None:
        self.now = SURGE
        self.counted = Counted()
        STORE_LISTENERS.append(self.counted)
        try:
            settings = TriageSettings(mongodb_uri=uri, mongodb_database_prefix=database,
                                      metrics_enabled=False)  # fmt: skip
            self.kit = ServiceKit("triage", settings, clock=lambda: self.now)
        finally:
            STORE_LISTENERS.remove(self.counted)
        self.published: Counter[str] = Counter()
        self.rejected = ""

        async def publish(messages: list[Document]) -> None:
            for message in messages:
                event = json.loads(message["value"])
                self.published[event["type"]] += 1
                if event["type"] == "complaint.input.rejected" and not self.rejected:
                    self.rejected = str(event["data"].get("reason"))
                    print(f"    dead-lettered: {self.rejected}")

        self.kit.publish = publish  # type: ignore[method-assign]
        self.service = TriageService(self.kit, settings)
        self.service.register()
        if not detector:

            async def bypass(opened: Document, decision: Any, stored: Any, event_id: str) -> Any:
                return decision, Observed()

            self.service.insights.observe = bypass  # type: ignore[method-assign]
        self.cpu = 0.0
        # Where the detector's CPU goes: its pure steps, timed exactly (no awaits inside).
        self.split: Counter[str] = Counter()
        if detector:
            import services.triage.insights.detection as detection
            import services.triage.insights.turn as turn

            for module, name in ((detection, "text_features"), (detection, "plan_turn"),
                                 (turn, "insight_message")):  # fmt: skip
                setattr(module, name, self._timed(name, getattr(module, name)))

    def _timed(self, name: str, work: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return work(*args, **kwargs)
            finally:
                self.split[name] += time.process_time() - started

        return timed

    async def start(self) -> None:
        for hook in self.kit._startup:
            await hook()

    async def batch(self, batch: list[InboundRecord], measured: bool) -> float:
        self.now = max(datetime.fromisoformat(json.loads(r.value or b"")["time"]) for r in batch)
        self.counted.on = measured
        started = time.process_time()
        rewind = await self.kit.process_batch(batch)
        spent = time.process_time() - started
        self.counted.on = False
        assert not rewind, f"records left unfinished: {rewind}"
        return spent


@dataclass
class Half:
    cpu: float = 0.0
    commands: int = 0
    statements: int = 0
    complaints: int = 0


async def measure(uri: str, name: str, history: list[Document], stream: list[Document],
                  batch: int) -> dict[str, list[Half]]:  # fmt: skip
    services = {side: Triage(uri, f"bench_{name}_{side}_{uuid.uuid4().hex[:4]}", side == "with")
                for side in ("with", "without")}  # fmt: skip
    halves: dict[str, list[Half]] = {side: [Half(), Half()] for side in services}
    for service in services.values():
        await service.start()
    offset = 0
    for measured, cases in ((False, history), (True, stream)):
        for start in range(0, len(cases), batch):
            chunk = records(cases[start : start + batch], "cases.opened", offset + start)
            half = 0 if start < len(cases) / 2 else 1
            for side, service in services.items():  # alternately, batch after batch
                before = (service.counted.commands, service.counted.statements)
                spent = await service.batch(chunk, measured)
                if measured:
                    figures = halves[side][half]
                    figures.cpu += spent
                    figures.commands += service.counted.commands - before[0]
                    figures.statements += service.counted.statements - before[1]
                    figures.complaints += len(chunk)
        offset += len(cases)
    for side, service in services.items():
        published = dict(sorted(service.published.items()))
        insights = await service.kit.db["insights"].count_documents({})
        kinds = Counter(
            f"{doc['kind']}/{doc['category']}"
            for doc in await service.kit.db["insights"]
            .find({}, {"kind": 1, "category": 1})
            .sort("_id", 1)
            .to_list(None)
        )
        if kinds:
            print(f"    insights by kind/category: {dict(sorted(kinds.items()))}")
        print(f"  {side} the detector: {insights} insights stored; published {published}")
        if service.split:
            print(
                "    detector's pure steps, CPU per complaint (event building inside the plan): "
                + ", ".join(
                    f"{k} {v * 1000 / len(stream):.2f} ms" for k, v in service.split.items()
                )
            )
        if os.environ.get("BENCH_COMMANDS"):
            print(f"    commands: {dict(service.counted.kinds)}")
        await service.kit.mongo.drop_database(service.kit.db.name)
        await service.kit.mongo.close()
    return halves


def report(name: str, halves: dict[str, list[Half]]) -> None:
    def line(label: str, with_: Half, without: Half) -> str:
        def per(h: Half, value: float) -> float:
            return value / max(h.complaints, 1)

        cpu_w, cpu_o = per(with_, with_.cpu) * 1000, per(without, without.cpu) * 1000
        com_w, com_o = per(with_, with_.commands), per(without, without.commands)
        st_w, st_o = per(with_, with_.statements), per(without, without.statements)
        return (f"  {label:<12} CPU {cpu_w:.2f} vs {cpu_o:.2f} ms/complaint "
                f"(+{(cpu_w / cpu_o - 1) * 100:.0f} %); store commands {com_w:.2f} vs {com_o:.2f} "
                f"(+{com_w - com_o:.2f}); write statements {st_w:.2f} vs {st_o:.2f} "
                f"(+{st_w - st_o:.2f}) per complaint")  # fmt: skip

    def total(halves_: list[Half]) -> Half:
        return Half(*(sum(getattr(h, f) for h in halves_)
                      for f in ("cpu", "commands", "statements", "complaints")))  # fmt: skip

    print(f"{name}: with the detector vs without it")
    print(line("whole", total(halves["with"]), total(halves["without"])))
    print(line("first half", halves["with"][0], halves["without"][0]))
    print(line("second half", halves["with"][1], halves["without"][1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--complaints", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500, help="records per batch (poll)")
    parser.add_argument("--streams", default="recall,steady")
    args = parser.parse_args()
    warm_up()
    run = uuid.uuid4().hex[:6]
    with ExitStack() as stack:
        uri = os.environ.get("MONGODB_URI") or start_local(stack, kafka=False, mongo=True)[1]
        assert uri is not None
        for name in args.streams.split(","):
            history, stream = (recall(args.complaints, run) if name == "recall"
                               else ([], steady(args.complaints, run)))  # fmt: skip
            print(
                f"{name}: {len(stream)} complaints after {len(history)} of history, "
                f"batches of {args.batch}"
            )
            report(name, asyncio.run(measure(uri, name, history, stream, args.batch)))


if __name__ == "__main__":
    main()
