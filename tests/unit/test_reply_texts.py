"""Every customer-facing template against the policy's banned phrases (services/policy)."""

from __future__ import annotations

from datetime import datetime

from services.compensation.events import _EXPIRED_TEXT, _FALLBACK_TEXT, _OFFER_TEXT
from services.compensation.offers import _DESCRIPTIONS
from services.followup.events import _SURVEY
from services.intake.templates import ACK_TEMPLATES, acknowledgement
from services.policy import load_policy

BANNED = [phrase.lower() for phrase in load_policy().replies.banned_phrases]


def all_texts() -> list[str]:
    texts = [
        *ACK_TEMPLATES.values(),
        *_OFFER_TEXT.values(),
        *_EXPIRED_TEXT.values(),
        *_FALLBACK_TEXT.values(),
        *_SURVEY.values(),
    ]
    texts += [text for by_language in _DESCRIPTIONS.values() for text in by_language.values()]
    return texts


def test_no_template_uses_a_banned_phrase() -> None:
    for text in all_texts():
        for phrase in BANNED:
            assert phrase not in text.lower(), f"{phrase!r} in {text!r}"


def test_acknowledgement_has_thanks_apology_case_number_and_a_time() -> None:
    when = datetime(2026, 11, 24, 10, 0)
    for language, thanks, sorry in [("zh-Hant", "謝謝", "抱歉"), ("zh-Hans", "谢谢", "抱歉"),
                                    ("en", "thank you", "sorry")]:  # fmt: skip
        _, body = acknowledgement(language, "CS20261123-0042", when)
        assert thanks in body.lower() and sorry in body.lower()
        assert "CS20261123-0042" in body and "2026-11-24 10:00" in body


def test_the_banned_list_covers_policy_md() -> None:
    assert {"這是不可能的", "您應該", "請冷靜", "我已經說過了"} <= set(BANNED)
