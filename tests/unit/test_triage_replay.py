from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from services.policy import load_policy
from services.policy.model import DEFAULT_POLICY_FILE
from services.triage.events import decision_document, facts_from_opened
from services.triage.replay import replay_report
from services.triage.rules import decide
from tests.support.policy_files import copy_policy

CURRENT = load_policy()
RECEIVED = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Taipei"))


def stored(case_number: str, text: str, channel: str = "email") -> dict[str, object]:
    opened = {"case_number": case_number, "channel": channel, "received_at": RECEIVED.isoformat(),
              "subject": "", "text": text}  # fmt: skip
    decision = decide(facts_from_opened(opened, None, 0), CURRENT)
    return {"_id": case_number, "opened": opened, "decision": decision_document(decision)}


def test_unchanged_policy_changes_nothing() -> None:
    cases = [stored("CS1", "包裹延遲"), stored("CS2", "信用卡被扣了兩次")]
    report = replay_report(cases, CURRENT)
    assert report.cases == 2
    assert not report.urgency_changes and not report.category_changes and not report.examples


def test_candidate_that_raises_delivery_is_reported_with_examples(tmp_path: Path) -> None:
    candidate = copy_policy(tmp_path, "candidate.toml")
    candidate.write_text(
        DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
        .replace('version = "2026.11-2"', 'version = "candidate"')
        .replace('name = "delivery"\nurgency = "normal"', 'name = "delivery"\nurgency = "high"'),
        encoding="utf-8",
    )
    cases = [
        stored("CS1", "包裹延遲"),
        stored("CS2", "包裹還沒到"),
        stored("CS3", "信用卡被扣了兩次"),
    ]
    report = replay_report(cases, load_policy(candidate))
    assert report.urgency_changes == {("normal", "high"): 2}
    assert report.first_response_tighter == 2 and report.resolution_tighter == 2
    assert report.examples[0].startswith("CS1: urgency normal -> high")
    text = "\n".join(report.lines())
    assert "urgency changes: 2 (2 raised, 0 lowered)" in text
