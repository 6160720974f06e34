"""Agents' replies against the house rules (services/triage/replies.py), as a table."""

from __future__ import annotations

import pytest

from services.intake.templates import ACK_TEMPLATES
from services.policy import load_policy
from services.triage.replies import check_reply

RULES = load_policy().replies
GOOD_FIRST = {
    "zh-Hant": "您好，謝謝您的來信，造成不便非常抱歉。我們會為您重新寄送，明天 18:00 前告訴您進度。",
    "zh-Hans": "您好，谢谢您的来信，给您带来不便非常抱歉。我们会为您安排退款，3 个工作天内完成。",
    "en": "Thank you for writing, and I'm sorry about the parcel. We will re-ship it today and "
    "send you the tracking number by 2026-11-24.",
}


def codes(text: str, first: bool) -> list[str]:
    return [problem.code for problem in check_reply(text, first, RULES)]


@pytest.mark.parametrize("language", sorted(GOOD_FIRST))
def test_a_good_first_reply_passes(language: str) -> None:
    assert codes(GOOD_FIRST[language], first=True) == []


@pytest.mark.parametrize(
    ("text", "first", "expected"),
    [
        # Later replies: only the banned phrases count.
        ("好的，已收到。", False, []),
        ("您應該先看說明書。", False, ["banned_phrase"]),
        ("这是公司政策，请冷静。", False, ["banned_phrase", "banned_phrase"]),
        ("這是公司政策，請冷靜。", False, ["banned_phrase", "banned_phrase"]),
        ("Please CALM DOWN, it's simple.", False, ["banned_phrase", "banned_phrase"]),
        ("You’re wrong about the date.", False, ["banned_phrase"]),  # a curly apostrophe
        # First replies: thanks, apology, next step and a time, each on its own.
        ("抱歉，我們會在明天回覆。", True, ["no_thanks"]),
        ("謝謝，我們會在明天回覆。", True, ["no_apology"]),
        ("謝謝，非常抱歉，明天見。", True, ["no_next_step"]),
        ("謝謝，非常抱歉，我們會盡快處理。", True, ["no_time"]),
        ("Thanks, sorry. We will call you at １０：３０.", True, []),  # full-width time
        ("Thanks, sorry, we will look into it within 2 hours.", True, []),
        ("Thanks, sorry, we will look into it.", True, ["no_time"]),
        ("您應該先看說明書。", True,
         ["banned_phrase", "no_thanks", "no_apology", "no_next_step", "no_time"]),
        ("I don't know. You should call the courier.", True,
         ["banned_phrase", "banned_phrase", "no_thanks", "no_apology", "no_next_step", "no_time"]),
    ],
)  # fmt: skip
def test_reply_rules(text: str, first: bool, expected: list[str]) -> None:
    assert codes(text, first) == expected


def test_each_problem_reads_as_a_sentence_and_names_the_phrase() -> None:
    (problem,) = check_reply("您應該先看說明書。", False, RULES)
    assert "您應該" in problem.text


@pytest.mark.parametrize("language", sorted(ACK_TEMPLATES))
def test_our_own_acknowledgement_would_pass_as_an_agents_first_reply(language: str) -> None:
    text = ACK_TEMPLATES[language].format(
        case_number="CS20261123-0042", reply_by="2026-11-24 10:00"
    )
    assert codes(text, first=True) == []
