"""When a group is a systemic issue (services/policy/POLICY.md, "Systemic issues"): the
window's distinct customers against the minimum and the trailing baseline; stable ids;
subsiding; and, as properties, streams under the baseline never make an insight while
the same stream replayed makes the same insights."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.policy import load_policy
from services.triage.insights.detector import (
    TRIM_BATCH,
    Sighting,
    Verdict,
    baseline,
    evaluate,
    hour_key,
    insight_id,
    stale_hours,
    suppressed_by,
    threshold,
    trim_before,
)

RULES = load_policy().insights
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def seen(number: int, at: datetime, customer: str | None = None) -> Sighting:
    return Sighting(f"CS-{number}", customer or f"customer:C-{number}", at)


def history(per_day: int, days: int = 14, before: datetime = T0) -> dict[str, int]:
    """``per_day`` cases at 03:00 UTC on each of ``days`` days before ``before``' window."""
    hours: dict[str, int] = {}
    for day in range(1, days + 1):
        key = hour_key(before - timedelta(days=day + 1) + timedelta(hours=1))
        hours[key] = hours.get(key, 0) + per_day
    return hours


def test_thresholds_follow_the_policy() -> None:
    assert threshold(RULES, "product", "product_defect", 0.0) == 5
    assert threshold(RULES, "phrase", "product_defect", 0.0) == 8
    assert threshold(RULES, "product", "product_safety", 0.0) == 3  # safety needs fewer
    assert threshold(RULES, "product", "product_defect", 2.5) == 8  # 3 x 2.5 = 7.5
    assert threshold(RULES, "product", "product_defect", 7 / 3) == 7  # exactly 7, not 8
    assert threshold(RULES, "product", "product_safety", 4.0) == 12


def test_baseline_is_the_mean_per_window_of_the_days_before_the_window() -> None:
    hours = {hour_key(T0 - timedelta(days=3)): 14, hour_key(T0 - timedelta(days=20)): 99,
             hour_key(T0 + timedelta(hours=2)): 50}  # fmt: skip
    # Only the 14 days before the window (from T0) count: 14 cases / 14 days; hours in the
    # window and older ones do not.
    assert baseline(hours, T0, RULES) == 1.0


def test_count_is_distinct_customers_in_the_window() -> None:
    sightings = [seen(n, T0 + timedelta(hours=n)) for n in range(5)]
    same_customer = [seen(10 + n, T0 + timedelta(hours=n), "customer:C-same") for n in range(5)]
    verdict = evaluate(sightings + same_customer, {}, "product", "product_defect", RULES)
    assert (verdict.count, verdict.threshold, verdict.above) == (6, 5, True)
    assert len(verdict.cases) == 10 and verdict.first_seen == T0
    assert not evaluate(same_customer, {}, "product", "product_defect", RULES).above


def test_the_window_slides_with_the_latest_case() -> None:
    old = [seen(n, T0 - timedelta(hours=30) + timedelta(minutes=n)) for n in range(4)]
    new = [seen(10 + n, T0 + timedelta(minutes=n)) for n in range(2)]
    verdict = evaluate(old + new, {}, "product", "product_defect", RULES)
    assert verdict.count == 2 and verdict.cases == ["CS-10", "CS-11"]
    assert verdict.window_end == T0 + timedelta(minutes=1)


def test_an_insight_subsides_when_enough_of_its_customers_leave_the_window() -> None:
    sightings = [seen(n, T0 + timedelta(hours=n)) for n in range(7)]
    verdict = evaluate(sightings, {}, "product", "product_defect", RULES)
    # 7 customers, threshold 5: under it once the 3rd oldest has left the window.
    assert verdict.subside_at == T0 + timedelta(hours=2 + 24)
    later = evaluate(sightings, {}, "product", "product_defect", RULES, end=verdict.subside_at)
    assert (later.count, later.above, later.subside_at) == (4, False, None)


def test_insight_ids_are_stable_per_key_and_window_start() -> None:
    first = insight_id("product|product_defect|MUG-01", T0 + timedelta(minutes=5))
    assert first == insight_id("product|product_defect|MUG-01", T0 + timedelta(minutes=55))
    assert first.startswith("INS-20261123-")
    assert first != insight_id("product|product_defect|MUG-01", T0 + timedelta(hours=1))
    assert first != insight_id("product|product_defect|TEA-02", T0)
    # The key's next insight, should it start in the same hour, is another one.
    assert first != insight_id("product|product_defect|MUG-01", T0, generation=1)


