"""When a group is a systemic issue (services/policy/POLICY.md, "Systemic issues"): the
window's distinct customers (hour buckets of customers' latest sightings) against the
minimum and the trailing baseline (day buckets); cold start; stable ids; subsiding; and
what one turn of cases writes: one bounded update per key, whatever the turn's size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.policy import load_policy
from services.triage.insights.detector import (
    baseline,
    day_key,
    evaluate,
    hour_key,
    insight_id,
    kept_days_from,
    kept_hours_from,
    stale,
    suppressed_by,
    threshold,
)
from services.triage.insights.keys import CaseKey
from services.triage.insights.turn import SEEN_PER_HOUR, Observation, case_mark, plan_turn

POLICY = load_policy()
RULES = POLICY.insights
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
MUG = CaseKey("product", "product_defect", "MUG-01")


def history(per_day: int, days: int = 14, before: datetime = T0) -> dict[str, int]:
    """``per_day`` cases on each of the ``days`` whole days before ``before``'s day."""
    return {day_key(before - timedelta(days=day)): per_day for day in range(1, days + 1)}


def live(*hours: tuple[datetime, int]) -> dict[str, int]:
    found: dict[str, int] = {}
    for at, customers in hours:
        found[hour_key(at)] = found.get(hour_key(at), 0) + customers
    return found


def test_thresholds_follow_the_policy() -> None:
    assert threshold(RULES, "product", "product_defect", 0.0) == 5
    assert threshold(RULES, "phrase", "product_defect", 0.0) == 8
    assert threshold(RULES, "product", "product_safety", 0.0) == 3  # safety needs fewer
    assert threshold(RULES, "product", "product_defect", 2.5) == 8  # 3 x 2.5 = 7.5
    assert threshold(RULES, "product", "product_defect", 7 / 3) == 7  # exactly 7, not 8
    assert threshold(RULES, "product", "product_safety", 4.0) == 12


def test_baseline_is_the_mean_per_window_of_the_whole_days_before_the_window() -> None:
    days = {day_key(T0 - timedelta(days=3)): 14, day_key(T0 - timedelta(days=20)): 99,
            day_key(T0): 50}  # fmt: skip
    # Only the 14 days before the window's first day count: 14 cases / 14 days.
    assert baseline(days, T0, RULES) == 1.0
    assert baseline(history(2) | {day_key(T0 - timedelta(days=1)): 5}, T0, RULES) == round(
        (13 * 2 + 5) / 14, 4
    )


def test_count_is_the_customers_whose_latest_sighting_is_in_the_window() -> None:
    hours = live(*((T0 + timedelta(hours=n), 1) for n in range(6)), (T0 - timedelta(hours=30), 4))
    verdict = evaluate(hours, history(1), "product", "product_defect", RULES,
                       T0 + timedelta(hours=5, minutes=10), since=T0 - timedelta(days=14))  # fmt: skip
    assert (verdict.count, verdict.threshold, verdict.above, verdict.cold) == (6, 5, True, False)
    assert verdict.window_start == T0 + timedelta(hours=5) - timedelta(hours=23)


def test_an_insight_subsides_when_enough_of_its_customers_leave_the_window() -> None:
    hours = live(*((T0 + timedelta(hours=n), 1) for n in range(7)))
    verdict = evaluate(hours, {}, "product", "product_defect", RULES, T0 + timedelta(hours=6))
    # 7 customers, threshold 5: under it once the 3rd oldest hour has left the window.
    assert verdict.subside_at == T0 + timedelta(hours=2 + 24)
    later = evaluate(hours, {}, "product", "product_defect", RULES, verdict.subside_at)
    assert (later.count, later.above, later.subside_at) == (4, False, None)


def test_a_key_without_history_is_cold_except_for_safety() -> None:
    hours = live((T0, 9))
    new = evaluate(hours, {}, "product", "product_defect", RULES, T0, since=T0)
    assert new.above and new.cold and not new.opens
    safety = evaluate(hours, {}, "product", "product_safety", RULES, T0, since=T0)
    assert safety.opens
    old = evaluate(hours, {}, "product", "product_defect", RULES, T0,
                   since=T0 - timedelta(days=RULES.cold_start_days + 1))  # fmt: skip
    assert old.opens


