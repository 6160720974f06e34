"""Intake throughput, as a ratio to a consume-and-ack baseline measured in the same run.

    make bench-intake            (or: python -m tests.bench.intake_throughput --records 3000)

Baseline: a FastStream subscriber with the same delivery settings as the services
(explicit group, NACK_ON_ERROR, commit after each record) that only decodes the JSON.
Intake: the real service opening one case per record (parse, customer lookup, case
number, one store write, two events published, outbox cleared). Both read the same
number of records, pre-published, from the same broker; rates are taken between the
first and the last record handled, so start-up and rebalancing do not count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pymongo import AsyncMongoClient

from tests.support.infra import provide_infra
from tests.support.system import FakeClock, start_services

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"


def inputs(count: int, run: str) -> list[tuple[str, bytes]]:
    """A realistic mix: one third each Big5 email, social post, app form."""
    email = (SAMPLES / "email-big5-cracked-mug.eml").read_bytes()
    post = json.loads((SAMPLES / "social-allergy.json").read_text(encoding="utf-8"))
    form = json.loads((SAMPLES / "app-late-delivery.json").read_text(encoding="utf-8"))
    records = []
    for n in range(count):
        tag = f"{run}-{n}"
        if n % 3 == 0:
            raw = email.replace(b"sample-002", tag.encode()).replace(
                b"=B3=AF=A4p=A9j", f"#{n}".encode()
            )
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


async def publish(bootstrap: str, records: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        batch = [await producer.send(topic, value) for topic, value in records]
        await asyncio.gather(*batch)
    finally:
        await producer.stop()


def rate(stamps: list[float]) -> float:
    return (len(stamps) - 1) / (max(stamps) - min(stamps))


async def baseline(bootstrap: str, records: list[tuple[str, bytes]], run: str) -> float:
    topic = f"bench.baseline.{run}"
    await publish(bootstrap, [(topic, value) for _, value in records])
    stamps: list[float] = []
    done = asyncio.Event()
    broker = KafkaBroker(bootstrap, enable_idempotence=True)

    @broker.subscriber(
        topic, group_id=f"bench-{run}", ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest", decoder=lambda message: message.body,
    )  # fmt: skip
    async def handle(msg: KafkaMessage) -> None:
        json.loads(msg.body) if not msg.body.startswith(b"From:") else msg.body.decode("latin-1")
        stamps.append(time.monotonic())
        if len(stamps) == len(records):
            done.set()

    async with broker:
        await broker.start()
        await asyncio.wait_for(done.wait(), timeout=600)
    return rate(stamps)


async def intake(infra: Any, records: list[tuple[str, bytes]], run: str) -> float:
    await publish(infra.kafka_bootstrap_servers, records)
    namespace = f"bench{run}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri)
    cases = client[f"{namespace}_intake"]["cases"]
    stamps: list[float] = []
    async with AsyncExitStack() as stack:
        await start_services(stack, infra, namespace, FakeClock(), ("intake",))
        deadline = time.monotonic() + 900
        seen = 0
        while seen < len(records) and time.monotonic() < deadline:
            # Cases are opened and published (outbox empty); sample the count over time.
            now = await cases.count_documents({"outbox": {}})
            stamps.extend([time.monotonic()] * (now - seen))
            seen = now
            await asyncio.sleep(0.05)  # sampling interval of the progress probe
    await client.close()
    if seen < len(records):
        raise RuntimeError(f"only {seen} of {len(records)} records were opened")
    return rate(stamps)


async def measure(infra: Any, count: int) -> None:
    run = uuid.uuid4().hex[:8]
    records = inputs(count, run)
    base = await baseline(infra.kafka_bootstrap_servers, records, run)
    measured = await intake(infra, records, run)
    print(f"records: {count} (mixed email / social / app)")
    print(f"baseline consume-and-ack: {base:8.1f} records/s")
    print(f"intake, case per record:  {measured:8.1f} records/s")
    print(f"ratio intake / baseline:  {measured / base:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=3000)
    args = parser.parse_args()
    with ExitStack() as stack:
        infra = provide_infra(stack, print)
        print("\n".join(infra.describe()))
        asyncio.run(measure(infra, args.records))


if __name__ == "__main__":
    main()
