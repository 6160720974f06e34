"""Triage against the default policy, one row per situation: category, urgency, both deadlines
(respond minutes, resolve hours, counted from receipt) and a reason an agent can read.

Respond = the earlier of the urgency target (urgent 2 h, high 4 h, normal 24 h) and the
channel target (email 24 h, social 1 h, app 15 min); resolve = 24 / 48 / 72 h.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.policy import load_policy
from services.triage.rules import CaseFacts, CustomerFacts, decide

POLICY = load_policy()
RECEIVED = datetime(2026, 11, 23, 21, 30, tzinfo=ZoneInfo("Asia/Taipei"))
VIP = {"customer": CustomerFacts(tier="vip")}
RICH = {"customer": CustomerFacts(tier="standard", lifetime_value=Decimal("86000"))}
REPEAT = {"previous_cases_in_window": 1}
LOUD = {"visibility": "public", "followers": 12000}

# (text, channel, extra facts, category, urgency, respond minutes, resolve hours, reason part)
TABLE: list[tuple[str, str, dict[str, Any], str, str, int, int, str]] = [
    # product safety: urgent
    ("我兒子吃完全身起疹子送急診", "email", {}, "product_safety", "urgent", 120, 24, "起疹子"),
    ("你們家的花生醬餅乾沒有標示過敏原，我兒子吃完全身起疹子送急診！！", "social", {}, "product_safety", "urgent", 60, 24, "送急診"),
    ("吹風機插電後冒煙，差點起火", "app", {}, "product_safety", "urgent", 15, 24, "冒煙"),
    ("我儿子吃完过敏，送医了", "email", {}, "product_safety", "urgent", 120, 24, "过敏"),
    ("电暖器突然爆炸", "social", {}, "product_safety", "urgent", 60, 24, "爆炸"),
    ("The kettle caught fire in my kitchen", "email", {}, "product_safety", "urgent", 120, 24, "fire"),
    ("My daughter had an allergic reaction and went to hospital", "app", {}, "product_safety", "urgent", 15, 24, "allergic"),
    ("吃了你們的便當後食物中毒", "email", {}, "product_safety", "urgent", 120, 24, "食物中毒"),
    ("The charger burned my hand", "social", {}, "product_safety", "urgent", 60, 24, "burned"),
    ("嬰兒車的扣環斷裂，嬰兒差點摔下來", "email", {}, "product_safety", "urgent", 120, 24, "嬰兒"),
    # legal threat / media: urgent
    ("再不處理我就找律師提告", "email", {}, "legal", "urgent", 120, 24, "律師"),
    ("我已經向消保官申訴了", "app", {}, "legal", "urgent", 15, 24, "消保官"),
    ("我会起诉你们", "email", {}, "legal", "urgent", 120, 24, "起诉"),
    ("My lawyer will file a lawsuit", "social", {}, "legal", "urgent", 60, 24, "lawyer"),
    ("I have contacted a journalist about this", "email", {}, "legal", "urgent", 120, 24, "journalist"),
    ("這件事我會找媒體爆料", "social", {}, "legal", "urgent", 60, 24, "媒體"),
    # financial loss: high
    ("信用卡被扣了兩次", "email", {}, "billing", "high", 240, 48, "扣了兩次"),
    ("我被重複扣款 NT$1,580", "app", {}, "billing", "high", 15, 48, "重複扣款"),
    ("信用卡被盗刷了", "email", {}, "billing", "high", 240, 48, "盗刷"),
    ("I was charged twice for one order", "social", {}, "billing", "high", 60, 48, "charged twice"),
    ("There is an unauthorized charge on my card", "email", {}, "billing", "high", 240, 48, "unauthorized charge"),
    ("你們多收了我 200 元", "email", {}, "billing", "high", 240, 48, "多收"),
    ("退款還沒收到，已經兩週了", "email", {}, "refund", "high", 240, 48, "退款還沒"),
    ("我还没退款到账", "app", {}, "refund", "high", 15, 48, "还没退款"),
    ("Where is my refund? It has been a month", "email", {}, "refund", "high", 240, 48, "where is my refund"),
    ("I still no refund after returning the item", "social", {}, "refund", "high", 60, 48, "still no refund"),
    # service lapses, minor defects, delivery: normal
    ("包裹已經延遲五天了", "email", {}, "delivery", "normal", 1440, 72, "延遲"),
    ("包裹已經延遲五天了", "social", {}, "delivery", "normal", 60, 72, "延遲"),
    ("包裹已經延遲五天了", "app", {}, "delivery", "normal", 15, 72, "延遲"),
    ("快递还没到", "email", {}, "delivery", "normal", 1440, 72, "还没到"),
    ("My parcel has not arrived", "email", {}, "delivery", "normal", 1440, 72, "parcel"),
    ("The package was sent to the wrong address", "app", {}, "delivery", "normal", 15, 72, "wrong address"),
    ("杯子有裂痕，可以換貨嗎", "email", {}, "product_defect", "normal", 1440, 72, "裂"),
    ("收到的耳機左邊壞掉", "social", {}, "product_defect", "normal", 60, 72, "壞掉"),
    ("手机壳有瑕疵", "email", {}, "product_defect", "normal", 1440, 72, "瑕疵"),
    ("The blender is defective", "email", {}, "product_defect", "normal", 1440, 72, "defective"),
    ("The lid arrived cracked", "app", {}, "product_defect", "normal", 15, 72, "cracked"),
    ("門市人員態度很差，不理人", "email", {}, "service_attitude", "normal", 1440, 72, "態度"),
    ("客服电话一直打不通", "social", {}, "service_attitude", "normal", 60, 72, "打不通"),
    ("The staff member was rude to me", "email", {}, "service_attitude", "normal", 1440, 72, "rude"),
    ("App 一直閃退", "app", {}, "technical", "normal", 15, 72, "閃退"),
    ("無法登入會員帳號", "email", {}, "technical", "normal", 1440, 72, "無法登入"),
    ("I can't log in to the website", "email", {}, "technical", "normal", 1440, 72, "can't log in"),
    ("請問你們週末有營業嗎", "email", {}, "other", "normal", 1440, 72, "general complaint"),
    ("Just wanted to say the packaging was ugly", "social", {}, "other", "normal", 60, 72, "general complaint"),
    # severe dissatisfaction raises normal to high
    ("包裹延遲，真的非常失望", "email", {}, "delivery", "high", 240, 48, "severe dissatisfaction"),
    ("Parcel delayed again, this is unacceptable", "email", {}, "delivery", "high", 240, 48, "severe dissatisfaction"),
    ("店员态度极度不满", "email", {}, "service_attitude", "high", 240, 48, "severe dissatisfaction"),
    # mixed language
    ("我的 order 被 charged twice 了", "email", {}, "billing", "high", 240, 48, "charged twice"),
    ("Refund 還沒收到，退款沒下文", "app", {}, "refund", "high", 15, 48, "退款沒"),
    ("the 包裹 is 延遲 again", "email", {}, "delivery", "normal", 1440, 72, "延遲"),
    # negation: the mention does not count
    ("我沒有受傷，只是杯子有裂痕", "email", {}, "product_defect", "normal", 1440, 72, "裂"),
    ("孩子没有过敏，只是包装破损", "email", {}, "product_defect", "normal", 1440, 72, "破损"),
    ("I was not injured, but the mug is cracked", "email", {}, "product_defect", "normal", 1440, 72, "cracked"),
    ("No fire or smoke, the parcel is just late", "email", {}, "delivery", "normal", 1440, 72, "parcel"),
    ("我不是要告你們，只是包裹還沒到", "email", {}, "delivery", "normal", 1440, 72, "還沒到"),
    # escalation: one level up, flagged
    ("包裹已經延遲五天了", "email", VIP, "delivery", "high", 240, 48, "escalated from normal to high"),
    ("包裹已經延遲五天了", "email", RICH, "delivery", "high", 240, 48, "escalated from normal to high"),
    ("包裹已經延遲五天了", "email", REPEAT, "delivery", "high", 240, 48, "escalated from normal to high"),
    ("包裹已經延遲五天了", "social", LOUD, "delivery", "high", 60, 48, "escalated from normal to high"),
    ("信用卡被扣了兩次", "email", VIP, "billing", "urgent", 120, 24, "escalated from high to urgent"),
    ("吃了之後過敏送醫", "email", VIP, "product_safety", "urgent", 120, 24, "過敏"),
    ("包裹已經延遲五天了", "social", {"visibility": "private", "followers": 50000}, "delivery", "normal", 60, 72, "延遲"),
    ("包裹已經延遲五天了", "social", {"visibility": "public", "followers": 9999}, "delivery", "normal", 60, 72, "延遲"),
    # the app's category hint counts only when the text says nothing specific
    ("請盡快處理", "app", {"category_hint": "product_defect"}, "product_defect", "normal", 15, 72, "app form category"),
    ("有人在嗎", "app", {"category_hint": "unknown_hint"}, "other", "normal", 15, 72, "general complaint"),
]  # fmt: skip


def test_table_is_large_and_covers_the_space() -> None:
    assert len(TABLE) >= 60
    assert {row[3] for row in TABLE} >= {rule.name for rule in POLICY.triage.categories} | {"other"}
    assert {row[1] for row in TABLE} == {"email", "social", "app"}


@pytest.mark.parametrize(
    (
        "text",
        "channel",
        "extra",
        "category",
        "urgency",
        "respond_minutes",
        "resolve_hours",
        "reason",
    ),
    TABLE,
    ids=[f"{n:02d}-{row[3]}-{row[4]}-{row[1]}" for n, row in enumerate(TABLE)],
)
def test_triage_row(
    text: str, channel: str, extra: dict[str, Any], category: str, urgency: str,
    respond_minutes: int, resolve_hours: int, reason: str,
) -> None:  # fmt: skip
    decision = decide(CaseFacts("CS20261123-0001", channel, RECEIVED, "", text, **extra), POLICY)
    assert (decision.category, decision.urgency) == (category, urgency)
    assert decision.first_response_due == RECEIVED + timedelta(minutes=respond_minutes)
    assert decision.resolution_due == RECEIVED + timedelta(hours=resolve_hours)
    readable = " | ".join(decision.reasons + decision.escalation_reasons)
    assert reason in readable, readable
    assert decision.escalated == bool(decision.escalation_reasons)
    assert decision.policy_version == POLICY.version
