"""A reply joins its case once, whatever the store (found by make chaos on FerretDB: a
re-sent reply was stored again and its message_added went out under the same id with a new
time, i.e. one event id with several payloads)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.intake.complaint import source_key_for
from services.intake.store import IntakeStore
from services.runtime.errors import RetryLater
from tests.support.infra import Infra
from tests.support.isolated import Isolated
from tests.support.system import FakeClock


def post(post_id: str, text: str, in_reply_to: str | None = None) -> bytes:
    return json.dumps({"platform": "line", "post_id": post_id, "in_reply_to": in_reply_to,
                       "author": {"id": f"u-{post_id}"}, "text": text}).encode()  # fmt: skip


@pytest.mark.timeout(120)
async def test_a_reply_sent_twice_is_one_message_with_one_payload(
    infra: Infra, namespace: str
) -> None:
    clock = FakeClock()
    async with Isolated(infra, namespace, clock, ("intake",)) as p:
        first = f"p-{uuid.uuid4().hex[:8]}"
        await p.send("complaints.inbound.social", post(first, "包裹還沒到"))
        (opened,) = await p.reader.wait_for(lambda s: s.data.get("source_ref") == first)
        earlier = post(f"{first}-e", "我等了一週", in_reply_to=first)
        await p.send("complaints.inbound.social", earlier, key=first)
        reply_id = f"{first}-r"
        reply = post(reply_id, "請盡快處理", in_reply_to=first)
        await p.send("complaints.inbound.social", reply, key=first)
        await p.reader.wait_for(lambda s: s.data.get("source_ref") == reply_id)
        # The same reply again (upstream retried) a minute later, then a marker behind it on
        # the same partition: once the marker is out, the copy has been handled.
        clock.advance(timedelta(minutes=1))
        await p.send("complaints.inbound.social", reply, key=first)
        marker = f"{first}-m"
        await p.send(
            "complaints.inbound.social", post(marker, "還在等", in_reply_to=reply_id), key=first
        )
        await p.reader.wait_for(lambda s: s.data.get("source_ref") == marker)
        copies = p.reader.matching(lambda s: s.data.get("source_ref") == reply_id)
        assert {json.dumps(s.event, sort_keys=True) for s in copies} == {
            json.dumps(copies[0].event, sort_keys=True)
        }, "one event id, one payload"
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri)
        try:
            case = await client[f"{p.namespace}_intake"]["cases"].find_one(
                {"_id": opened.data["case_number"]}
            )
        finally:
            await client.close()
        assert case is not None
        assert [m["source_key"] for m in case["messages"]].count(
            source_key_for("social", reply_id)
        ) == 1


async def test_a_message_for_a_case_not_stored_yet_waits(infra: Infra, namespace: str) -> None:
    """The thread's source is claimed before its case is stored: a reply arriving in between
    (another instance) must wait for the case rather than vanish."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri)
    try:
        store = IntakeStore(client[f"{namespace}_msgwait"])
        message = {"source_key": "social:x", "channel": "social",
                   "received_at": datetime.now(UTC), "text": "?"}  # fmt: skip
        with pytest.raises(RetryLater):
            await store.add_message(f"CS20990101-{uuid.uuid4().int % 10000:04d}", message, [])
    finally:
        await client.close()
