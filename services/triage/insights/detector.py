"""When a group of complaints is a systemic issue, and when it is over. Pure.

A key (category + product, courier, city or key phrase) keeps two small maps of fixed
size, whatever the size of a surge:

- ``live``: per hour, how many customers' LATEST sighting of the key falls in that hour.
  When a customer comes back, their earlier hour loses them and the new hour gains them,
  so the sum over the hours of a window is the window's number of distinct customers
  (one customer writing five times is one voice), at the resolution of an hour;
- ``days``: per UTC day, the key's cases (the baseline).

Its window is the ``window_hours`` hour buckets ending with the hour of its latest
sighting (in the handler) or of now (in the background check). Its baseline is the mean
count per window of the same length over the ``baseline_days`` whole days before the
day the window starts. A group is above threshold when its count is at least the
policy's minimum for its kind (fewer for safety categories) and at least
``baseline_multiple`` times its baseline; a key seen for the first time less than
``cold_start_days`` before its window has no baseline yet and opens nothing (safety
categories excepted).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.policy.model import InsightsPolicy
from services.triage.insights.keys import KINDS

HOUR_FORMAT = "%Y%m%d%H"
DAY_FORMAT = "%Y%m%d"
# Insight ids are uuid5 of (key, window start) in this namespace: stable under replay.
INSIGHT_NAMESPACE = uuid.UUID("0b7c5a52-6f0e-4d8e-9a51-3c1d2e4f5a60")


@dataclass(frozen=True)
class Verdict:
    count: int  # distinct customers in the window
    baseline: float  # mean count per window over the baseline days
    threshold: int
    window_start: datetime
    window_end: datetime
    # When the count falls under the threshold if nothing more arrives (None: it is under).
    subside_at: datetime | None
    cold: bool = False  # no baseline yet: the key may not open an insight

    @property
    def above(self) -> bool:
        return self.count >= self.threshold

    @property
    def opens(self) -> bool:
        return self.above and not self.cold


def customer_of(customer_id: str | None, case_number: str) -> str:
    """Who counts as one voice: the CRM's customer, or else the case itself."""
    return f"customer:{customer_id}" if customer_id else f"case:{case_number}"


def hour_key(moment: datetime) -> str:
    """The hour's bucket name. Fixed width, most significant first: the names sort as
    the hours do, so ranges of hours are compared as strings."""
    return moment.astimezone(UTC).strftime(HOUR_FORMAT)


def day_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(DAY_FORMAT)


def hour_of(key: str) -> datetime:
    return datetime.strptime(key, HOUR_FORMAT).replace(tzinfo=UTC)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def minimum(rules: InsightsPolicy, kind: str, category: str) -> int:
    if category in rules.safety_categories:
        return rules.safety_min_cases
    return rules.min_cases[kind]  # type: ignore[index]


def threshold(rules: InsightsPolicy, kind: str, category: str, baseline: float) -> int:
    # The epsilon keeps an exact multiple (3 x 2.5 = 7.5 -> 8) from rounding up past itself.
    multiple = math.ceil(rules.baseline_multiple * baseline - 1e-9)
    return max(minimum(rules, kind, category), multiple)


def window_start(end: datetime, rules: InsightsPolicy) -> datetime:
    """The start of the first hour bucket of the window whose last bucket holds ``end``."""
    return floor_hour(end) - timedelta(hours=rules.window_hours - 1)


def baseline(
    days: Mapping[str, int], start: datetime, rules: InsightsPolicy, since: datetime | None = None
) -> float:
    """Mean count per window over the ``baseline_days`` whole days before ``start``'s day,
    or over the whole days the key has been known, when fewer (a key seen for four days
    has a mean of four days, not of fourteen with ten empty ones)."""
    first_day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first, past = day_key(first_day - timedelta(days=rules.baseline_days)), day_key(first_day)
    total = sum(count for key, count in days.items() if first <= key < past)
    known = rules.baseline_days
    if since is not None:
        since_day = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        known = min(known, max(1, (first_day - since_day).days))
    return round(total / known * rules.window_hours / 24, 4)


def evaluate(
    live: Mapping[str, int],
    days: Mapping[str, int],
    kind: str,
    category: str,
    rules: InsightsPolicy,
    end: datetime,
    since: datetime | None = None,
) -> Verdict:
    """The key's window whose last hour holds ``end``."""
    start = window_start(end, rules)
    first, last = hour_key(start), hour_key(end)
    inside = sorted((hour, count) for hour, count in live.items() if first <= hour <= last)
    count = max(0, sum(count for _, count in inside))
    mean = baseline(days, start, rules, since)
    needed = threshold(rules, kind, category, mean)
    subside_at = None
    if count >= needed:
        left = count
        for hour, leaving in inside:  # the oldest hours leave the window first
            left -= leaving
            if left < needed:
                subside_at = hour_of(hour) + timedelta(hours=rules.window_hours)
                break
    cold = (
        category not in rules.safety_categories
        and (since is None or since > start - timedelta(days=rules.cold_start_days))
        and rules.cold_start_days > 0
    )
    return Verdict(count, mean, needed, start, end, subside_at, cold)


def _inside(recent: Iterable[Mapping[str, Any]], verdict: Verdict) -> list[tuple[datetime, str]]:
    found = []
    for entry in recent:
        at = entry.get("t")
        if isinstance(at, datetime) and verdict.window_start <= at <= verdict.window_end:
            found.append((at, str(entry.get("c"))))
    return sorted(found)


def window_cases(recent: Iterable[Mapping[str, Any]], verdict: Verdict) -> list[str]:
    """The case numbers a key remembers in ``verdict``'s window, oldest first."""
    return list(dict.fromkeys(case for _, case in _inside(recent, verdict)))


def first_seen(recent: Iterable[Mapping[str, Any]], verdict: Verdict) -> datetime | None:
    inside = _inside(recent, verdict)
    return inside[0][0] if inside else None


def insight_id(key_id: str, first: datetime, generation: int = 0) -> str:
    """Stable: the key, the hour its window's first case came in, and how many insights
    the key had before (a surge right after one subsided may start in the same hour)."""
    start = floor_hour(first)
    fact = f"{key_id}\x1f{start.isoformat()}" + (f"\x1f{generation}" if generation else "")
    digest = uuid.uuid5(INSIGHT_NAMESPACE, fact).hex[:10]
    return f"INS-{start:%Y%m%d}-{digest}"


def kept_hours_from(end: datetime, rules: InsightsPolicy) -> str:
    """The oldest hour bucket a window ending at ``end`` or later may still read (one
    more than the window: a customer's previous hour is moved out of it on return)."""
    return hour_key(window_start(end, rules) - timedelta(hours=1))


def kept_days_from(end: datetime, rules: InsightsPolicy) -> str:
    start = window_start(end, rules)
    return day_key(start - timedelta(days=rules.baseline_days))


def stale(buckets: Iterable[str], oldest_kept: str) -> list[str]:
    return [bucket for bucket in buckets if bucket < oldest_kept]


def suppressed_by(
    kind: str,
    window_cases: Sequence[str],
    open_insights: Iterable[tuple[str, str, Sequence[str]]],
    share: float,
) -> str | None:
    """The open insight of a more specific kind (id, kind, cases) that already holds at
    least ``share`` of this group's window cases: the same cause, named better."""
    if not window_cases:
        return None
    mine = set(window_cases)
    for found_id, found_kind, cases in open_insights:
        more_specific = KINDS.index(found_kind) < KINDS.index(kind)
        if more_specific and len(mine & set(cases)) / len(mine) >= share:
            return found_id
    return None
