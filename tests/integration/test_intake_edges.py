"""Intake edges: oversized records, customer identity from profiles, DLQ replay."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from services.runtime.dlq_replay import REPLAY_HEADER, Filters, replay
from services.runtime.kafka import topic_partitions
from tests.support.infra import Infra
from tests.support.kafka import EventReader, Upstream
from tests.support.wait import eventually


async def test_oversized_email_goes_to_dlq_with_its_bytes(
    system: Any, upstream: Upstream, reader: EventReader
) -> None:
    ref = f"big-{uuid.uuid4().hex}@x"
    attachment = base64.encodebytes(b"\x00" * (1024 * 1024))
    raw = (
        (
            f"From: big@example.org\r\nSubject: photos\r\nMessage-ID: <{ref}>\r\n"
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
            "see attached\r\n--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + attachment
        + b"--b--\r\n"
    )
    assert len(raw) > 1024 * 1024
    await upstream.send("complaints.inbound.email", raw)
    (rejected,) = await reader.wait_for(
        lambda s: (
            s.type == "complaint.input.rejected"
            and s.data.get("reason_code") == "too_large"
            and base64.b64decode(s.data["original"]) == raw
        ),
        timeout=60,
    )
    assert "exceeds the limit of 1048576 bytes" in rejected.data["reason"]
    assert not reader.matching(lambda s: s.data.get("source_ref") == f"<{ref}>")


async def test_customer_is_recognised_by_email_phone_and_social_id(
    system: Any, upstream: Upstream, reader: EventReader, infra: Infra, namespace: str
) -> None:
    customer = f"C-{uuid.uuid4().hex[:6]}"
    address = f"{customer.lower()}@example.com"
    profile = {"customer_id": customer, "tier": "vip", "emails": [address.upper()],
               "phones": ["+886900000001"], "social": {"line": f"line-{customer}"}}  # fmt: skip
    await upstream.send("customers.profiles", json.dumps(profile).encode(), key=customer.encode())
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri)
    customers = client[f"{namespace}_intake"]["customers"]

    async def profile_stored() -> bool:
        return await customers.find_one({"_id": customer}) is not None

    await eventually(profile_stored, 30, "the profile to reach intake's view")
    await client.close()

    mail_ref = f"<id-{uuid.uuid4().hex}@x>"
    await upstream.send(
        "complaints.inbound.email",
        f"From: {address}\r\nSubject: late\r\nMessage-ID: {mail_ref}\r\n\r\nstill waiting".encode(),
    )
    post = {"platform": "LINE", "post_id": f"ln-{uuid.uuid4().hex}", "visibility": "private",
            "author": {"id": f"line-{customer}"}, "text": "where is my parcel"}  # fmt: skip
    await upstream.send_json("complaints.inbound.social", post)
    form = {"submission_id": f"app-{uuid.uuid4().hex}", "message": "refund please",
            "contact": {"phone": "+886900000001"}, "submitted_at": "2026-11-23T10:00:00+08:00"}  # fmt: skip
    await upstream.send_json("complaints.inbound.app", form)
    for ref in (mail_ref, post["post_id"], form["submission_id"]):
        (opened,) = await reader.wait_for(
            lambda s, ref=ref: s.type == "complaint.case.opened" and s.data["source_ref"] == ref
        )
        assert opened.data["customer_id"] == customer, ref


async def test_dlq_replay_refeeds_the_exact_bytes_with_the_original_receipt_time(
    system: Any, upstream: Upstream, reader: EventReader, infra: Infra
) -> None:
    marker = uuid.uuid4().hex
    broken = f'{{"submission_id": "{marker}", "message": '.encode()
    await upstream.send(
        "complaints.inbound.app", broken, key=marker.encode(),
        headers={"received-at": "2026-11-20T08:00:00+08:00"},
    )  # fmt: skip
    (rejected,) = await reader.wait_for(
        lambda s: (
            s.type == "complaint.input.rejected" and base64.b64decode(s.data["original"]) == broken
        )
    )
    assert rejected.data["received_at"] == "2026-11-20T08:00:00+08:00"

    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap_servers, group_id=None)
    await consumer.start()
    partitions = await topic_partitions(infra.kafka_bootstrap_servers, ["complaints.inbound.app"])
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for partition in partitions:
        await consumer.position(partition)

    chosen = await replay(
        infra.kafka_bootstrap_servers, Filters(topic="complaints.inbound.app", reason_contains=marker), apply=True
    )  # fmt: skip
    assert chosen == 0  # the reason text does not name the marker: nothing matched
    chosen = await replay(
        infra.kafka_bootstrap_servers, Filters(topic="complaints.inbound.app", reason_code="invalid_json"),
        apply=False,
    )  # fmt: skip
    assert chosen >= 1  # a dry run selects, publishes nothing

    await replay(
        infra.kafka_bootstrap_servers,
        Filters(topic="complaints.inbound.app", reason_code="invalid_json", service="intake"),
        apply=True,
    )
    replayed = None
    deadline = time.monotonic() + 30
    while replayed is None and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            for record in records:
                if record.value == broken:
                    replayed = record
    await consumer.stop()
    assert replayed is not None, "the rejected bytes were not re-fed"
    headers = dict(replayed.headers)
    assert headers[REPLAY_HEADER].decode() == rejected.event["id"]
    assert headers["received-at"] == b"2026-11-20T08:00:00+08:00"
    assert replayed.key == marker.encode()