def test_stale_hours_are_the_ones_no_window_or_baseline_reads() -> None:
    hours = {hour_key(T0 - timedelta(days=16)): 1, hour_key(T0 - timedelta(days=14)): 1}
    assert stale_hours(hours, T0, RULES) == [hour_key(T0 - timedelta(days=16))]


def test_sightings_are_trimmed_a_batch_at_a_time_once_two_windows_old() -> None:
    end = T0 + timedelta(days=3)
    before = end - timedelta(hours=2 * RULES.window_hours)
    old = [seen(n, before - timedelta(minutes=n + 1)) for n in range(TRIM_BATCH)]
    recent = [seen(100 + n, before + timedelta(minutes=n)) for n in range(50)]
    assert trim_before(old[:-1] + recent, end, RULES) is None  # not a batch yet
    assert trim_before(old + recent, end, RULES) == before
    # Nothing a window ending at ``end`` or later counts is older than ``before``.
    verdict = evaluate(old + recent, {}, "product", "product_defect", RULES, end=end)
    assert all(s.at >= before for s in old + recent if s.case_number in verdict.cases)


def test_a_less_specific_group_inside_an_open_insight_is_the_same_cause() -> None:
    product = ("INS-p", "product", ["CS-1", "CS-2", "CS-3", "CS-4"])
    assert suppressed_by("phrase", ["CS-1", "CS-2", "CS-9"], [product], 0.5) == "INS-p"
    assert suppressed_by("phrase", ["CS-1", "CS-8", "CS-9"], [product], 0.5) is None
    assert suppressed_by("product", ["CS-1", "CS-2"], [("INS-x", "phrase", ["CS-1", "CS-2"])],
                         0.5) is None  # fmt: skip


# --- properties: a replay of the detector's decisions over a stream ---------------------


@dataclass
class Key:
    hours: dict[str, int] = field(default_factory=dict)
    recent: list[Sighting] = field(default_factory=list)
    open_insight: str | None = None
    check_at: datetime | None = None
    generation: int = 0


@dataclass
class Replay:
    """The detector's decisions over a stream, as the store applies them, in memory."""

    keys: dict[str, Key] = field(default_factory=dict)
    events: list[tuple[str, str, int]] = field(default_factory=list)

    def verdict(self, key_id: str, end: datetime | None = None) -> Verdict:
        key, (kind, category, _) = self.keys[key_id], key_id.split("|", 2)
        return evaluate(key.recent, key.hours, kind, category, RULES, end=end)

    def check_due(self, now: datetime) -> None:
        for key_id, key in sorted(self.keys.items()):
            if key.open_insight and key.check_at and key.check_at <= now:
                verdict = self.verdict(key_id, end=key.check_at)
                if verdict.above:
                    key.check_at = verdict.subside_at
                else:
                    self.events.append(("subsided", key.open_insight, verdict.count))
                    key.open_insight = key.check_at = None

    def observe(self, key_id: str, sighting: Sighting) -> None:
        self.check_due(sighting.at)
        key = self.keys.setdefault(key_id, Key())
        if any(s.case_number == sighting.case_number for s in key.recent):
            return  # counted before: a redelivery
        hour = hour_key(sighting.at)
        key.hours[hour] = key.hours.get(hour, 0) + 1
        key.recent = [*key.recent, sighting][-RULES.max_tracked_cases :]
        verdict = self.verdict(key_id)
        if key.open_insight:
            self.events.append(("updated", key.open_insight, verdict.count))
            key.check_at = verdict.subside_at or verdict.window_end
        elif verdict.above and verdict.first_seen is not None:
            key.open_insight = insight_id(key_id, verdict.first_seen, key.generation)
            key.generation += 1
            key.check_at = verdict.subside_at
            self.events.append(("detected", key.open_insight, verdict.count))


KEYS = ("product|product_defect|MUG-01", "phrase|delivery|包裹", "city|product_safety|台北")
Stream = list[tuple[str, Sighting]]


def _minimum(key_id: str) -> int:
    kind, category, _ = key_id.split("|", 2)
    return RULES.safety_min_cases if category in RULES.safety_categories else RULES.min_cases[kind]  # type: ignore[index]


