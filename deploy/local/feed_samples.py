"""Feed the bundled sample complaints in as the upstream channels would, and print each case.

The samples live next to this file (deploy/local/samples/). Every run tags the samples'
ids (Message-ID, In-Reply-To, References, post id, submission id) with a run id, so a
feed never repeats the ids of an earlier one. A reply (an email with In-Reply-To, a post
with in_reply_to) goes in once the case it answers is open, as it would in real life.
Then the feeder follows the public topics and, once a case has an offer and every reply
to it has arrived, resolves it the way the agent desk would, to show the follow-up date.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.runtime.kafka import topic_partitions

SAMPLES = Path(__file__).resolve().parent / "samples"
OUTBOUND = ["cases.opened", "cases.triaged", "cases.compensation", "cases.followups",
            "cases.resolved", "complaints.dlq"]  # fmt: skip
HEADER_IDS = re.compile(rb"^(?:Message-ID|In-Reply-To|References):[^\r\n]*", re.I | re.M)


@dataclass(frozen=True)
class Sample:
    """One sample complaint as it goes on the wire, with its ids tagged for this run."""

    file: str
    topic: str
    ref: str  # the source_ref intake reports: <Message-ID>, post id or submission id
    value: bytes
    replies_to: str | None = None  # the ref of the earlier message this one answers


def _tag_mail(raw: bytes, run: str) -> bytes:
    # <local@domain> becomes <local.RUN@domain> in every id header, so threads stay threads.
    return HEADER_IDS.sub(
        lambda line: re.sub(rb"<([^<>@\s]+)@", rb"<\1." + run.encode() + b"@", line.group(0)),
        raw,
    )


def _header_id(raw: bytes, name: bytes) -> str | None:
    found = re.search(rb"^" + name + rb":\s*(<[^<>\s]+>)", raw, re.I | re.M)
    return found.group(1).decode() if found else None


def tagged_samples(samples: Path, run: str) -> list[Sample]:
    """Every sample complaint (emails first, then posts and forms), ids tagged with ``run``."""
    out: list[Sample] = []
    for path in sorted(samples.glob("*.eml")):
        raw = _tag_mail(path.read_bytes(), run)
        ref = _header_id(raw, b"Message-ID") or f"<{path.stem}.{run}@samples>"
        replies_to = _header_id(raw, b"In-Reply-To")
        out.append(Sample(path.name, "complaints.inbound.email", ref, raw, replies_to))
    for path in sorted(samples.glob("*.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        replies_to = None
        if "post_id" in payload:
            payload["post_id"] = ref = f"{payload['post_id']}.{run}"
            if payload.get("in_reply_to"):
                payload["in_reply_to"] = replies_to = f"{payload['in_reply_to']}.{run}"
            topic = "complaints.inbound.social"
        elif "submission_id" in payload:
            payload["submission_id"] = ref = f"{payload['submission_id']}.{run}"
            topic = "complaints.inbound.app"
        else:
            continue  # a customer profile: see profiles()
        value = json.dumps(payload, ensure_ascii=False).encode()
        out.append(Sample(path.name, topic, ref, value, replies_to))
    return out


def profiles(samples: Path) -> list[tuple[bytes, bytes]]:
    """(key, value) of every sample CRM profile, for the compacted customers.profiles."""
    found = []
    for path in sorted(samples.glob("customer-profile*.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        found.append((payload["customer_id"].encode(), path.read_bytes()))
    return found


def describe(event: dict[str, Any]) -> str:
    data = event["data"]
    kind = event["type"].removeprefix("complaint.")
    if kind == "case.opened":
        return f"opened from {data['channel']} ({data['language']}): {data['subject']}"
    if kind == "case.message_added":
        return f"message added from {data['channel']}: {data['text'][:60]}"
    if kind == "case.triaged":
        return (
            f"triaged {data['category']} / {data['urgency']}"
            f"{' (escalated)' if data['escalated'] else ''}, first response due "
            f"{data['first_response_due']}, resolve by {data['resolution_due']}\n"
            f"      reasons: {'; '.join(data['reasons'] + data['escalation_reasons'])}"
        )
    if kind == "compensation.proposed":
        options = ", ".join(
            f"{o['kind']} {o['value']['amount'] if o['value'] else ''}".strip()
            for o in data["options"]
        )
        return f"offer {data['offer_id']}: {options} (expires {data['expires_at']})"
    if kind == "compensation.approval_requested":
        return (
            f"offer {data['offer_id']} needs {data['approver_role']} approval for "
            f"{data['requested']['amount']} {data['requested']['currency']}"
        )
    if kind == "followup.scheduled":
        return f"satisfaction check scheduled for {data['due_at']}"
    if kind == "case.resolved":
        return f"resolved; SLA met: {data['sla_met']}; follow-up {data['followup_due_at']}"
    return kind


def resolve_action(run: str, case_number: str) -> bytes:
    return json.dumps(
        {
            "action_id": f"demo-{run}-{case_number}",
            "case_number": case_number,
            "type": "resolve",
            "actor": "demo-agent",
            "at": datetime.now(UTC).isoformat(),
            "resolution": {"summary": "handled in the demo", "root_cause": "one_off"},
        }
    ).encode()


class DemoFeed:
    """The samples of one run, in flight: which cases they opened and what each still needs."""

    def __init__(self, producer: AIOKafkaProducer, inputs: list[Sample], run: str) -> None:
        self.producer, self.run = producer, run
        self.originals = {s.ref for s in inputs if s.replies_to is None}
        self.replies = {s.ref for s in inputs if s.ref not in self.originals}
        # Replies wait for the case they answer (a reply to nothing we send goes in at once).
        self.waiting: defaultdict[str, list[Sample]] = defaultdict(list)
        for sample in inputs:
            if sample.replies_to in self.originals:
                self.waiting[sample.replies_to].append(sample)
        self.cases: dict[str, str] = {}  # case number -> ref of the sample that opened it
        self.unanswered: defaultdict[str, set[str]] = defaultdict(set)  # replies not yet in
        self.added: set[str] = set()
        self.offered: set[str] = set()
        self.resolving: set[str] = set()
        self.finished: set[str] = set()
        self.seen: set[str] = set()

    async def send(self, sample: Sample) -> None:
        now = datetime.now(UTC).isoformat().encode()
        await self.producer.send_and_wait(
            sample.topic, sample.value, headers=[("received-at", now)]
        )
        print(f"→ {sample.topic}: {sample.file} as {sample.ref}")

    async def start(self, inputs: list[Sample]) -> None:
        waiting = {id(s) for queued in self.waiting.values() for s in queued}
        for sample in inputs:
            if id(sample) not in waiting:
                await self.send(sample)

    @property
    def done(self) -> bool:
        return len(self.finished) == len(self.originals)

    async def on_event(self, event: dict[str, Any]) -> None:
        data = event.get("data", {})
        kind = event["type"]
        if kind == "complaint.input.rejected":
            print(f"  DLQ: {data.get('reason')}")
            return
        number, source_ref = data.get("case_number"), data.get("source_ref")
        if kind == "complaint.case.opened" and source_ref in self.originals:
            self.cases[number] = source_ref
        if number not in self.cases or event["id"] in self.seen:
            return
        self.seen.add(event["id"])
        print(f"  {number} {describe(event)}")
        if kind == "complaint.case.opened":
            for reply in self.waiting.pop(source_ref, []):
                self.unanswered[number].add(reply.ref)
                await self.send(reply)
        elif kind == "complaint.case.message_added" and source_ref in self.replies:
            self.added.add(source_ref)
            self.unanswered[number].discard(source_ref)
        elif kind.startswith("complaint.compensation."):
            self.offered.add(number)
        elif kind == "complaint.case.resolved":
            self.finished.add(self.cases[number])
        await self.resolve_when_ready(number)

    async def resolve_when_ready(self, number: str) -> None:
        if number in self.offered and not self.unanswered[number] and number not in self.resolving:
            self.resolving.add(number)
            await self.producer.send_and_wait(
                "cases.actions", resolve_action(self.run, number), key=number.encode()
            )

    def report(self, timeout: float) -> int:
        missing = (self.originals - self.finished) | (self.replies - self.added)
        print(
            f"\n{len(self.finished)} of {len(self.originals)} sample cases went all the way "
            f"through; {len(self.added)} of {len(self.replies)} replies joined their case."
        )
        for ref in sorted(missing):
            print(f"  not done within {timeout:.0f}s: {ref}")
        if missing and not self.cases:
            # Intake treats the same words from the same sender within its duplicate window
            # as one complaint, whatever the ids: a second feed into a running system is that.
            print("  (fed into a system that saw these samples minutes ago? They are duplicates "
                  "there; `make down`, then `make run` starts on fresh demo state.)")  # fmt: skip
        return 0 if not missing else 1


async def feed(bootstrap: str, samples: Path, timeout: float) -> int:
    run = uuid.uuid4().hex[:8]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    # Assign explicitly after a metadata refresh: the services created these topics a
    # moment ago, and a name subscription would only notice them at the next refresh.
    partitions = await topic_partitions(bootstrap, OUTBOUND)
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for partition in partitions:
        await consumer.position(partition)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in profiles(samples):
            await producer.send_and_wait("customers.profiles", value, key=key)
            print(f"→ customers.profiles: {key.decode()}")
        inputs = tagged_samples(samples, run)
        demo = DemoFeed(producer, inputs, run)
        await demo.start(inputs)
        deadline = time.monotonic() + timeout
        while not demo.done and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    await demo.on_event(json.loads(record.value))
    finally:
        await producer.stop()
        await consumer.stop()
    return demo.report(timeout)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", type=Path, required=True)
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    endpoints = json.loads(args.endpoints.read_text())
    return asyncio.run(feed(endpoints["kafka_bootstrap_servers"], args.samples, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
