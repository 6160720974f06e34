"""When a group of complaints is a systemic issue, and when it is over. Pure.

A key (category + product, courier, city or key phrase) keeps per-hour case counts
(the baseline) and its most recent sightings (case, customer, time). Its window is the
``window_hours`` up to its latest sighting (in the handler) or up to now (in the
background check): its count is the number of DISTINCT customers seen in it, so one
customer writing five times is one voice. Its baseline is the mean count per window of
the same length over the ``baseline_days`` days before the window starts.

A group is above threshold when its count is at least the policy's minimum for its kind
(fewer for safety categories) and at least ``baseline_multiple`` times its baseline.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.policy.model import InsightsPolicy
from services.triage.insights.keys import KINDS

HOUR_FORMAT = "%Y%m%d%H"
# Insight ids are uuid5 of (key, window start) in this namespace: stable under replay.
INSIGHT_NAMESPACE = uuid.UUID("0b7c5a52-6f0e-4d8e-9a51-3c1d2e4f5a60")


@dataclass(frozen=True)
class Sighting:
    """One case counted in a key."""

    case_number: str
    customer: str
    at: datetime


@dataclass(frozen=True)
class Verdict:
    count: int  # distinct customers in the window
    baseline: float  # mean count per window over the baseline days
    threshold: int
    window_start: datetime
    window_end: datetime
    cases: list[str]  # the window's case numbers, oldest first
    first_seen: datetime | None
    # When the count falls under the threshold if nothing more arrives (None: it is under).
    subside_at: datetime | None

    @property
    def above(self) -> bool:
        return self.count >= self.threshold


def customer_of(customer_id: str | None, case_number: str) -> str:
    """Who counts as one voice: the CRM's customer, or else the case itself."""
    return f"customer:{customer_id}" if customer_id else f"case:{case_number}"


def hour_key(moment: datetime) -> str:
    """The hour's bucket name. Fixed width, most significant first: the names sort as
    the hours do, so ranges of hours are compared as strings (parsing each bucket's
    name cost milliseconds per busy key)."""
    return moment.astimezone(UTC).strftime(HOUR_FORMAT)


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def minimum(rules: InsightsPolicy, kind: str, category: str) -> int:
    if category in rules.safety_categories:
        return rules.safety_min_cases
    return rules.min_cases[kind]  # type: ignore[index]


def threshold(rules: InsightsPolicy, kind: str, category: str, baseline: float) -> int:
    # The epsilon keeps an exact multiple (3 x 2.5 = 7.5 -> 8) from rounding up past itself.
    multiple = math.ceil(rules.baseline_multiple * baseline - 1e-9)
    return max(minimum(rules, kind, category), multiple)


def baseline(hours: Mapping[str, int], window_start: datetime, rules: InsightsPolicy) -> float:
    """Mean count per window over the ``baseline_days`` days before ``window_start``."""
    end = _floor_hour(window_start)
    start = end - timedelta(days=rules.baseline_days)
    first, past = hour_key(start), hour_key(end)
    total = sum(count for key, count in hours.items() if first <= key < past)
    return round(total / rules.baseline_days * rules.window_hours / 24, 4)


def evaluate(
    sightings: Sequence[Sighting],
    hours: Mapping[str, int],
    kind: str,
    category: str,
    rules: InsightsPolicy,
    end: datetime | None = None,
) -> Verdict:
    """The key's window ending at ``end`` (default: its latest sighting)."""
    window = timedelta(hours=rules.window_hours)
    if end is None:
        end = max((s.at for s in sightings), default=datetime(1970, 1, 1, tzinfo=UTC))
    start = end - window
    inside = sorted((s for s in sightings if start < s.at <= end), key=lambda s: s.at)
    # A customer's latest sighting keeps them in the window longest.
    latest: dict[str, datetime] = {}
    for sighting in inside:
        latest[sighting.customer] = sighting.at
    count = len(latest)
    mean = baseline(hours, start, rules)
    needed = threshold(rules, kind, category, mean)
    leaving = sorted(latest.values())
    return Verdict(
        count=count,
        baseline=mean,
        threshold=needed,
        window_start=start,
        window_end=end,
        cases=list(dict.fromkeys(s.case_number for s in inside)),
        first_seen=inside[0].at if inside else None,
        # The (count - threshold + 1)-th oldest customer leaving takes it under.
        subside_at=leaving[count - needed] + window if count >= needed else None,
    )


def insight_id(key_id: str, first_seen: datetime, generation: int = 0) -> str:
    """Stable: the key, the hour its window's first case came in, and how many insights
    the key had before (a surge right after one subsided may start in the same hour)."""
    start = _floor_hour(first_seen)
    fact = f"{key_id}\x1f{start.isoformat()}" + (f"\x1f{generation}" if generation else "")
    digest = uuid.uuid5(INSIGHT_NAMESPACE, fact).hex[:10]
    return f"INS-{start:%Y%m%d}-{digest}"


def stale_hours(hours: Iterable[str], end: datetime, rules: InsightsPolicy) -> list[str]:
    """Hour buckets no window or baseline ending at ``end`` or later will read."""
    keep_from = _floor_hour(end) - timedelta(days=rules.baseline_days, hours=rules.window_hours + 1)
    oldest_kept = hour_key(keep_from)
    return [key for key in hours if key < oldest_kept]


# Sightings no window will count again are removed from a key this many at a time: the
# store rewrites a whole key document on every count (a key holding 200 sightings and 15
# days of hours costs 10x a small one per update), and one removal per few dozen cases
# keeps the document near one window's worth without a second write per case.
TRIM_BATCH = 16


def trim_before(
    sightings: Sequence[Sighting], end: datetime, rules: InsightsPolicy
) -> datetime | None:
    """The moment before which a key's sightings may go, once there are ``TRIM_BATCH``
    of them; None meanwhile. Windows only move forward (they end at the key's latest
    sighting or now), so sightings older than the window ending at ``end`` are never
    counted again; one more window is kept as the guard against counting a case twice
    when its record comes again soon after (a crash before its case was stored)."""
    before = end - timedelta(hours=2 * rules.window_hours)
    aged = sum(1 for sighting in sightings if sighting.at < before)
    return before if aged >= TRIM_BATCH else None


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
