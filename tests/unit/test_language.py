"""Language detection against the labeled complaints' scripts (short, long, mixed, typos)."""

from __future__ import annotations

import pytest

from services.intake.language import chinese_script, detect_language
from services.policy import load_policy


def test_every_labeled_complaint_in_one_script_is_detected_as_that_script() -> None:
    examples = load_policy().triage_examples
    assert examples is not None
    rows = [row for row in examples.rows if row.script in {"zh-Hant", "zh-Hans", "en"}]
    assert len(rows) >= 500
    wrong = [(row.id, row.script, detect_language(f"{row.subject}\n{row.text}"))
             for row in rows if detect_language(f"{row.subject}\n{row.text}") != row.script]  # fmt: skip
    assert not wrong


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("我的 order 被 charge 了兩次", "zh-Hant"),
        ("我的 order 被 charge 了两次", "zh-Hans"),
        ("ok", "en"),
        ("I bought it at the 台北 store and the refund never came back to my card", "en"),
        ("😡😡😡", "zh-Hant"),
    ],
)
def test_short_and_mixed_text(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_script_of_characters_both_scripts_share_is_the_default() -> None:
    assert chinese_script("你好", "zh-Hans") == "zh-Hans"
    assert chinese_script("你好", "zh-Hant") == "zh-Hant"
