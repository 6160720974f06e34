"""Triage decisions against the default policy (services/policy/POLICY.md)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.policy import load_policy
from services.triage.rules import CaseFacts, CustomerFacts, decide, retriage

POLICY = load_policy()
TPE = ZoneInfo("Asia/Taipei")
RECEIVED = datetime(2026, 11, 23, 10, 0, tzinfo=TPE)


def facts(text: str, channel: str = "email", **extra: object) -> CaseFacts:
    return CaseFacts("CS20261123-0001", channel, RECEIVED, "", text, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "channel", "category", "urgency", "respond_h", "resolve_h"),
    [
        ("我兒子吃完全身起疹子送急診", "email", "product_safety", "urgent", 2, 24),
        ("我儿子吃完全身起疹子，送医了", "email", "product_safety", "urgent", 2, 24),
        ("The kettle caught fire in my kitchen", "email", "product_safety", "urgent", 2, 24),
        ("再不處理我就找律師提告", "email", "legal", "urgent", 2, 24),
        (
            "I will contact the consumer protection office and my lawyer",
            "email",
            "legal",
            "urgent",
            2,
            24,
        ),
        ("信用卡被扣了兩次", "email", "billing", "high", 4, 48),
        ("I was charged twice for one order", "email", "billing", "high", 4, 48),
        ("包裹已經延遲五天了", "email", "delivery", "normal", 24, 72),
        ("杯子有裂痕，可以換貨嗎", "email", "product_defect", "normal", 24, 72),
        ("包裹已經延遲五天了", "social", "delivery", "normal", 1, 72),
        ("包裹已經延遲五天了", "app", "delivery", "normal", 0.25, 72),
        ("包裹延遲，真的非常失望", "email", "delivery", "high", 4, 48),
        ("謝謝你們", "email", "other", "normal", 24, 72),
    ],
)
def test_category_urgency_and_deadlines(
    text: str, channel: str, category: str, urgency: str, respond_h: float, resolve_h: float
) -> None:
    decision = decide(facts(text, channel), POLICY)
    assert (decision.category, decision.urgency) == (category, urgency)
    assert decision.first_response_due == RECEIVED + timedelta(hours=respond_h)
    assert decision.resolution_due == RECEIVED + timedelta(hours=resolve_h)
    assert decision.reasons and decision.policy_version == POLICY.version


@pytest.mark.parametrize(
    "text", ["我沒有受傷，只是杯子有裂痕", "I was not injured, but the mug is cracked"]
)
def test_negated_injury_is_not_a_safety_case(text: str) -> None:
    decision = decide(facts(text), POLICY)
    assert decision.category == "product_defect"
    assert decision.urgency == "normal"


def test_reasons_name_the_words_that_decided() -> None:
    decision = decide(facts("吃了之後過敏，還送醫"), POLICY)
    assert decision.reasons[0] == "mentions 過敏 and 送醫: product safety"


@pytest.mark.parametrize(
    ("extra", "reason_part"),
    [
        ({"customer": CustomerFacts(tier="vip")}, "VIP"),
        (
            {"customer": CustomerFacts(tier="standard", lifetime_value=Decimal("50000"))},
            "high-value",
        ),
        ({"previous_cases_in_window": 1}, "repeat complaint"),
        ({"visibility": "public", "followers": 10_000}, "followers"),
    ],
)
def test_escalation_raises_one_level(extra: dict[str, object], reason_part: str) -> None:
    channel = "social" if "followers" in extra else "email"
    decision = decide(facts("包裹已經延遲五天了", channel, **extra), POLICY)
    assert decision.escalated
    assert decision.urgency == "high"
    assert any(reason_part in reason for reason in decision.escalation_reasons)
    assert decision.owner_role and decision.progress_update_every_hours == 24


def test_private_influencer_post_is_not_escalated() -> None:
    decision = decide(facts("包裹延遲", "social", visibility="private", followers=50_000), POLICY)
    assert not decision.escalated


def test_escalation_never_goes_past_urgent() -> None:
    decision = decide(facts("起火了", customer=CustomerFacts(tier="vip")), POLICY)
    assert decision.urgency == "urgent" and decision.escalated


def test_retriage_raises_but_never_lowers() -> None:
    first = decide(facts("包裹延遲"), POLICY)
    worse = retriage(first, facts("包裹延遲", later_messages=("孩子誤食後住院了",)), POLICY)
    assert worse.urgency == "urgent"
    assert worse.first_response_due < first.first_response_due
    calmer = retriage(worse, facts("包裹延遲", later_messages=("謝謝",)), POLICY)
    assert calmer.urgency == "urgent"
    assert calmer.first_response_due == worse.first_response_due
