"""The insights report: open ones first, what they share, time to detection, systemic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.triage.insights.report import parse_since, report_lines

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def insight(name: str, status: str, category: str, **extra: object) -> dict[str, object]:
    return {"_id": name, "status": status, "kind": "product", "category": category,
            "key": {"category": category, "sku": "MUG-01"}, "count": 9, "peak": 9,
            "threshold": 8, "baseline": 2.5, "case_total": 9, "first_seen": T0,
            "detected_at": T0 + timedelta(hours=5, minutes=15), "systemic": [], **extra}  # fmt: skip


def test_open_then_past_with_detection_delay_owner_and_systemic_resolutions() -> None:
    lines = report_lines(
        [
            insight("INS-past", "subsided", "product_defect", subsided_at=T0 + timedelta(days=1),
                    systemic=[{"case_number": "CS-1"}], acknowledged={"owner": "quality"}),
            insight("INS-open", "open", "product_safety"),
        ],
        T0 + timedelta(days=2),
        ZoneInfo("Asia/Taipei"),
    )  # fmt: skip
    text = "\n".join(lines)
    assert lines[0].startswith("2 insight(s): 1 open, 1 past")
    assert text.index("INS-open") < text.index("past:") < text.index("INS-past")
    assert "product_defect: product — sku MUG-01" in text
    assert "first case 2026-11-23 10:00, detected 2026-11-23 15:15 (5 h 15 min after" in text
    assert "acknowledged by quality, subsided 2026-11-24 10:00, 1 resolved as systemic" in text
    assert (
        "product_safety     1 insight(s), 9 case(s), 0 resolved as systemic, detected 5 h" in text
    )


def test_an_empty_store_says_so() -> None:
    assert report_lines([], T0) == ["0 insight(s): 0 open, 0 past (as of 2026-11-23 02:00)",
                                    "open:", "  none", "past:", "  none"]  # fmt: skip


@pytest.mark.parametrize(("text", "delta"), [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)),
                                             ("2w", timedelta(weeks=2))])  # fmt: skip
def test_since(text: str, delta: timedelta) -> None:
    assert parse_since(text) == delta


def test_since_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="30d"):
        parse_since("a month")