def test_insight_ids_are_stable_per_key_and_window_start() -> None:
    first = insight_id(MUG.id, T0 + timedelta(minutes=5))
    assert first == insight_id(MUG.id, T0 + timedelta(minutes=55))
    assert first.startswith("INS-20261123-")
    assert first != insight_id(MUG.id, T0 + timedelta(hours=1))
    assert first != insight_id("product|product_defect|TEA-02", T0)
    # The key's next insight, should it start in the same hour, is another one.
    assert first != insight_id(MUG.id, T0, generation=1)


def test_stale_buckets_are_the_ones_no_window_or_baseline_reads() -> None:
    hours = [hour_key(T0 - timedelta(hours=h)) for h in (0, 23, 24, 25, 26)]
    # The window's 24 hours, and the one before (a returning customer leaves it).
    assert stale(hours, kept_hours_from(T0, RULES)) == [
        hour_key(T0 - timedelta(hours=h)) for h in (25, 26)
    ]
    days = [day_key(T0 - timedelta(days=d)) for d in (0, 14, 15, 16)]
    assert stale(days, kept_days_from(T0, RULES)) == [day_key(T0 - timedelta(days=16))]


def test_a_less_specific_group_inside_an_open_insight_is_the_same_cause() -> None:
    product = ("INS-p", "product", ["CS-1", "CS-2", "CS-3", "CS-4"])
    assert suppressed_by("phrase", ["CS-1", "CS-2", "CS-9"], [product], 0.5) == "INS-p"
    assert suppressed_by("phrase", ["CS-1", "CS-8", "CS-9"], [product], 0.5) is None
    assert suppressed_by("product", ["CS-1", "CS-2"], [("INS-x", "phrase", ["CS-1", "CS-2"])],
                         0.5) is None  # fmt: skip


# --- one turn -----------------------------------------------------------------------------


def observation(number: int, customer: str, at: datetime, *keys: CaseKey) -> Observation:
    return Observation(f"CS-{number}", f"customer:{customer}", at, keys or (MUG,), f"text {number}")


def old_key(per_day: int = 1) -> dict[str, object]:
    return {"_id": MUG.id, "live": {}, "days": history(per_day), "recent": [],
            "since": T0 - timedelta(days=14), "last_at": T0 - timedelta(days=1),
            "open_insight": None, "generation": 0}  # fmt: skip


def test_a_turn_writes_one_update_per_key_however_many_cases_it_holds() -> None:
    phrase = CaseKey("phrase", "product_defect", "把手")
    for size in (10, 200):
        turn = [observation(n, f"C-{n}", T0 + timedelta(seconds=n), MUG, phrase)
                for n in range(size)]  # fmt: skip
        plan = plan_turn(turn, {MUG.id: old_key()}, {}, RULES, POLICY.version, T0)
        assert sorted(plan.keys) == sorted([MUG.id, phrase.id])
        update = plan.keys[MUG.id]
        # Fixed-size buckets, a bounded list: the same shape at 10 cases and at 200.
        assert update["$inc"] == {f"live.{hour_key(T0)}": size, f"days.{day_key(T0)}": size,
                                  "generation": 1}  # fmt: skip
        assert update["$set"] == {"open_insight": plan.created[0]["_id"]}
        assert len(update["$push"]["recent"]["$each"]) == min(size, RULES.max_tracked_cases)
        (created,) = plan.created  # the product opens (with history); the new phrase is cold
        assert created["case_total"] == min(size, RULES.max_tracked_cases)
        assert len(created["case_numbers"]) <= RULES.max_listed_cases
        # Each case's mark (customer and case digests) in its hour, at most SEEN_PER_HOUR.
        marks = update["$push"][f"seen.{hour_key(T0)}"]["$each"]
        assert len(marks) == min(size, SEEN_PER_HOUR)
        assert marks[0] == case_mark("customer:C-0", "CS-0")


