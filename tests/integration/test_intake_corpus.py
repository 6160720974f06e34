"""The intake corpus (tests/corpus) through the real intake service, Kafka and store.

Each input must produce exactly what its manifest entry expects: one opened case, one
message on an earlier case, one DLQ record with the exact bytes, or nothing at all.
Source ids get a per-run suffix and all records one `received-at`, so other tests that
use the same samples in this session are neither id- nor content-duplicates of these.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.kafka import EventReader, Seen, Upstream

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
ID_FIELDS = ("post_id", "in_reply_to", "submission_id", "action_id")
HEADER_IDS = re.compile(rb"^(Message-ID|In-Reply-To|References):.*$", re.IGNORECASE | re.MULTILINE)


def tag_ids(raw: bytes, topic: str, run: str) -> bytes:
    if topic == "complaints.inbound.email":
        return HEADER_IDS.sub(
            lambda line: re.sub(rb"<([^<>@\s]+)@", rb"<\1." + run.encode() + b"@", line.group(0)),
            raw,
        )
    try:
        payload = json.loads(raw)
    except ValueError:
        return raw  # malformed inputs stay byte-exact
    if isinstance(payload, dict):
        for field in ID_FIELDS:
            if isinstance(payload.get(field), str):
                payload[field] = f"{payload[field]}.{run}"
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return raw


def source_ref_of(raw: bytes, topic: str) -> str | None:
    if topic == "complaints.inbound.email":
        found = re.search(rb"^Message-ID:\s*(<[^>]+>)", raw, re.IGNORECASE | re.MULTILINE)
        return found.group(1).decode() if found else None
    try:
        payload = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    if topic == "cases.actions":
        return f"action:{payload.get('action_id')}"
    return payload.get("post_id") or payload.get("submission_id")


def is_rejection_of(raw: bytes) -> Any:
    return lambda s: (
        s.type == "complaint.input.rejected" and base64.b64decode(s.data.get("original", "")) == raw
    )


def sentinel(topic: str, run: str) -> tuple[bytes, str]:
    ref = f"sentinel-{topic}-{run}"
    if topic == "complaints.inbound.email":
        return (
            f"From: s-{run}@example.org\r\nSubject: sentinel\r\nMessage-ID: <{ref}@x>\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\nsentinel {run}\r\n"
        ).encode(), f"<{ref}@x>"
    if topic == "complaints.inbound.social":
        post = {
            "platform": "x",
            "post_id": ref,
            "author": {"id": f"s-{run}"},
            "text": f"sentinel {run}",
        }
        return json.dumps(post).encode(), ref
    form = {
        "submission_id": ref,
        "message": f"sentinel {run}",
        "submitted_at": "2026-11-23T10:00:00+08:00",
    }
    return json.dumps(form).encode(), ref


def check_opened(opened: Seen, expect: dict[str, Any]) -> None:
    data = opened.data
    for field in ("channel", "language", "subject", "customer_id", "order_value", "followers"):
        if field in expect:
            assert data.get(field) == expect[field], field
    if "text" in expect:
        assert data["text"] == expect["text"]
    if "text_contains" in expect:
        assert expect["text_contains"] in data["text"]
    for unwanted in expect.get("text_excludes", []):
        assert unwanted not in data["text"]
    if "attachments" in expect:
        got = [[a["filename"], a["content_type"], a["size"]] for a in data["attachments"]]
        assert got == expect["attachments"]


PERSONAL = ("chou.wenhao@example.net", "lee.yating@example.com", "amy@example.com",
            "tsai.peiyu@example.tw", "+886933456789", "0912-345-678", "0922-118-877",
            "周文豪", "李雅婷", "許媽媽", "王先生", "mama.hsu")  # fmt: skip


@pytest.mark.timeout(180)
async def test_every_corpus_input_produces_exactly_what_it_should(
    system: Any, upstream: Upstream, reader: EventReader, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    run = uuid.uuid4().hex[:8]
    received_at = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    headers = {"received-at": received_at}
    keys = {topic: f"corpus-{topic}-{run}" for topic in {e["topic"] for e in MANIFEST}}
    sent: dict[str, tuple[bytes, str | None]] = {}
    cases: dict[str, str] = {}

    async def publish(entry: dict[str, Any]) -> None:
        raw = tag_ids((CORPUS / "inputs" / entry["file"]).read_bytes(), entry["topic"], run)
        for name, number in cases.items():
            raw = raw.replace(f"{{{{case:{name}}}}}".encode(), number.encode())
        sent[entry["name"]] = (raw, source_ref_of(raw, entry["topic"]))
        await upstream.send(entry["topic"], raw, key=keys[entry["topic"]].encode(), headers=headers)

    for entry in (e for e in MANIFEST if e["phase"] == 1):
        await publish(entry)
    # Same key, so in order behind everything above: once these open, all were handled.
    for topic in (
        "complaints.inbound.email",
        "complaints.inbound.social",
        "complaints.inbound.app",
    ):
        raw, ref = sentinel(topic, run)
        await upstream.send(topic, raw, key=keys[topic].encode(), headers=headers)
        await reader.wait_for(
            lambda s, ref=ref: s.type == "complaint.case.opened" and s.data.get("source_ref") == ref
        )
    for entry in (e for e in MANIFEST if e["phase"] == 1 and e["expect"]["kind"] == "opened"):
        ref = sent[entry["name"]][1]
        found = reader.matching(
            lambda s, ref=ref: s.type == "complaint.case.opened" and s.data.get("source_ref") == ref
        )
        assert len(found) == 1, (
            entry["name"],
            [(s.event["id"], s.data["case_number"]) for s in found],
        )
        opened = found[0]
        cases[entry["name"]] = opened.data["case_number"]
    for entry in (e for e in MANIFEST if e["phase"] == 2):
        await publish(entry)

    for entry in MANIFEST:
        expect, (raw, ref) = entry["expect"], sent[entry["name"]]
        with_ref = [
            s for s in reader.seen
            if ref is not None
            and s.type in ("complaint.case.opened", "complaint.case.message_added")
            and s.data.get("source_ref") == ref
        ]  # fmt: skip
        rejections = reader.matching(is_rejection_of(raw))
        label = f"{entry['file']}: {expect}"
        if expect["kind"] == "opened":
            assert [s.type for s in with_ref] == ["complaint.case.opened"], label
            assert rejections == [], label
            check_opened(with_ref[0], expect)
        elif expect["kind"] == "message_added":
            target = cases[expect["of"]]
            (added,) = await reader.wait_for(
                lambda s, ref=ref: (
                    s.type == "complaint.case.message_added" and s.data.get("source_ref") == ref
                )
            )
            assert added.data["case_number"] == target, label
            assert added.data["text"] == expect["text"], label
        elif expect["kind"] == "dlq":
            assert with_ref == [], label
            assert len(rejections) == 1, label
            data = rejections[0].data
            assert data["reason_code"] == expect["reason_code"], (label, data["reason"])
            assert expect.get("reason_contains", "") in data["reason"], (label, data["reason"])
            assert data["topic"] == entry["topic"]
        else:
            # A duplicate shares its ref with the entry it repeats: only that one's event.
            owed = sum(
                1
                for other in MANIFEST
                if other is not entry
                and sent[other["name"]][1] == ref
                and other["expect"]["kind"] in ("opened", "message_added")
            )
            assert len(with_ref) == owed and rejections == [], label
    assert len(MANIFEST) >= 40

    # Privacy: personal data never reaches logs (raw records, before any scrubbing)
    # nor metric labels.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=system["intake"]), base_url="http://intake"
    ) as client:
        metrics = (await client.get("/metrics")).text
    assert "complaints_received_total" in metrics
    for secret in PERSONAL:
        leaks = [
            f"{r.name}: {r.getMessage()[:200]}"
            for r in caplog.records
            if secret in f"{r.getMessage()} {r.__dict__}"
        ]
        assert not leaks, f"{secret} in logs: {leaks[:3]}"
        assert secret not in metrics, f"{secret} in metrics"
