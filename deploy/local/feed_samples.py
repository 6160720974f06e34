"""Feed the bundled sample complaints in as the upstream channels would, and print each case.

Every run tags the samples' ids (Message-ID, post id, submission id) so that each run
opens fresh cases; then it follows the public topics and, once a case has an offer,
resolves it the way the agent desk would, to show the follow-up date.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.runtime.kafka import topic_partitions

OUTBOUND = ["cases.opened", "cases.triaged", "cases.compensation", "cases.followups",
            "cases.resolved", "complaints.dlq"]  # fmt: skip


def tagged_samples(samples: Path, run: str) -> list[tuple[str, str, bytes]]:
    """(topic, source ref, record value) for every sample complaint."""
    out: list[tuple[str, str, bytes]] = []
    for path in sorted(samples.glob("*.eml")):
        raw = path.read_bytes()
        match = re.search(rb"Message-ID:\s*<([^>]+)>", raw, re.IGNORECASE)
        ref = f"{match.group(1).decode()}.{run}" if match else f"{path.stem}.{run}"
        if match:
            raw = raw.replace(match.group(0), b"Message-ID: <" + ref.encode() + b">")
        out.append(("complaints.inbound.email", f"<{ref}>", raw))
    for path in sorted(samples.glob("*.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        if "post_id" in payload:
            payload["post_id"] = ref = f"{payload['post_id']}.{run}"
            topic = "complaints.inbound.social"
        elif "submission_id" in payload:
            payload["submission_id"] = ref = f"{payload['submission_id']}.{run}"
            topic = "complaints.inbound.app"
        else:
            continue
        out.append((topic, ref, json.dumps(payload, ensure_ascii=False).encode()))
    return out


def profiles(samples: Path) -> list[tuple[bytes, bytes]]:
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
    for key, value in profiles(samples):
        await producer.send_and_wait("customers.profiles", value, key=key)
    inputs = tagged_samples(samples, run)
    now = datetime.now(UTC).isoformat().encode()
    for topic, ref, value in inputs:
        await producer.send_and_wait(topic, value, headers=[("received-at", now)])
        print(f"→ {topic}: {ref}")
    refs = {ref for _, ref, _ in inputs}
    cases: dict[str, str] = {}
    finished: set[str] = set()
    resolving: set[str] = set()
    seen: defaultdict[str, set[str]] = defaultdict(set)
    deadline = time.monotonic() + timeout
    while len(finished) < len(refs) and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            for record in records:
                event = json.loads(record.value)
                data = event.get("data", {})
                if event["type"] == "complaint.input.rejected":
                    print(f"  DLQ: {data.get('reason')}")
                    continue
                number = data.get("case_number")
                if event["type"] == "complaint.case.opened" and data.get("source_ref") in refs:
                    cases[number] = data["source_ref"]
                if number not in cases or event["id"] in seen[number]:
                    continue
                seen[number].add(event["id"])
                print(f"  {number} {describe(event)}")
                if event["type"].startswith("complaint.compensation.") and number not in resolving:
                    resolving.add(number)
                    action = {
                        "action_id": f"demo-{run}-{number}",
                        "case_number": number,
                        "type": "resolve",
                        "actor": "demo-agent",
                        "at": datetime.now(UTC).isoformat(),
                        "resolution": {"summary": "handled in the demo", "root_cause": "one_off"},
                    }
                    await producer.send_and_wait(
                        "cases.actions", json.dumps(action).encode(), key=number.encode()
                    )
                if event["type"] == "complaint.case.resolved":
                    finished.add(cases[number])
    await producer.stop()
    await consumer.stop()
    missing = refs - finished
    print(f"\n{len(finished)} of {len(refs)} sample complaints went all the way through.")
    for ref in sorted(missing):
        print(f"  not finished within {timeout:.0f}s: {ref}")
    return 0 if not missing else 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", type=Path, required=True)
    parser.add_argument("--samples", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    endpoints = json.loads(args.endpoints.read_text())
    return asyncio.run(feed(endpoints["kafka_bootstrap_servers"], args.samples, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
