from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.followup.schedule import country_holidays, followup_due
from services.policy import load_policy

RULES = load_policy().followup
TPE = ZoneInfo("Asia/Taipei")
TW = country_holidays("TW")


@pytest.mark.parametrize(
    ("resolved", "refund", "due"),
    [
        (
            datetime(2026, 11, 23, 16, 0, tzinfo=TPE),
            False,
            datetime(2026, 11, 26, 16, 0, tzinfo=TPE),
        ),
        # late evening: next morning at 09:00
        (
            datetime(2026, 11, 23, 22, 30, tzinfo=TPE),
            False,
            datetime(2026, 11, 27, 9, 0, tzinfo=TPE),
        ),
        # early morning: 09:00 the same day
        (datetime(2026, 11, 23, 6, 0, tzinfo=TPE), False, datetime(2026, 11, 26, 9, 0, tzinfo=TPE)),
        # refunds wait 7 days
        (
            datetime(2026, 11, 23, 10, 0, tzinfo=TPE),
            True,
            datetime(2026, 11, 30, 10, 0, tzinfo=TPE),
        ),
        # lands on a Sunday: Monday
        (
            datetime(2026, 11, 26, 10, 0, tzinfo=TPE),
            False,
            datetime(2026, 11, 30, 9, 0, tzinfo=TPE),
        ),
        # lands on Constitution Day (25 Dec): the 26th
        (
            datetime(2026, 12, 22, 10, 0, tzinfo=TPE),
            False,
            datetime(2026, 12, 26, 9, 0, tzinfo=TPE),
        ),
        # refund, day 7 is a Sunday evening: last allowed moment is Saturday 20:00
        (
            datetime(2026, 11, 22, 21, 0, tzinfo=TPE),
            True,
            datetime(2026, 11, 28, 20, 0, tzinfo=TPE),
        ),
    ],
)
def test_followup_due(resolved: datetime, refund: bool, due: datetime) -> None:
    got, reasons = followup_due(resolved, TPE, refund, RULES, TW)
    assert got == due
    assert reasons


def test_customer_time_zone_is_used() -> None:
    new_york = ZoneInfo("America/New_York")
    resolved = datetime(2026, 11, 23, 8, 0, tzinfo=TPE)  # 19:00 the day before in New York
    due, _ = followup_due(resolved, new_york, False, RULES)
    assert due == datetime(2026, 11, 25, 19, 0, tzinfo=new_york)
