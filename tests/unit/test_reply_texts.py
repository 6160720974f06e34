"""Every customer-facing template against the policy's banned phrases (services/policy)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.compensation.events import (
    _ACCEPTED_TEXT,
    _APPROVAL_EXPIRED_TEXT,
    _EXPIRED_TEXT,
    _FALLBACK_TEXT,
    _NEXT_STEP,
    _OFFER_TEXT,
    acceptance_messages,
)
from services.compensation.offers import _DESCRIPTIONS, describe
from services.followup.events import _REMINDER, _SURVEY
from services.intake.templates import ACK_TEMPLATES, acknowledgement
from services.policy import load_policy

POLICY = load_policy()
BANNED = [phrase.lower() for phrase in POLICY.replies.banned_phrases]


def all_texts() -> list[str]:
    texts = [
        *ACK_TEMPLATES.values(),
        *_OFFER_TEXT.values(),
        *_EXPIRED_TEXT.values(),
        *_FALLBACK_TEXT.values(),
        *_SURVEY.values(),
        *_REMINDER.values(),
        *_ACCEPTED_TEXT.values(),
        *_APPROVAL_EXPIRED_TEXT.values(),
    ]
    for table in (_DESCRIPTIONS, _NEXT_STEP):
        texts += [text for by_language in table.values() for text in by_language.values()]
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


@pytest.mark.parametrize(
    ("language", "kind", "value", "expected"),
    [
        ("en", "refund", "1290", ["Thank you", "Refund of TWD 1,290", "original payment method",
                                   "by 2026-12-03"]),
        ("zh-Hant", "coupon", "300", ["謝謝", "購物金 TWD 300", "存入您的帳戶", "2026-11-23 前"]),
        ("zh-Hans", "replacement", None, ["谢谢", "免费为您重新寄送新品", "寄出新品", "2026-11-26 前"]),
        ("ja", "apology_only", None, ["Thank you", "formal apology", "by 2026-11-25"]),
    ],
)  # fmt: skip
def test_acceptance_confirmation_says_what_what_next_and_when(
    language: str, kind: str, value: str | None, expected: list[str]
) -> None:
    now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Taipei
    offer = {"offer_id": "CS20261123-0042-O1", "currency": "TWD"}
    text_language = language if language in _ACCEPTED_TEXT else "en"
    option = {"option_id": "CS20261123-0042-O1-1", "kind": kind, "value": value,
              "description": describe(kind, None if value is None else Decimal(value), "TWD",
                                      text_language)}  # fmt: skip
    facts = {"language": language, "channel": "app", "customer_id": "C-1"}
    accepted, notice = acceptance_messages("CS20261123-0042", offer, option, facts, now, POLICY)
    assert accepted["type"] == "complaint.compensation.accepted"
    data = json.loads(notice["value"])["data"]
    assert data["template"] == f"compensation_accepted.{text_language}"
    assert data["channel"] == "app" and data["recipient"] == "C-1"
    body = data["body"]
    assert "CS20261123-0042" in body
    for part in expected:
        assert part in body, (part, body)
    for phrase in BANNED:
        assert phrase not in body.lower()
