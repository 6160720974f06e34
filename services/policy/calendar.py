"""Working time: public holidays and business hours. Pure (holiday data ships with `holidays`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

IsHoliday = Callable[[date], bool]


def no_holidays(_: date) -> bool:
    return False


@cache
def country_holidays(country: str | None) -> IsHoliday:
    if not country:
        return no_holidays
    import holidays

    calendar = holidays.country_holidays(country)
    return lambda day: day in calendar


def add_working_hours(
    start: datetime,
    duration: timedelta,
    zone: ZoneInfo,
    opens: int,
    closes: int,
    working_weekdays: frozenset[int],
    is_holiday: IsHoliday,
) -> datetime:
    """``start`` plus ``duration`` counted only inside working hours on working days."""

    def working(day: date) -> bool:
        return day.weekday() in working_weekdays and not is_holiday(day)

    cursor = start.astimezone(zone)
    remaining = duration
    for _ in range(3660):  # ten years of days: a policy with no working day ends here
        day = cursor.date()
        day_open = datetime.combine(day, time(opens), tzinfo=zone)
        day_close = datetime.combine(day, time(closes), tzinfo=zone)
        if working(day) and cursor < day_close:
            cursor = max(cursor, day_open)
            available = day_close - cursor
            if remaining <= available:
                return cursor + remaining
            remaining -= available
        cursor = datetime.combine(day + timedelta(days=1), time(opens), tzinfo=zone)
    raise ValueError("the business calendar has no working time")
