"""Consuming in batches: one commit per batch, lanes in order, lanes side by side.

A batch (what one poll returned) is split into lanes. Records that must be handled in
order share a lane: one case's events (the record key), a reply and the message it
answers (links a service declares, e.g. the e-mail thread). Lanes run concurrently, each
in offset order. Every record ends either done (its effect stored and its events
published, or dead-lettered) or unfinished (an outage, or something it depends on has not
arrived yet); after the first unfinished record of a lane the rest of that lane is
unfinished too, so order within a lane holds across redeliveries.

The batch's commit then covers, per partition, everything before the first unfinished
record: the consumer is rewound to it, and only from there is anything redelivered
(finished records after it are redelivered too and change nothing: effects are
idempotent by event id).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence

from services.runtime.records import InboundRecord

log = logging.getLogger(__name__)

# The ordering keys of a record: records sharing any key are handled in offset order.
Links = Callable[[InboundRecord], Iterable[str]]


def by_key(record: InboundRecord) -> tuple[str, ...]:
    """One case's (one customer's) records in order; keyless records in partition order."""
    if record.key is not None:
        return (f"key:{record.key.hex()}",)
    return (f"partition:{record.topic}/{record.partition}",)


def by_case_in_action(record: InboundRecord) -> tuple[str, ...]:
    """Actions on one case in the order the desk sent them, whatever the record key."""
    try:
        action = json.loads(record.value or b"")
    except ValueError:
        return by_key(record)
    case_number = action.get("case_number") if isinstance(action, dict) else None
    if isinstance(case_number, str) and case_number:
        return (f"case:{case_number}",)
    return by_key(record)


def by_case_and_customer(record: InboundRecord) -> tuple[str, ...]:
    """A case event in its case's order, and after the same customer's earlier cases (a
    repeat complaint is judged against what the customer's earlier ones stored)."""
    try:
        event = json.loads(record.value or b"")
        customer_id = event["data"]["customer_id"]
    except (ValueError, KeyError, TypeError):
        return by_key(record)
    return (*by_key(record), *((f"customer:{customer_id}",) if customer_id else ()))


def plan_lanes(records: Sequence[InboundRecord], links: Links) -> list[list[InboundRecord]]:
    """Group ``records`` into lanes: connected by shared links, each in offset order."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]  # path halving keeps the trees flat
            key = parent[key]
        return key

    ordered = sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
    anchors: list[str] = []
    for record in ordered:
        # Its own position always links it to its partition's copy of itself only;
        # its declared links tie it to every record sharing one of them.
        keys = [f"record:{record.position}", *_links_of(record, links)]
        first = root(keys[0])
        for key in keys[1:]:
            other = root(key)
            if other != first:
                parent[other] = first
        anchors.append(keys[0])
    lanes: dict[str, list[InboundRecord]] = {}
    for record, anchor in zip(ordered, anchors, strict=True):
        lanes.setdefault(root(anchor), []).append(record)
    return list(lanes.values())


def _links_of(record: InboundRecord, links: Links) -> list[str]:
    """The record's links; none when they cannot be worked out. Planning runs outside the
    per-record error handling: a record it chokes on would fail its whole batch again and
    again and stall the partition. Alone in its lane, its handler dead-letters it."""
    try:
        return list(links(record))
    except Exception:
        log.exception("links of %s could not be worked out; handled alone", record.position)
        return []


def rewind_points(unfinished: Iterable[InboundRecord]) -> dict[tuple[str, int], int]:
    """Per (topic, partition), the offset of the first unfinished record."""
    points: dict[tuple[str, int], int] = {}
    for record in unfinished:
        where = (record.topic, record.partition)
        points[where] = min(points.get(where, record.offset), record.offset)
    return points
