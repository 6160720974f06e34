"""What the systemic issues were: open and past insights, for ops and the teams that fix
causes. Reads triage's insight store; writes nothing.

    python -m services.triage.insights report --since 30d

For each insight: what its cases share, how many cases and customers, the baseline, when
its first case came in and how long detection took, who acknowledged it and how many of
its cases were resolved with root cause ``systemic``; then totals per category.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from services.runtime.connections import mongo_client
from services.triage.insights.messages import status_of
from services.triage.insights.store import InsightStore
from services.triage.settings import TriageSettings

Document = dict[str, Any]
_SINCE = re.compile(r"^(\d+)([dhw])$")


def parse_since(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w``."""
    found = _SINCE.match(text.strip())
    if not found:
        raise ValueError(f"--since takes a number and d, h or w (e.g. 30d), not {text!r}")
    amount, unit = int(found.group(1)), found.group(2)
    return {"d": timedelta(days=amount), "h": timedelta(hours=amount),
            "w": timedelta(weeks=amount)}[unit]  # fmt: skip


def _duration(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min"]
    return " ".join(part for part in parts if part) if (days or hours) else f"{minutes} min"


def _when(moment: datetime | None, zone: tzinfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else "?"


def _shared(insight: Document) -> str:
    key = dict(insight.get("key") or {})
    key.pop("category", None)
    return ", ".join(f"{name} {value}" for name, value in key.items()) or "?"


def insight_lines(insight: Document, zone: tzinfo) -> list[str]:
    systemic = len(insight.get("systemic") or [])
    total = int(insight.get("case_total") or len(insight.get("case_numbers") or []))
    first, detected = insight.get("first_seen"), insight.get("detected_at")
    lines = [
        f"  {insight['_id']}  {status_of(insight):<12} {insight.get('category', '?')}: "
        f"{insight.get('kind', '?')} — {_shared(insight)}",
        f"      {total} case(s); peak {insight.get('peak', insight.get('count'))} customers "
        f"in the window (threshold {insight.get('threshold')}, baseline "
        f"{float(insight.get('baseline') or 0):g})",
        f"      first case {_when(first, zone)}, detected {_when(detected, zone)}"
        + (f" ({_duration(detected - first)} after the first case)" if first and detected else ""),
    ]
    acknowledged = insight.get("acknowledged") or {}
    after = [f"acknowledged by {acknowledged['owner']}"] if acknowledged.get("owner") else []
    if insight.get("subsided_at"):
        after.append(f"subsided {_when(insight['subsided_at'], zone)}")
    after.append(f"{systemic} resolved as systemic")
    lines.append("      " + ", ".join(after))
    return lines


def report_lines(insights: Iterable[Document], now: datetime, zone: tzinfo = UTC) -> list[str]:
    """Open insights first, then past ones, newest first; totals per category. Pure."""
    found = sorted(insights, key=lambda doc: doc.get("detected_at") or now, reverse=True)
    open_ones = [doc for doc in found if doc.get("status") == "open"]
    past = [doc for doc in found if doc.get("status") != "open"]
    lines = [f"{len(found)} insight(s): {len(open_ones)} open, {len(past)} past "
             f"(as of {_when(now, zone)})"]  # fmt: skip
    for title, group in (("open", open_ones), ("past", past)):
        lines.append(f"{title}:")
        if not group:
            lines.append("  none")
        for insight in group:
            lines.extend(insight_lines(insight, zone))
    totals: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    delays: defaultdict[str, list[timedelta]] = defaultdict(list)
    for insight in found:
        category = str(insight.get("category", "?"))
        totals[category][0] += 1
        totals[category][1] += int(insight.get("case_total") or 0)
        totals[category][2] += len(insight.get("systemic") or [])
        if insight.get("first_seen") and insight.get("detected_at"):
            delays[category].append(insight["detected_at"] - insight["first_seen"])
    if totals:
        lines.append("by category:")
    for category, (count, cases, systemic) in sorted(totals.items()):
        mean = (
            sum(delays[category], timedelta()) / len(delays[category]) if delays[category] else None
        )
        lines.append(
            f"  {category:<18} {count} insight(s), {cases} case(s), {systemic} resolved as "
            f"systemic" + (f", detected {_duration(mean)} after the first case on average"
                           if mean is not None else "")
        )  # fmt: skip
    return lines


async def load_insights(settings: TriageSettings, since: datetime) -> list[Document]:
    client = mongo_client(settings, tz_aware=True)
    try:
        database = client[f"{settings.mongodb_database_prefix}_triage"]
        return await InsightStore(database, database["cases"]).since(since)
    finally:
        await client.close()
