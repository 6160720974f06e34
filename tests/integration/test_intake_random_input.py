"""Random bytes and random JSON on every inbound topic, through the real service:
nothing crashes, and every record ends up as a case event or a DLQ record."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.intake.complaint import from_app, from_email, from_social
from services.runtime.errors import InputRejected
from tests.support.kafka import EventReader, Upstream

PARSERS = {
    "complaints.inbound.email": from_email,
    "complaints.inbound.social": from_social,
    "complaints.inbound.app": from_app,
}
NOW = datetime.now(UTC)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)  # fmt: skip
plausible_posts = st.fixed_dictionaries(
    {"platform": st.sampled_from(["facebook", "line", "ptt"]), "author": st.fixed_dictionaries({"id": st.text(min_size=1, max_size=8)}),
     "text": st.text(min_size=1, max_size=200)},
    optional={"visibility": st.sampled_from(["public", "private", "secret"]), "followers": st.integers(-5, 10**6)},
)  # fmt: skip
plausible_forms = st.fixed_dictionaries(
    {"message": st.text(max_size=200), "submitted_at": st.sampled_from(["2026-11-23T10:00:00+08:00", "soon", ""])},
    optional={"order_value": st.fixed_dictionaries({"amount": st.sampled_from(["1.5", "abc", "-3"])})},
)  # fmt: skip


def _encode(value: Any, topic: str, tag: str) -> bytes:
    if isinstance(value, bytes):
        return value
    # Unique ids and senders: the same words from the same sender within minutes are
    # (rightly) one complaint, and hypothesis repeats values across examples.
    if isinstance(value, dict) and topic.endswith("social"):
        author = value.get("author")
        if isinstance(author, dict):
            author = {**author, "id": f"{author.get('id')}-{tag}"}
        value = {**value, "post_id": f"rnd-{tag}", "author": author}
    if isinstance(value, dict) and topic.endswith("app"):
        value = {**value, "submission_id": f"rnd-{tag}", "customer_id": f"rnd-{tag}"}
    return json.dumps(value, ensure_ascii=False).encode()


def _outcome(topic: str, raw: bytes) -> str | None:
    """The source ref the service must open a case for, or None when it must reject."""
    try:
        complaint = PARSERS[topic](raw, NOW)
    except InputRejected:
        return None
    return "" if complaint.auto_reply_reason else complaint.source_ref


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted(PARSERS)),
            st.binary(max_size=300) | json_values | plausible_posts | plausible_forms,
        ),
        min_size=15,
        max_size=30,
    )
)
async def test_every_random_record_is_accounted_for(
    system: Any, upstream: Upstream, reader: EventReader, records: list[tuple[str, Any]]
) -> None:
    run = uuid.uuid4().hex[:10]
    sent: list[tuple[str, bytes, str | None]] = []
    for index, (topic, value) in enumerate(records):
        raw = _encode(value, topic, f"{run}-{index}")
        if any(raw == other for _, other, _ in sent):
            continue  # an identical record is a redelivery: it legitimately makes nothing
        sent.append((topic, raw, _outcome(topic, raw)))
        await upstream.send(topic, raw, key=f"rnd-{run}".encode())
    for _topic, raw, ref in sent:
        if ref == "":
            continue  # an auto-reply opens nothing by design
        if ref is None:
            await reader.wait_for(
                lambda s, raw=raw: (
                    s.type == "complaint.input.rejected"
                    and base64.b64decode(s.data["original"]) == raw
                ),
                timeout=30,
            )
        else:
            found = await reader.wait_for(
                lambda s, ref=ref: (
                    s.type in ("complaint.case.opened", "complaint.case.message_added")
                    and s.data.get("source_ref") == ref
                ),
                timeout=30,
            )
            assert found
