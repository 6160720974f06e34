"""When to ask the customer whether we made it right. Pure: policy, facts and a calendar in.

Rules (services/policy/POLICY.md, "Follow-up"): 3 days after resolution by default, 7
for refunds; only between the window hours in the customer's time zone; Sundays and
public holidays move to the next working day; never past the 7-day limit, in which case
the last allowed moment inside the window is taken.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.policy.calendar import IsHoliday, no_holidays
from services.policy.model import FollowupPolicy


def followup_due(
    resolved_at: datetime,
    zone: ZoneInfo,
    refund: bool,
    rules: FollowupPolicy,
    is_holiday: IsHoliday = no_holidays,
) -> tuple[datetime, list[str]]:
    """(due time in the customer's zone, the reasons for it)."""
    local = resolved_at.astimezone(zone)
    delay = rules.refund_delay_days if refund else rules.default_delay_days
    reasons = [
        f"{delay} days after resolution" + (" (refund takes 3–7 business days)" if refund else "")
    ]
    earliest = local + timedelta(days=rules.min_delay_days)
    latest = local + timedelta(days=rules.max_delay_days)
    opens, closes = time(rules.send_window_start_hour), _closing(rules.send_window_end_hour)

    def working(day: date) -> bool:
        return day.weekday() not in rules.closed_weekdays and not is_holiday(day)

    def at(day: date, moment: time) -> datetime:
        return datetime.combine(day, moment, tzinfo=zone)

    candidate = local + timedelta(days=delay)
    if candidate.timetz().replace(tzinfo=None) < opens:
        candidate = at(candidate.date(), opens)
        reasons.append(f"moved to {opens:%H:%M}, the start of the sending window")
    elif candidate.timetz().replace(tzinfo=None) > closes:
        candidate = at(candidate.date() + timedelta(days=1), opens)
        reasons.append(f"after {closes:%H:%M}: moved to the next morning")
    moved = False
    while not working(candidate.date()):
        candidate = at(candidate.date() + timedelta(days=1), opens)
        moved = True
    if moved:
        reasons.append("moved off a Sunday or public holiday to the next working day")
    if candidate <= latest:
        return candidate, reasons

    # Past the limit: the latest allowed moment on a working day inside the window.
    day = latest.date()
    while day >= earliest.date():
        close_at = min(at(day, closes), latest)
        open_at = max(at(day, opens), earliest)
        if working(day) and open_at <= close_at:
            reasons.append(f"kept inside the {rules.max_delay_days}-day limit: last allowed day")
            return close_at, reasons
        day -= timedelta(days=1)
    reasons.append(
        f"no working day inside the window: sent at the {rules.max_delay_days}-day limit"
    )
    return min(max(at(latest.date(), opens), earliest), latest), reasons


def _closing(hour: int) -> time:
    return time(23, 59, 59) if hour >= 24 else time(hour)
