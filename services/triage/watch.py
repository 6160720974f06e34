"""Deadline alarms: when to warn that a deadline is at risk or breached. Pure.

Each deadline (first response, resolution) has one at-risk moment (a share of the way
from the start of the clock to the due time) and one breach moment (the due time).
Each fires once; a stopped clock (first response given, case resolved) fires nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

DEADLINES = ("first_response", "resolution")
Alarms = dict[str, dict[str, Any]]


def plan_alarms(
    clock_start: datetime,
    first_response_due: datetime,
    resolution_due: datetime,
    at_risk_share: float,
    previous: Alarms | None = None,
) -> Alarms:
    """Alarms for the given deadlines; an unchanged deadline keeps what already fired."""
    planned: Alarms = {}
    for deadline, due in (("first_response", first_response_due), ("resolution", resolution_due)):
        before = (previous or {}).get(deadline)
        if before is not None and before["due"] == due:
            planned[deadline] = before
            continue
        planned[deadline] = {
            "due": due,
            "at_risk_at": clock_start + (due - clock_start) * at_risk_share,
            "at_risk_sent": False,
            "breached_sent": False,
            # A clock stopped before (e.g. first response given) stays stopped.
            "stopped_at": (before or {}).get("stopped_at"),
        }
    return planned


def next_alarm_at(alarms: Alarms) -> datetime | None:
    moments = []
    for alarm in alarms.values():
        if alarm.get("stopped_at") is not None:
            continue
        if not alarm["at_risk_sent"]:
            moments.append(alarm["at_risk_at"])
        if not alarm["breached_sent"]:
            moments.append(alarm["due"])
    return min(moments, default=None)


def due_now(alarms: Alarms, now: datetime) -> list[tuple[str, str]]:
    """(deadline, "at_risk" | "breached") to publish now, in the order they became due."""
    firing: list[tuple[datetime, str, str]] = []
    for deadline in DEADLINES:
        alarm = alarms.get(deadline)
        if alarm is None or alarm.get("stopped_at") is not None:
            continue
        if not alarm["at_risk_sent"] and alarm["at_risk_at"] <= now:
            firing.append((alarm["at_risk_at"], deadline, "at_risk"))
        if not alarm["breached_sent"] and alarm["due"] <= now:
            firing.append((alarm["due"], deadline, "breached"))
    return [(deadline, kind) for _, deadline, kind in sorted(firing)]


def mark_fired(alarms: Alarms, fired: list[tuple[str, str]]) -> Alarms:
    updated = {name: dict(alarm) for name, alarm in alarms.items()}
    for deadline, kind in fired:
        updated[deadline][f"{kind}_sent"] = True
    return updated


def stop(alarms: Alarms, deadlines: tuple[str, ...], at: datetime) -> Alarms:
    updated = {name: dict(alarm) for name, alarm in alarms.items()}
    for deadline in deadlines:
        if deadline in updated and updated[deadline].get("stopped_at") is None:
            updated[deadline]["stopped_at"] = at
    return updated
