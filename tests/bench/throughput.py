"""Service throughput, as a ratio to a consume-and-ack baseline measured in the same run.

    make bench ARGS="--service intake --records 3000"
    make bench ARGS="--service triage --records 3000"
    make bench ARGS="--service intake --records 600 --metrics-overhead 2"

Baseline: a FastStream subscriber with the services' delivery settings (explicit group,
NACK_ON_ERROR, a commit after every record) that only decodes each record, reading the
same pre-published records from the same broker. Service: the real service on its own
topic prefix (nothing else reads or writes there), reading the same records.
Rates are taken from the Kafka timestamps of the first and last outputs (or handler
calls), so start-up and group joins do not count. Nothing polls the store meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import uuid
from contextlib import AsyncExitStack, ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.runtime.kafka import ensure_topics
from tests.support.infra import provide_infra
from tests.support.kafka import EventReader
from tests.support.system import FakeClock, start_services

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "local" / "samples"
OUTPUT = {"intake": "cases.opened", "triage": "cases.triaged"}


def intake_inputs(count: int, run: str) -> list[tuple[str, bytes]]:
    """A realistic mix: one third each Big5 email, social post, app form.

    Every record has its own id and its own words (a number appended to the subject or
    text), so none is a duplicate of another and each opens a case.
    """
    email = (SAMPLES / "email-big5-cracked-teapot.eml").read_bytes()
    post = json.loads((SAMPLES / "social-public-heater-smoke.json").read_text(encoding="utf-8"))
    form = json.loads((SAMPLES / "app-late-delivery.json").read_text(encoding="utf-8"))
    records = []
    for n in range(count):
        tag = f"{run}-{n}"
        if n % 3 == 0:
            raw = re.sub(rb"(?m)^Message-ID: <[^>]+>", f"Message-ID: <{tag}@bench>".encode(), email)
            raw = re.sub(rb"(?m)^(Subject: [^\r\n]*)", rb"\1 #" + str(n).encode(), raw)
            records.append(("complaints.inbound.email", raw))
        elif n % 3 == 1:
            body = {**post, "post_id": tag, "text": f"{post['text']} #{n}"}
            records.append(
                ("complaints.inbound.social", json.dumps(body, ensure_ascii=False).encode())
            )
        else:
            body = {**form, "submission_id": tag, "message": f"{form['message']} #{n}"}
            records.append(
                ("complaints.inbound.app", json.dumps(body, ensure_ascii=False).encode())
            )
    return records


def triage_inputs(count: int, run: str) -> list[tuple[str, bytes]]:
    texts = ["我兒子吃完全身起疹子送急診", "信用卡被扣了兩次", "包裹已經延遲五天了",
             "I was not injured, but the mug is cracked", "我会起诉你们"]  # fmt: skip
    records = []
    for n in range(count):
        case = f"CS20261123-{run}{n:05d}"
        event = {"specversion": "1.0", "id": f"o-{case}", "source": "/bench",
                 "type": "complaint.case.opened", "time": "2026-11-23T10:00:00+08:00",
                 "subject": case, "datacontenttype": "application/json",
                 "data": {"case_number": case, "channel": ["email", "social", "app"][n % 3],
                          "customer_id": None, "language": "zh-Hant", "subject": "",
                          "received_at": "2026-11-23T10:00:00+08:00", "text": texts[n % 5],
                          "source_ref": case}}  # fmt: skip
        records.append(("cases.opened", json.dumps(event, ensure_ascii=False).encode()))
    return records


async def publish(bootstrap: str, records: list[tuple[str, bytes]], prefix: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [await producer.send(prefix + topic, value) for topic, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def rate(stamps_ms: list[int]) -> float:
    return (len(stamps_ms) - 1) / ((max(stamps_ms) - min(stamps_ms)) / 1000)


async def baseline(bootstrap: str, records: list[tuple[str, bytes]], run: str) -> float:
    topic = f"bench.baseline.{run}"
    await publish(bootstrap, [(topic, value) for _, value in records], "")
    stamps: list[int] = []
    done = asyncio.Event()
    broker = KafkaBroker(bootstrap, enable_idempotence=True, logger=None)

    @broker.subscriber(
        topic, group_id=f"bench-{run}", ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest", decoder=lambda message: message.body,
    )  # fmt: skip
    async def handle(msg: KafkaMessage) -> None:
        body = msg.body
        if body.startswith(b"{"):
            json.loads(body)
        stamps.append(int(time.time() * 1000))
        if len(stamps) == len(records):
            done.set()

    async with broker:
        await broker.start()
        await asyncio.wait_for(done.wait(), timeout=900)
    return rate(stamps)


async def service(
    infra: Any, name: str, records: list[tuple[str, bytes]], run: str, **settings: Any
) -> float:
    prefix = f"bench{run}."
    await ensure_topics(infra.kafka_bootstrap_servers, 3, prefix)
    await publish(infra.kafka_bootstrap_servers, records, prefix)
    reader = EventReader(infra.kafka_bootstrap_servers, (prefix + OUTPUT[name],))
    await reader.start()
    try:
        async with AsyncExitStack() as stack:
            # The clock stands at the inputs' receipt time: cases are triaged as they arrive,
            # not hours later with every deadline already overdue.
            clock = FakeClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
            await start_services(
                stack, infra, f"bench{run}", clock, (name,), topic_prefix=prefix, **settings
            )
            wanted = "complaint.case.opened" if name == "intake" else "complaint.case.triaged"
            outputs = await reader.wait_for(
                lambda s: s.type == wanted, timeout=1800, count=len(records)
            )
    finally:
        await reader.stop()
    return rate([seen.timestamp_ms for seen in outputs])


async def measure(infra: Any, name: str, count: int) -> None:
    run = uuid.uuid4().hex[:8]
    records = (intake_inputs if name == "intake" else triage_inputs)(count, run)
    base = await baseline(infra.kafka_bootstrap_servers, records, run)
    measured = await service(infra, name, records, run)
    print(f"{name}: {count} records")
    print(f"  baseline consume-and-ack: {base:8.1f} records/s")
    print(f"  {name:<24} {measured:8.1f} records/s")
    print(f"  ratio {name} / baseline:  {measured / base:8.3f}")


async def metrics_overhead(infra: Any, name: str, count: int, rounds: int) -> None:
    """The service with and without metrics, alternating (off, on, off, on, …) so that a
    drift of the machine or the store during the run falls on both alike. Each run has
    its own topics and its own fresh database."""
    run = uuid.uuid4().hex[:8]
    records = (intake_inputs if name == "intake" else triage_inputs)(count, run)
    base = await baseline(infra.kafka_bootstrap_servers, records, run)
    rates: dict[bool, list[float]] = {False: [], True: []}
    for round_number in range(rounds):
        for enabled in (False, True):
            tag = f"{run}{round_number}{'m' if enabled else 'n'}"
            measured = await service(infra, name, records, tag, metrics_enabled=enabled)
            rates[enabled].append(measured)
            print(f"  round {round_number + 1}, metrics {'on ' if enabled else 'off'}: "
                  f"{measured:8.1f} records/s")  # fmt: skip
    on, off = (sum(rates[flag]) / len(rates[flag]) for flag in (True, False))
    print(f"{name}: {count} records, {rounds} round(s) each")
    print(f"  baseline consume-and-ack: {base:8.1f} records/s")
    print(f"  metrics off (mean):       {off:8.1f} records/s  ratio to baseline {off / base:.3f}")
    print(f"  metrics on  (mean):       {on:8.1f} records/s  ratio to baseline {on / base:.3f}")
    print(f"  metrics on / off:         {on / off:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", choices=sorted(OUTPUT), default="intake")
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--metrics-overhead", type=int, metavar="ROUNDS", default=0,
                        help="compare the service with and without metrics, ROUNDS times each")  # fmt: skip
    args = parser.parse_args()
    with ExitStack() as stack:
        infra = provide_infra(stack, print)
        print("\n".join(infra.describe()))
        if args.metrics_overhead:
            asyncio.run(metrics_overhead(infra, args.service, args.records, args.metrics_overhead))
        else:
            asyncio.run(measure(infra, args.service, args.records))


if __name__ == "__main__":
    main()
