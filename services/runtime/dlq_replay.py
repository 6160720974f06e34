"""Re-feed dead-lettered records after a fix: ``make dlq-replay ARGS="--topic … --apply"``.

Reads complaints.dlq from the beginning, picks the records that match the filters, and
publishes each original value (exact bytes, original key) back to its original topic,
with the original `received-at` so deadlines still count from the first receipt.
Without --apply it only lists what it would replay. Replaying twice is harmless: the
services de-duplicate on source ids and event ids.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.topics import DLQ
from services.runtime.connections import as_client_kwargs, kafka_client_kwargs
from services.runtime.kafka import topic_partitions
from services.runtime.settings import ConnectionSettings

REPLAY_HEADER = "dlq-replay-of"


@dataclass(frozen=True)
class Filters:
    topic: str | None = None
    reason_contains: str | None = None
    reason_code: str | None = None
    service: str | None = None

    def accept(self, data: dict[str, Any]) -> bool:
        return (
            (self.topic is None or data.get("topic") == self.topic)
            and (self.reason_code is None or data.get("reason_code") == self.reason_code)
            and (self.service is None or data.get("service") == self.service)
            and (
                self.reason_contains is None
                or self.reason_contains.lower() in str(data.get("reason", "")).lower()
            )
        )


async def read_dlq(connection: str | dict[str, Any]) -> list[dict[str, Any]]:
    """Every rejection currently in the DLQ, oldest first per partition."""
    kafka = as_client_kwargs(connection)
    consumer = AIOKafkaConsumer(**kafka, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await topic_partitions(kafka, [DLQ])
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        events: list[dict[str, Any]] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in partitions])

        while await behind():
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                events.extend(json.loads(record.value) for record in records)
        return events
    finally:
        await consumer.stop()


async def replay(connection: str | dict[str, Any], filters: Filters, apply: bool) -> int:
    kafka = as_client_kwargs(connection)
    events = await read_dlq(kafka)
    chosen: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.get("type") == "complaint.input.rejected" and filters.accept(event["data"]):
            chosen.setdefault(event["id"], event)  # one rejection, once
    producer = AIOKafkaProducer(**kafka, acks="all") if apply else None
    if producer:
        await producer.start()
    try:
        for event_id, event in chosen.items():
            data = event["data"]
            where = f"{data['topic']}/{data['partition']}/{data['offset']}"
            print(f"{'replay' if apply else 'would replay'} {where}: {data['reason']}")
            if producer is None:
                continue
            headers = [(REPLAY_HEADER, event_id.encode())]
            if data.get("received_at"):
                headers.append(("received-at", str(data["received_at"]).encode()))
            await producer.send_and_wait(
                data["topic"],
                base64.b64decode(data["original"]),
                key=base64.b64decode(data["key"]) if data.get("key") else None,
                headers=headers,
            )
    finally:
        if producer:
            await producer.stop()
    print(f"{len(chosen)} record(s) {'replayed' if apply else 'selected (dry run: add --apply)'}")
    return len(chosen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--topic", help="only records that came from this topic")
    parser.add_argument("--reason-code", help="e.g. invalid_json, schema_violation, internal_error")
    parser.add_argument("--reason-contains", help="substring of the reason text")
    parser.add_argument("--service", help="only records rejected by this service")
    parser.add_argument("--apply", action="store_true", help="publish (default: dry run)")
    args = parser.parse_args(argv)
    filters = Filters(args.topic, args.reason_contains, args.reason_code, args.service)
    # The services' own connection settings (KAFKA_SECURITY_PROTOCOL, credentials, CA).
    asyncio.run(replay(kafka_client_kwargs(ConnectionSettings()), filters, args.apply))
    return 0


if __name__ == "__main__":
    sys.exit(main())