def test_a_customer_counts_once_and_a_case_counted_before_not_again() -> None:
    earlier = {**old_key(), "seen": {hour_key(T0): [case_mark("customer:C-1", "CS-1")]}}
    turn = [observation(1, "C-1", T0), observation(2, "C-1", T0 + timedelta(hours=2)),
            observation(3, "C-2", T0 + timedelta(hours=2))]  # fmt: skip
    plan = plan_turn(turn, {MUG.id: earlier}, {}, RULES, POLICY.version, T0)
    update = plan.keys[MUG.id]
    # CS-1 was counted before (a redelivery): the key holds its mark. C-1's CS-2 and C-2's
    # CS-3 count, one voice each; C-1's earlier hour had no live count here to move.
    later_hour = hour_key(T0 + timedelta(hours=2))
    assert update["$inc"] == {f"live.{later_hour}": 2, f"days.{day_key(T0)}": 2}
    assert update["$push"][f"seen.{later_hour}"]["$each"] == [
        case_mark("customer:C-1", "CS-2"), case_mark("customer:C-2", "CS-3")]  # fmt: skip
    assert plan.observed["CS-1"].keys == [MUG.id]  # its triage names the key all the same
    # C-1 comes back an hour later: their voice moves to the new hour.
    stored = {**old_key(), "live": {later_hour: 2},
              "seen": {hour_key(T0): [case_mark("customer:C-1", "CS-1")],
                       later_hour: update["$push"][f"seen.{later_hour}"]["$each"]}}  # fmt: skip
    later = T0 + timedelta(hours=3)
    second = plan_turn([observation(4, "C-1", later)], {MUG.id: stored}, {}, RULES,
                       POLICY.version, later)  # fmt: skip
    assert second.keys[MUG.id]["$inc"] == {f"live.{later_hour}": -1,
                                           f"live.{hour_key(later)}": 1,
                                           f"days.{day_key(later)}": 1}  # fmt: skip
    # The same turn again (its batch redelivered): nothing is written.
    again = plan_turn([observation(4, "C-1", later)],
                      {MUG.id: {**stored, "seen": {**stored["seen"], hour_key(later): [
                          case_mark("customer:C-1", "CS-4")]}}},
                      {}, RULES, POLICY.version, later)  # fmt: skip
    assert again.keys == {}


def test_marks_of_hours_no_window_reads_go_with_their_buckets() -> None:
    old = T0 - timedelta(hours=RULES.window_hours + 2)
    stored = {**old_key(), "live": {hour_key(old): 1},
              "seen": {hour_key(old): [case_mark("customer:C-1", "CS-1")]}}  # fmt: skip
    plan = plan_turn([observation(2, "C-1", T0)], {MUG.id: stored}, {}, RULES, POLICY.version, T0)
    update = plan.keys[MUG.id]
    assert f"seen.{hour_key(old)}" in update["$unset"]
    assert update["$inc"][f"live.{hour_key(T0)}"] == 1


def test_an_open_insight_is_told_at_most_once_per_interval_of_case_time() -> None:
    insight_ = {"_id": "INS-1", "key_id": MUG.id, "kind": "product", "category": "product_defect",
                "key": MUG.fields(), "status": "open", "case_numbers": ["CS-0"], "case_total": 1,
                "window_start": T0, "window_end": T0, "count": 5, "baseline": 1.0,
                "threshold": 5, "published_case_at": T0, "systemic": []}  # fmt: skip
    key = {**old_key(), "open_insight": "INS-1", "live": {hour_key(T0): 5}}
    soon = [observation(n, f"C-{n}", T0 + timedelta(minutes=n)) for n in range(1, 4)]
    plan = plan_turn(soon, {MUG.id: key}, {"INS-1": insight_}, RULES, POLICY.version, T0)
    joined = plan.joined["INS-1"]
    assert joined["$inc"] == {"case_total": 3} and joined["$set"]["update_pending"] is True
    assert not any(path.startswith("outbox.") for path in joined["$set"])
    assert [len(plan.insight_cases), plan.flush] == [0, []]  # joiners: their triage says so
    assert all(observed.insights == ["INS-1"] for observed in plan.observed.values())
    later = [observation(9, "C-9", T0 + timedelta(minutes=RULES.update_interval_minutes + 1))]
    told = plan_turn(later, {MUG.id: key}, {"INS-1": insight_}, RULES, POLICY.version, T0)
    assert told.flush == ["INS-1"]
    assert any(path.startswith("outbox.") for path in told.joined["INS-1"]["$set"])
    assert all("INS-1" in observed.insights for observed in told.observed.values())


def test_a_key_stored_without_marks_counts_its_cases_as_new_voices() -> None:
    """A key written before it kept marks (or whose marks were erased) has none."""
    plan = plan_turn([observation(1, "C-1", T0)], {MUG.id: old_key()}, {}, RULES,
                     POLICY.version, T0)  # fmt: skip
    assert plan.keys[MUG.id]["$inc"][f"live.{hour_key(T0)}"] == 1
