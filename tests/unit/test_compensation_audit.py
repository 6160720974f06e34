"""The audit CLI's text, from stored offers (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from services.compensation.audit import case_lines, month_lines
from services.compensation.events import offer_document
from services.compensation.offers import OfferFacts, propose
from services.policy import load_policy

POLICY = load_policy()
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_a_case_history_shows_inputs_steps_who_and_charges() -> None:
    facts = OfferFacts(case_number="CS1", category="delivery", urgency="urgent", offer_id="CS1-O1",
                       customer_id="C-1", language="en")  # fmt: skip
    charged = {"budget": "delivery:2026-11", "customer_id": "C-1", "amount": "300"}
    offer = offer_document("CS1-O1", propose(facts, POLICY), facts, T0, POLICY, charged)
    offer["status"] = "accepted"
    offer["history"].append({"what": "accepted", "at": T0, "by": "agent-7", "option": "CS1-O1-2",
                             "charged": charged})  # fmt: skip
    lines = case_lines(
        {"_id": "CS1", "facts": {"category": "delivery"}, "offers": {"CS1-O1": offer}}
    )
    text = "\n".join(lines)
    assert f"policy {POLICY.version}" in text and "status accepted" in text
    assert "urgency=urgent" in text and "customer_goodwill_used=0" in text
    assert "created   by system" in text and "accepted  by agent-7" in text
    assert "300 against budget delivery:2026-11 and customer cap" in text
    assert "option CS1-O1-2: coupon value 300 goodwill 300" in text


def test_a_month_shows_budget_reserved_given_and_left_per_category() -> None:
    lines = month_lines(
        "2026-11",
        {"delivery": Decimal(20000), "legal": Decimal(30000)},
        {"delivery": Decimal(700)},
        [{"category": "delivery", "cents": 300_00}, {"category": "billing", "cents": 100_00}],
    )
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows["delivery"] == ["20,000", "700", "300", "19,300"]
    assert rows["legal"] == ["30,000", "0", "0", "30,000"]
    assert rows["billing"] == ["-", "0", "100", "-"]