@st.composite
def under_the_minimum(draw: st.DrawFn) -> Stream:
    """30 days; no key ever has as many cases in a UTC day as half its minimum, so no
    24-hour window (two days at most) reaches the minimum."""
    stream: Stream = []
    number = 0
    for day in range(30):
        for key_id in KEYS:
            for _ in range(draw(st.integers(0, (_minimum(key_id) - 1) // 2))):
                number += 1
                minute = draw(st.integers(0, 24 * 60 - 1))
                customer = f"customer:C-{draw(st.integers(0, 40))}"
                at = T0 + timedelta(days=day, minutes=minute)
                stream.append((key_id, Sighting(f"CS-{number}", customer, at)))
    return sorted(stream, key=lambda item: item[1].at)


@st.composite
def steady(draw: st.DrawFn) -> tuple[int, Stream]:
    """``rate`` cases a day at random times, for 30 days after 14 days at that rate."""
    rate = draw(st.integers(1, 6))
    stream: Stream = []
    for day in range(-14, 30):
        for index in range(rate):
            minute = draw(st.integers(0, 24 * 60 - 1))
            at = T0 + timedelta(days=day, minutes=minute)
            stream.append((KEYS[0], Sighting(f"CS-{day}-{index}", f"customer:{day}-{index}", at)))
    return rate, sorted(stream, key=lambda item: item[1].at)


@st.composite
def any_stream(draw: st.DrawFn) -> Stream:
    """Background plus bursts: what a key sees on a bad week."""
    stream: Stream = []
    for number in range(draw(st.integers(0, 80))):
        key_id = draw(st.sampled_from(KEYS))
        at = T0 + timedelta(minutes=draw(st.integers(0, 10 * 24 * 60)))
        customer = f"customer:C-{draw(st.integers(0, 30))}"
        stream.append((key_id, Sighting(f"CS-{number}", customer, at)))
    for burst in range(draw(st.integers(0, 3))):
        key_id = draw(st.sampled_from(KEYS))
        start = T0 + timedelta(hours=draw(st.integers(0, 200)))
        for index in range(draw(st.integers(3, 12))):
            at = start + timedelta(minutes=draw(st.integers(0, 6 * 60)))
            stream.append((key_id, Sighting(f"CS-b{burst}-{index}", f"customer:B{index}", at)))
    return sorted(stream, key=lambda item: item[1].at)


def replayed(stream: Stream, replay: Replay | None = None) -> Replay:
    replay = replay or Replay()
    for key_id, sighting in stream:
        replay.observe(key_id, sighting)
    return replay


def test_the_replay_detects_a_burst_updates_it_and_lets_it_subside() -> None:
    stream = [(KEYS[0], seen(n, T0 + timedelta(minutes=30 * n))) for n in range(6)]
    replay = replayed(stream)
    assert [kind for kind, _, _ in replay.events] == ["detected", "updated"]
    replay.check_due(T0 + timedelta(days=2))
    assert [kind for kind, _, _ in replay.events] == ["detected", "updated", "subsided"]
    assert len({insight for _, insight, _ in replay.events}) == 1


@settings(max_examples=60, deadline=None)
@given(under_the_minimum())
def test_streams_under_the_minimum_never_make_an_insight(stream: Stream) -> None:
    assert replayed(stream).events == []


@settings(max_examples=40, deadline=None)
@given(steady())
def test_a_steady_rate_never_makes_an_insight_against_its_own_baseline(
    drawn: tuple[int, Stream],
) -> None:
    rate, stream = drawn
    replay = Replay()
    for key_id, sighting in stream:
        if sighting.at < T0:  # the 14 days of history: counted, not judged
            key = replay.keys.setdefault(key_id, Key())
            hour = hour_key(sighting.at)
            key.hours[hour] = key.hours.get(hour, 0) + 1
            continue
        replay.observe(key_id, sighting)
    assert replay.events == [], f"{rate} a day"


@settings(max_examples=60, deadline=None)
@given(any_stream())
def test_the_same_stream_replayed_makes_the_same_insights_and_a_redelivery_nothing(
    stream: Stream,
) -> None:
    first, second = replayed(stream), replayed(stream)
    assert first.events == second.events
    first.check_due((stream[-1][1].at if stream else T0) + timedelta(days=2))
    settled = list(first.events)
    replayed(stream, first)  # every record delivered again
    assert first.events == settled
    detected = [insight for kind, insight, _ in first.events if kind == "detected"]
    assert len(detected) == len(set(detected))
