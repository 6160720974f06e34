"""Fuzz at volume: generated records through a running intake, every one accounted for.

Records (seeded): random bytes on any inbound topic, near-valid JSON app forms and social
posts (a field dropped, mistyped, emptied or huge; broken encodings; truncation; deep
nesting), and mutated real MIME messages from tests/corpus (bytes flipped, headers lost or
garbled, charsets and transfer encodings swapped, boundaries broken, cut short).

Accounting: the harness parses each record with intake's own pure parsers. Rejected ones
must be in the DLQ with exactly their bytes at exactly their position; auto-replies must
make nothing; every other source (channel + source ref) must end in exactly one outcome:
a case opened, a message added to a case, or filed as a duplicate of another (intake's
source claim), and every case event must come from one of them. Intake runs as one
process for the whole run: it must not restart, and its peak RSS is reported.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.topics import INBOUND_APP, INBOUND_EMAIL, INBOUND_SOCIAL
from services.intake.complaint import from_app, from_email, from_social
from services.runtime.errors import InputRejected
from tests.chaos import store
from tests.chaos.cluster import Cluster, Ports
from tests.chaos.outbound import Producer, end_offsets, group_lags, read_all
from tests.chaos.verdict import stored_source
from tests.support.infra import REPO_ROOT
from tests.support.wait import waited

PARSERS = {INBOUND_EMAIL: from_email, INBOUND_SOCIAL: from_social, INBOUND_APP: from_app}
CORPUS = sorted((REPO_ROOT / "tests" / "corpus" / "inputs").glob("*.eml"))
MAX_RECORD_BYTES = 1024 * 1024
DRAIN_RATE = 50  # records/s below which the fuzz run gives up waiting for intake
CHARSETS = (b"utf-8", b"big5", b"gb2312", b"iso-8859-1", b"koi8-r", b"x-unknown", b"", b"utf-7")
ENCODINGS = (b"base64", b"quoted-printable", b"8bit", b"7bit", b"x-garbage")


@dataclass(frozen=True)
class Sent:
    topic: str
    partition: int
    offset: int
    digest: bytes
    expect: str  # dlq:<code> | auto_reply | source:<key>


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.count = 0
        self.corpus = [path.read_bytes() for path in CORPUS]
        self.sent_ids: list[str] = []

    def _id(self) -> str:
        self.count += 1
        return f"fz{self.count}"

    def random_bytes(self) -> tuple[str, bytes]:
        topic = self.rng.choice(tuple(PARSERS))
        return topic, self.rng.randbytes(self.rng.randint(0, 600))

    def _form(self) -> dict[str, Any]:
        return {"submission_id": self._id(), "customer_id": f"C-fz-{self.rng.randint(1, 50)}",
                "message": f"包裹還沒到 {self.rng.random()}", "submitted_at": datetime.now(UTC).isoformat(),
                "order_value": {"amount": "120.00", "currency": "TWD"}, "locale": "zh-TW"}  # fmt: skip

    def _post(self) -> dict[str, Any]:
        return {"platform": "facebook", "post_id": self._id(),
                "author": {"id": f"u{self.rng.randint(1, 50)}"}, "text": f"broken {self.rng.random()}",
                "visibility": "public", "followers": self.rng.randint(0, 50000)}  # fmt: skip

    def near_json(self) -> tuple[str, bytes]:
        topic = self.rng.choice((INBOUND_APP, INBOUND_SOCIAL))
        payload = self._form() if topic == INBOUND_APP else self._post()
        key = self.rng.choice(sorted(payload))
        mutation = self.rng.randrange(12)
        if mutation == 0:
            del payload[key]
        elif mutation == 1:
            payload[key] = self.rng.choice((None, 7, [], {}, True, -1.5, "", " "))
        elif mutation == 2:
            payload[key] = "x" * self.rng.randint(1000, 20000)
        elif mutation == 3:
            payload[key] = self.rng.choice(("\u202e\u200b", "\ud800", "\x00", "😀" * 50, "'; drop"))
        elif mutation == 4:
            payload["extra"] = {"deep": [[[{"a": 1}]]], "n": 1e308}
        # A lone surrogate can only travel as a \\ud800 escape: ASCII-only JSON then.
        ascii_only = self.rng.random() < 0.5 or mutation == 3
        raw = json.dumps(payload, ensure_ascii=ascii_only).encode()
        if mutation == 5:
            raw = raw[: self.rng.randint(0, len(raw))]
        elif mutation == 6:
            raw = json.dumps(payload).encode("utf-16")
        elif mutation == 7:
            raw = b"\xef\xbb\xbf" + raw
        elif mutation == 8:
            raw = raw + self.rng.choice((b"}", b" trailing", b"\x00", b",{}"))
        elif mutation == 9:
            depth = self.rng.choice((20, 400, 5000))
            raw = raw[:-1] + b', "nest": ' + b"[" * depth + b"]" * depth + b"}"
        elif mutation == 10:
            raw = raw.replace(b'"', b"'", 1)
        return topic, raw

    def mime(self) -> tuple[str, bytes]:
        raw = bytearray(self.rng.choice(self.corpus))
        if self.rng.random() < 0.8:  # most get a fresh identity, or all would be one source
            message_id = f"<{self._id()}@fuzz.example>"
            fresh = f"Message-ID: {message_id}".encode()
            if self.sent_ids and self.rng.random() < 0.2:  # a reply to an earlier one
                fresh += f"\r\nIn-Reply-To: {self.rng.choice(self.sent_ids[-500:])}".encode()
            self.sent_ids.append(message_id)
            raw, found = re.subn(rb"(?im)^message-id:.*$", fresh, bytes(raw), count=1)
            if not found:
                raw = fresh + b"\r\n" + raw
            raw = bytearray(raw)
        for _ in range(self.rng.randint(1, 3)):
            raw = bytearray(self._mutate_mime(bytes(raw)))
        return INBOUND_EMAIL, bytes(raw)

    def _mutate_mime(self, raw: bytes) -> bytes:
        rng = self.rng
        mutation = rng.randrange(10)
        if mutation == 0 and raw:
            data = bytearray(raw)
            for _ in range(rng.randint(1, 12)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            return bytes(data)
        if mutation == 1:
            return raw[: rng.randint(0, len(raw))]
        if mutation == 2:
            lines = raw.split(b"\n")
            header_end = lines.index(b"") if b"" in lines else min(len(lines), 8)
            if header_end:
                del lines[rng.randrange(header_end)]
            return b"\n".join(lines)
        if mutation == 3:
            return re.sub(rb'(?i)charset="?[\w-]*"?', b"charset=" + rng.choice(CHARSETS), raw)
        if mutation == 4:
            return re.sub(rb"(?i)content-transfer-encoding:\s*\S+",
                          b"Content-Transfer-Encoding: " + rng.choice(ENCODINGS), raw)  # fmt: skip
        if mutation == 5:
            return re.sub(
                rb'(?i)boundary="?([^";\r\n]+)"?',
                b'boundary="' + rng.randbytes(6).hex().encode() + b'"',
                raw,
            )
        if mutation == 6:
            return (
                b"X-Fuzz: " + rng.randbytes(rng.randint(1, 40)).replace(b"\n", b" ") + b"\r\n" + raw
            )
        if mutation == 7:
            return raw.replace(b"\r\n\r\n", b"\r\n", 1).replace(b"\n\n", b"\n", 1)
        if mutation == 8:
            return re.sub(rb"(?im)^subject:.*$", rng.choice((b"Subject: =?utf-8?b?@@@?=",
                          b"Subject: =?big5?q?=A7=DA?= CS20990101-0001", b"Subject: Re: " + rng.randbytes(8).hex().encode())),
                          raw, count=1)  # fmt: skip
        return re.sub(
            rb"(?im)^from:\s*.*?([\w.+-]+)@",
            b"From: <fz" + str(rng.randint(1, 99)).encode() + b".\\1@",
            raw,
            count=1,
        )

    def next(self) -> tuple[str, bytes]:
        roll = self.rng.random()
        if roll < 0.0002:
            return self.rng.choice(tuple(PARSERS)), b"x" * (
                MAX_RECORD_BYTES + 1 + self.rng.randint(0, 9999)
            )
        if roll < 0.3:
            return self.random_bytes()
        if roll < 0.65:
            return self.near_json()
        return self.mime()


def expectation(topic: str, raw: bytes, timestamp_ms: int) -> str:
    if len(raw) > MAX_RECORD_BYTES:
        return "dlq:too_large"
    try:
        complaint = PARSERS[topic](raw, datetime.fromtimestamp(timestamp_ms / 1000, UTC))
    except InputRejected as rejected:
        return f"dlq:{rejected.code}"
    except Exception as crash:  # the service would park it as internal_error
        return f"dlq:internal_error:{type(crash).__name__}"
    if complaint.auto_reply_reason:
        return "auto_reply"
    # The id as the case events carry it; intake stores its digest (stored_source).
    return f"source:{complaint.channel.value}:{complaint.source_ref}"


def _rss_kib(pid: int | None, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def run_fuzz(records: int, seed: int, run_dir: Path, ports: Ports) -> int:
    cluster = Cluster(run_dir, ports, layout={"intake": 1}, service_env={"LOG_LEVEL": "ERROR"})
    print(
        f"[fuzz] {records} records, seed {seed}: starting Kafka, the store and intake", flush=True
    )
    await cluster.start_infra()
    try:
        await cluster.start_services()
        return await _fuzz(cluster, records, seed)
    finally:
        cluster.stop_services()
        await cluster.stop_infra()


async def _fuzz(cluster: Cluster, records: int, seed: int) -> int:
    intake = cluster.instances[0]
    generator = Generator(seed)
    producer = Producer(cluster.bootstrap)
    await producer.start()
    sent: list[Sent] = []
    rss: list[int] = []
    started = time.monotonic()
    batch: list[tuple[str, bytes, Any]] = []
    for number in range(records):
        topic, raw = generator.next()
        batch.append((topic, raw, await producer.enqueue(topic, raw)))
        if len(batch) >= 500 or number == records - 1:
            for topic, raw, future in batch:
                meta = await future
                sent.append(Sent(topic, meta.partition, meta.offset, hashlib.sha256(raw).digest(),
                                 expectation(topic, raw, meta.timestamp)))  # fmt: skip
            batch = []
            rss.append(_rss_kib(intake.pid, "VmRSS"))
    await producer.stop()
    sending = time.monotonic() - started
    print(f"[fuzz] sent {len(sent)} records in {sending:.0f}s; waiting for intake", flush=True)
    progress = {"quiet_since": time.monotonic(), "last": -1.0, "said": time.monotonic()}

    async def drained() -> bool:
        """No lag and no new outbound record for 5 s (progress printed every minute)."""
        lags = await group_lags(cluster.bootstrap)
        if time.monotonic() - progress["said"] > 60:
            progress["said"] = time.monotonic()
            print(
                f"[fuzz] {time.monotonic() - started:.0f}s: intake lag {sum(lags.values())}",
                flush=True,
            )
        total = sum((await end_offsets(cluster.bootstrap)).values())
        rss.append(_rss_kib(intake.pid, "VmRSS"))
        if total != progress["last"] or any(lags.values()):
            progress["quiet_since"], progress["last"] = time.monotonic(), total
            return False
        return time.monotonic() - progress["quiet_since"] > 5

    # Bounded: intake must keep at least DRAIN_RATE records/s, or the run fails.
    drain_timeout = max(600.0, records / DRAIN_RATE)
    drained_in = await waited(drained, drain_timeout, step=1.0)
    wall = time.monotonic() - started
    peak = _rss_kib(intake.pid, "VmHWM")
    problems: list[str] = []
    if drained_in is None:
        problems.append(f"intake still lagging or publishing after {drain_timeout:.0f}s")
    if not intake.running() or intake.starts != 1:
        problems.append(f"intake restarted or exited (starts {intake.starts})")
    seen = await read_all(cluster.bootstrap)
    snapshot = await store.snapshot(cluster.mongodb_uri)
    outcome = account(sent, seen, snapshot["intake_sources"], problems)
    print(f"[fuzz] records {len(sent)}, wall time {wall:.0f}s ({len(sent) / wall:.0f}/s), "
          f"intake peak RSS {peak / 1024:.0f} MiB (RSS first/last "
          f"{min(r for r in rss if r) / 1024:.0f}/{rss[-1] / 1024:.0f} MiB)")  # fmt: skip
    for name, value in outcome.items():
        print(f"  {name:<28} {value}")
    for problem in problems[:20]:
        print(f"  VIOLATION {problem}")
    print(f"  {len(problems)} violation(s): " + ("PASS" if not problems else "FAIL"))
    return 0 if not problems else 1


def account(
    sent: list[Sent], seen: list[Any], sources: dict[str, Any], problems: list[str]
) -> dict[str, Any]:
    """Every record to exactly one outcome; returns the counts."""
    dlq: dict[tuple[str, int, int], tuple[bytes, str]] = {}
    for event in seen:
        if event.type == "complaint.input.rejected":
            data = event.data
            original = base64.b64decode(data.get("original", ""))
            dlq[(data["topic"], data["partition"], data["offset"])] = (
                hashlib.sha256(original).digest(),
                str(data.get("reason_code")),
            )
    events: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for event in seen:
        if event.type in ("complaint.case.opened", "complaint.case.message_added"):
            key = f"{event.data.get('channel')}:{event.data.get('source_ref')}"
            events[key][event.type].add(str(event.case_number))
    counts: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    sources_seen: set[str] = set()
    for record in sent:
        position = (record.topic, record.partition, record.offset)
        if record.expect.startswith("dlq:"):
            code = record.expect.split(":")[1]
            codes[code] += 1
            found = dlq.pop(position, None)
            if found is None or found[0] != record.digest:
                problems.append(f"{position} ({code}) not in the DLQ with its exact bytes")
            elif found[1] != code:
                problems.append(f"{position} dead-lettered as {found[1]}, expected {code}")
            counts["dead-lettered"] += 1
            continue
        if position in dlq:
            problems.append(f"{position} ({record.expect}) dead-lettered: {dlq.pop(position)[1]}")
            continue
        if record.expect == "auto_reply":
            counts["auto-replies (nothing)"] += 1
            continue
        key = record.expect.removeprefix("source:")
        if key in sources_seen:
            counts["same source again"] += 1
            continue
        sources_seen.add(key)
        claim = stored_source(sources, key)
        made = events.get(key, {})
        opened, added = (
            made.get("complaint.case.opened", set()),
            made.get("complaint.case.message_added", set()),
        )
        kind = (claim or {}).get("kind")
        if kind == "opened" and len(opened) == 1 and not added:
            counts["cases opened"] += 1
        elif kind == "message" and len(added) == 1 and not opened:
            counts["messages added"] += 1
        elif kind == "ignored" and not opened and not added:
            counts["duplicates filed"] += 1
        else:
            problems.append(f"{key}: claim {kind}, opened {sorted(opened)}, added {sorted(added)}")
    for key in set(events) - sources_seen:
        problems.append(f"case event for {key}, which no record sent")
    for position, (_, code) in dlq.items():
        problems.append(f"DLQ record for {position} ({code}) that was not expected")
    counts["DLQ share"] = f"{counts['dead-lettered'] / max(1, len(sent)):.1%}"  # type: ignore[assignment]
    return {**counts, "DLQ reasons": dict(codes.most_common())}
