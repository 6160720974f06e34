from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.followup.schedule import followup_due
from services.policy import load_policy
from services.policy.calendar import country_holidays

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


NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SYDNEY = ZoneInfo("Australia/Sydney")


@pytest.mark.parametrize(
    ("zone", "resolved", "refund", "due"),
    [
        # New York leaves DST on Sunday 1 Nov 2026: Thursday 10:00 EDT + 3 days (by the wall
        # clock, across the switch) lands on Sunday, which moves to Monday 09:00 EST.
        (NEW_YORK, datetime(2026, 10, 29, 10, 0, tzinfo=NEW_YORK), False, datetime(2026, 11, 2, 9, 0, tzinfo=NEW_YORK)),
        # Berlin enters DST on Sunday 29 Mar 2026: Wednesday 19:30 + 3 days is Saturday 19:30.
        (BERLIN, datetime(2026, 3, 25, 19, 30, tzinfo=BERLIN), False, datetime(2026, 3, 28, 19, 30, tzinfo=BERLIN)),
        # Sydney, late evening: next morning.
        (SYDNEY, datetime(2026, 11, 23, 21, 15, tzinfo=SYDNEY), False, datetime(2026, 11, 27, 9, 0, tzinfo=SYDNEY)),
        # Day-7 boundary exactly: resolved Monday 20:00, refund: next Monday 20:00 is allowed.
        (ZoneInfo("Asia/Taipei"), datetime(2026, 11, 23, 20, 0, tzinfo=ZoneInfo("Asia/Taipei")), True,
         datetime(2026, 11, 30, 20, 0, tzinfo=ZoneInfo("Asia/Taipei"))),
        # Resolved Taipei Saturday 20:01, refund: day 7 is Saturday 20:01, past the window:
        # the latest allowed moment is that Saturday's 20:00.
        (ZoneInfo("Asia/Taipei"), datetime(2026, 11, 21, 20, 1, tzinfo=ZoneInfo("Asia/Taipei")), True,
         datetime(2026, 11, 28, 20, 0, tzinfo=ZoneInfo("Asia/Taipei"))),
    ],
)  # fmt: skip
def test_zones_dst_and_day_seven(
    zone: ZoneInfo, resolved: datetime, refund: bool, due: datetime
) -> None:
    got, _ = followup_due(resolved, zone, refund, RULES, TW)
    assert got == due
    assert got.tzinfo is not None
    assert (
        timedelta(days=RULES.min_delay_days)
        <= got - resolved
        <= timedelta(days=RULES.max_delay_days)
    )
