"""Lanes of a batch: what must stay in order does, everything else runs side by side."""

from __future__ import annotations

import json
import random

from hypothesis import given
from hypothesis import strategies as st

from services.runtime.batches import (
    by_case_and_customer,
    by_case_in_action,
    by_key,
    plan_lanes,
    rewind_points,
)
from services.runtime.records import InboundRecord


def record(offset: int, key: bytes | None = None, partition: int = 0, value: bytes = b"{}",
           topic: str = "t") -> InboundRecord:  # fmt: skip
    return InboundRecord(topic, partition, offset, key, value, 0)


def offsets(lanes: list[list[InboundRecord]]) -> list[list[int]]:
    return sorted([r.offset for r in lane] for lane in lanes)


def test_records_of_one_key_share_a_lane_in_offset_order() -> None:
    batch = [record(3, b"A"), record(1, b"A"), record(2, b"B"), record(4, b"A")]
    assert offsets(plan_lanes(batch, by_key)) == [[1, 3, 4], [2]]


def test_keyless_records_keep_their_partition_order() -> None:
    batch = [record(1, partition=0), record(2, partition=0), record(1, partition=1)]
    assert offsets(plan_lanes(batch, by_key)) == [[1], [1, 2]]


def test_links_join_lanes_transitively() -> None:
    # 1 answers nothing, 2 answers 1, 3 answers 2: one thread, one lane; 4 stands alone.
    links = {1: ("m1",), 2: ("m2", "m1"), 3: ("m3", "m2"), 4: ("m4",)}
    batch = [record(n) for n in (4, 3, 2, 1)]
    assert offsets(plan_lanes(batch, lambda r: links[r.offset])) == [[1, 2, 3], [4]]


def test_a_record_without_links_is_a_lane_of_its_own() -> None:
    batch = [record(1), record(2)]
    assert offsets(plan_lanes(batch, lambda r: ())) == [[1], [2]]


def test_actions_are_ordered_by_the_case_they_name() -> None:
    def action(offset: int, case: str, key: bytes | None = None) -> InboundRecord:
        value = json.dumps({"case_number": case, "type": "resolve"}).encode()
        return record(offset, key=key, value=value)

    batch = [action(1, "CS1", b"x"), action(2, "CS2", b"x"), action(3, "CS1", b"y"),
             record(4, value=b"not json")]  # fmt: skip
    assert offsets(plan_lanes(batch, by_case_in_action)) == [[1, 3], [2], [4]]


def test_rewind_points_are_the_first_unfinished_offset_per_partition() -> None:
    unfinished = [record(9, partition=0), record(5, partition=0), record(7, partition=1)]
    assert rewind_points(unfinished) == {("t", 0): 5, ("t", 1): 7}
    assert rewind_points([]) == {}


@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from([b"a", b"b", b"c", None])),
                max_size=40), st.randoms())  # fmt: skip
def test_every_record_lands_in_exactly_one_lane_and_keys_never_split(
    spec: list[tuple[int, bytes | None]], rng: random.Random
) -> None:
    batch = [record(n, key, partition) for n, (partition, key) in enumerate(spec)]
    rng.shuffle(batch)
    lanes = plan_lanes(batch, by_key)
    placed = [r.position for lane in lanes for r in lane]
    assert sorted(placed) == sorted(r.position for r in batch)
    for lane in lanes:  # within a partition, offset order
        for partition in {r.partition for r in lane}:
            mine = [r.offset for r in lane if r.partition == partition]
            assert mine == sorted(mine)
    lane_of = {r.position: n for n, lane in enumerate(lanes) for r in lane}
    for a in batch:
        for b in batch:
            if by_key(a) == by_key(b):
                assert lane_of[a.position] == lane_of[b.position]


def test_one_customers_cases_share_a_lane() -> None:
    def opened(offset: int, case: str, customer: str | None) -> InboundRecord:
        value = json.dumps({"data": {"case_number": case, "customer_id": customer}}).encode()
        return record(offset, key=case.encode(), value=value)

    batch = [opened(1, "CS1", "C-1"), opened(2, "CS2", "C-2"), opened(3, "CS3", "C-1"),
             opened(4, "CS4", None), opened(5, "CS1", None)]  # fmt: skip
    assert offsets(plan_lanes(batch, by_case_and_customer)) == [[1, 3, 5], [2], [4]]


def test_a_record_whose_links_fail_is_planned_alone() -> None:
    """Planning runs outside the per-record error handling: found by make chaos --fuzz,
    a record that made the links raise failed its whole batch forever."""
    from services.runtime.batches import plan_lanes
    from services.runtime.records import InboundRecord

    def links(record: InboundRecord) -> tuple[str, ...]:
        if record.offset == 1:
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return ("same",)

    records = [InboundRecord("t", 0, offset, None, b"", 0) for offset in range(3)]
    lanes = plan_lanes(records, links)
    assert sorted([r.offset for r in lane] for lane in lanes) == [[0, 2], [1]]
