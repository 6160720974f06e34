from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.policy import load_policy
from services.policy.calendar import add_working_hours, country_holidays
from services.policy.model import DEFAULT_POLICY_FILE
from services.triage.rules import CaseFacts, decide

TPE = ZoneInfo("Asia/Taipei")
WEEKDAYS = frozenset(range(5))


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TPE)


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        (at(23, 10), 4, at(23, 14)),  # Monday morning, same day
        (at(27, 16), 4, at(30, 11)),  # Friday 16:00 + 4 h: 2 h Friday, 2 h Monday
        (at(28, 11), 2, at(30, 11)),  # Saturday: clock starts Monday 09:00
        (at(23, 7), 1, at(23, 10)),  # before opening: counts from 09:00
        (at(23, 20), 0.25, at(24, 9, 15)),  # after closing: next morning
        (at(24, 17), 24, at(27, 14)),  # Tue 17:00 + 24 h: 1 + 9 + 9 + 5 -> Friday 14:00
        (at(24, 10, month=12), 9, at(26, 10, month=12) + timedelta(days=2)),  # 25 Dec is a holiday
    ],
)
def test_working_hours(start: datetime, hours: float, due: datetime) -> None:
    got = add_working_hours(
        start, timedelta(hours=hours), TPE, 9, 18, WEEKDAYS, country_holidays("TW")
    )
    assert got == due


def test_policy_chooses_business_hours_per_category(tmp_path: Path) -> None:
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8").replace(
        "category_clock = {}", 'category_clock = { delivery = "business_hours" }'
    )
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    policy = load_policy(path)
    friday_evening = at(27, 20)
    late = decide(CaseFacts("CS1", "email", friday_evening, "", "包裹延遲"), policy)
    # 24 working hours from Friday night: Monday 9 + Tuesday 9 + 6 -> Wednesday 15:00
    assert late.first_response_due == at(2, 15, month=12)
    assert any("business hours" in reason for reason in late.reasons)
    safety = decide(CaseFacts("CS2", "email", friday_evening, "", "起火了"), policy)
    assert safety.first_response_due == friday_evening + timedelta(hours=2)  # calendar hours
