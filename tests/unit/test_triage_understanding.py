"""Issue 13's kinds of missed complaints, each rewritten in our own words, as a table.

These texts are not in the training examples: they check that triage reads symptoms,
paraphrases, both scripts, English inflections and negation, not the lexicon's exact terms.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.policy import load_policy
from services.triage.rules import CaseFacts, decide

POLICY = load_policy()
RECEIVED = datetime(2026, 11, 23, 21, 30, tzinfo=ZoneInfo("Asia/Taipei"))

S, L, B, R, D = "product_safety", "legal", "billing", "refund", "delivery"
P, A, T = "product_defect", "service_attitude", "technical"

# (text, category, urgency, secondary or None when any secondary is fine)
TABLE: list[tuple[str, str, str, str | None]] = [
    # harm to a person without the lexicon's words
    ("Used the new curling wand twice and now the back of my hand has swelled right up.", S, "urgent", None),
    ("被熱水壺電了一下，到現在手指還是麻麻的", S, "urgent", None),
    ("The glass lid burst on the stove and I ended up needing four stitches in my wrist.", S, "urgent", None),
    ("吃了你們的魚油膠囊後心悸，心臟一直跳很快，整晚睡不著", S, "urgent", None),
    ("我家兩歲的兒子差點把玩具車上掉下來的小螺絲吞下去", S, "urgent", None),
    ("充电宝放在床头，突然鼓起来还在冒烟", S, "urgent", None),
    ("那罐鮪魚罐頭蓋子是凸起來的，我吃完吐了一整晚", S, "urgent", None),
    ("The harness buckle on the car seat popped open on the highway with my son in it.", S, "urgent", None),
    # legal, regulator and press in other words
    ("再不给我处理，我就打12315投诉你们", L, "urgent", None),
    ("I'll be filing this in small-claims court next week.", L, "urgent", None),
    ("My solicitor will be writing to you about the sofa.", L, "urgent", None),
    ("A reporter at our local paper is running a story on how you treat customers.", L, "urgent", None),
    ("I have lodged a formal complaint about your company with the consumer regulator.", L, "urgent", None),
    ("我已經向消保官提出申訴，請等他們聯絡你們", L, "urgent", None),
    # money taken or withheld
    ("I'm paying for two subscriptions but there's only one account.", B, "high", None),
    ("訂閱已經取消了，這個月還是被扣了一次月費", B, "high", None),
    ("結帳時折價券沒有套用上去，多付了 NT$200", B, "high", None),
    ("You kept a $30 restocking fee on a return that was never even opened.", B, "high", None),
    ("My card statement shows the same order twice.", B, "high", None),
    ("Charging me again after I cancelled? Seriously?", B, "high", None),
    # a refund that has not arrived is not a delivery problem
    ("The refund still has not arrived.", R, "high", None),
    ("退款到現在都還沒收到", R, "high", None),
    ("退款进度一直卡着，钱还没到账", R, "high", None),
    # defects by symptom
    ("One earbud gives no sound at all.", P, "normal", None),
    ("A wheel broke off the suitcase on its first trip.", P, "normal", None),
    ("The jumper shrank two sizes after one wash.", P, "normal", None),
    ("電視螢幕中間出現一條亮線", P, "normal", None),
    # technical and attitude
    ("Checkout keeps showing an error when I press pay.", T, "normal", None),
    ("重設密碼的簡訊一直收不到", T, "normal", None),
    ("小程序一直在转圈，什么都打不开", T, "normal", None),
    ("Waited on hold for 40 minutes and then the agent hung up on me.", A, "normal", None),
    ("Every reply from your agent is the same pasted paragraph.", A, "normal", None),
    # negation is scoped to its clause; conditional threats still count
    ("I wasn't hurt, but the kettle handle snapped off.", P, "normal", None),
    ("I'm not going to sue, but I want the double charge refunded.", B, "high", None),
    ("我沒有受傷，只是馬克杯的把手裂開了", P, "normal", None),
    ("我不是要告你們啦，只是訂的書包到現在還沒寄到", D, "normal", None),
    ("Luckily my son didn't touch it, the charger was smoking.", S, "urgent", None),
    ("If this happens again I'll call a lawyer.", L, "urgent", None),
    # a negation in the condition does not reach the threat; double negatives threaten too
    ("If you don't refund me I'll sue.", L, "urgent", None),
    ("如果下週還沒退款，不排除找媒體", L, "urgent", None),
    ("Still no refund and I won't hesitate to contact trading standards.", L, "urgent", None),
    ("I won't be suing, I just want the refund", R, "high", None),
    # figures of speech are not harm
    ("Please fire whoever was on the till this afternoon, he rolled his eyes at me the whole time.", A, "normal", None),
    ("Our Fire TV stick restarts itself every ten minutes.", P, "normal", None),
    # several issues: the guide's order decides the primary, the next is secondary
    ("The parcel came a week late and I was charged twice for it.", B, "high", D),
    ("The mug was cracked and it cut my finger when I washed it.", S, "urgent", P),
]  # fmt: skip


def test_table_covers_every_category() -> None:
    assert {row[1] for row in TABLE} == set(POLICY.triage.category_names) - {"other"}
    examples = POLICY.triage_examples
    assert examples is not None
    trained = {row.text for row in examples.rows}
    assert not trained & {row[0] for row in TABLE}, "these rows must not be training examples"


@pytest.mark.parametrize(
    ("text", "category", "urgency", "secondary"), TABLE, ids=[f"{n:02d}" for n in range(len(TABLE))]
)
def test_triage_understands(text: str, category: str, urgency: str, secondary: str | None) -> None:
    decision = decide(CaseFacts("CS20261123-0001", "email", RECEIVED, "", text), POLICY)
    explained = " | ".join(decision.reasons)
    assert (decision.category, decision.urgency) == (category, urgency), explained
    if secondary is not None:
        assert decision.secondary_category == secondary, explained
    assert any(reason.startswith("model: ") for reason in decision.reasons)
