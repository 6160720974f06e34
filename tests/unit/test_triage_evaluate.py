"""The evaluate command's author-group cross-validation: each writer's examples are decided
by a model that never read that writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.policy import load_policy
from services.policy.model import DEFAULT_POLICY_FILE
from services.triage import evaluate
from tests.support.policy_files import copy_policy


def _small_policy(tmp_path: Path) -> Path:
    """A policy whose examples are 8 per category from each of two writers, xa and xb."""
    path = copy_policy(tmp_path)
    kept: list[str] = []
    taken: dict[tuple[str, str], int] = {}
    bundled = DEFAULT_POLICY_FILE.parent / "triage" / "examples.jsonl"
    for line in bundled.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        key = (row["id"].split("-")[0], row["category"])
        if key[0] in ("xa", "xb") and taken.get(key, 0) < 8:
            taken[key] = taken.get(key, 0) + 1
            kept.append(line)
    (tmp_path / "triage" / "examples.jsonl").write_text("\n".join(kept) + "\n", encoding="utf-8")
    return path


def test_each_author_group_is_decided_by_a_model_trained_without_it(tmp_path: Path) -> None:
    policy = load_policy(_small_policy(tmp_path))
    assert policy.triage_examples is not None
    rows = policy.triage_examples.rows
    seen: list[str] = []
    reports = evaluate.cross_validate_authors(policy, progress=lambda group, _: seen.append(group))
    assert seen == ["xa", "xb"] and list(reports) == ["xa", "xb"]
    for group, report in reports.items():
        assert sorted(o.row.id for o in report.outcomes) == sorted(
            row.id for row in rows if row.id.startswith(group + "-")
        )
        assert 0.0 <= report.category_accuracy <= 1.0
    with pytest.raises(ValueError, match="no examples by author group"):
        evaluate.cross_validate_authors(policy, ["zz"])


def test_the_command_reports_each_group_and_the_pooled_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _small_policy(tmp_path)
    code = evaluate.main(["--by-author", "xb", "--policy", str(path), "--min-category", "1.01"])
    out = capsys.readouterr().out
    assert code == 1 and "BELOW THE FLOOR: category accuracy" in out
    assert "held out xb" in out and "held out xa" not in out
    assert "72 labeled complaints" in out
