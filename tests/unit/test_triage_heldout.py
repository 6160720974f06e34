"""The issue's bar, on the held-back test complaints (never trained on, never tuned to).

Runs the evaluate command as ops would and prints its report into the test output.
Only aggregates are printed: listing the mistakes would invite tuning to these texts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.policy import load_policy
from services.policy.examples import parse_examples
from services.triage import evaluate

HELDOUT = Path(__file__).resolve().parents[1] / "triage" / "heldout.jsonl"
FLOORS = ["--min-category", "0.90", "--min-urgency", "0.95",
          "--min-urgent-recall", "1.0", "--min-urgent-precision", "0.85"]  # fmt: skip


def test_heldout_is_never_trained_on() -> None:
    policy = load_policy()
    assert policy.triage_examples is not None
    trained = {(row.subject, row.text) for row in policy.triage_examples.rows}
    heldout = parse_examples(HELDOUT, policy.triage.category_names).rows
    assert len(heldout) >= 250
    assert not trained & {(row.subject, row.text) for row in heldout}


def test_evaluate_on_heldout_meets_the_issue_floors(capsys: pytest.CaptureFixture[str]) -> None:
    code = evaluate.main([str(HELDOUT), *FLOORS])
    report = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + report)
    assert code == 0, report
