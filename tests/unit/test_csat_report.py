from __future__ import annotations

from services.followup.report import csat_lines


def test_csat_by_dimension() -> None:
    checks = [
        {"status": "answered", "score": 5, "category": "delivery", "channel": "app", "urgency": "normal"},
        {"status": "answered", "score": 4, "category": "delivery", "channel": "email", "urgency": "normal"},
        {"status": "answered", "score": 1, "category": "billing", "channel": "email", "urgency": "high"},
        {"status": "sent", "category": "billing"},
    ]  # fmt: skip
    lines = csat_lines(checks, good_score=4, reopen_score=2)
    assert lines[0] == "3 answered check(s)"
    delivery = next(line for line in lines if line.strip().startswith("delivery"))
    assert "answers     2" in delivery and "mean 4.50" in delivery and "CSAT 100.0%" in delivery
    billing = next(line for line in lines if line.strip().startswith("billing"))
    assert "CSAT   0.0%" in billing and "reopened 100.0%" in billing
    email = next(line for line in lines if line.strip().startswith("email"))
    assert "CSAT  50.0%" in email
