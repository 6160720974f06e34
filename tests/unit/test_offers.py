from __future__ import annotations

from decimal import Decimal

import pytest

from services.compensation.offers import OfferFacts, propose
from services.policy import load_policy

POLICY = load_policy()


def test_defect_with_order_value_offers_refund_replacement_and_coupon() -> None:
    decision = propose(
        OfferFacts("CS1", "product_defect", "normal", order_value=Decimal("890")), POLICY
    )
    assert [(o.kind, o.value) for o in decision.options] == [
        ("refund", Decimal("890")),
        ("replacement", None),
        ("coupon", Decimal("100")),
    ]
    assert not decision.needs_approval


def test_vip_gets_one_coupon_tier_more() -> None:
    plain = propose(OfferFacts("CS1", "delivery", "high"), POLICY)
    vip = propose(OfferFacts("CS1", "delivery", "high", customer_tier="vip"), POLICY)
    coupon = {o.kind: o.value for o in plain.options}["coupon"]
    vip_coupon = {o.kind: o.value for o in vip.options}["coupon"]
    assert (coupon, vip_coupon) == (Decimal("200"), Decimal("300"))


def test_legal_cases_get_no_money() -> None:
    decision = propose(OfferFacts("CS1", "legal", "urgent"), POLICY)
    assert {o.kind for o in decision.options} == {"apology_only", "tier_upgrade"}


def test_customer_cap_trims_goodwill() -> None:
    decision = propose(
        OfferFacts("CS1", "delivery", "high", customer_goodwill_used=Decimal("1950")), POLICY
    )
    assert {o.kind: o.value for o in decision.options}["coupon"] == Decimal("50")


def test_exhausted_budget_asks_a_supervisor() -> None:
    decision = propose(
        OfferFacts("CS1", "delivery", "normal", category_budget_left=Decimal("20")), POLICY
    )
    assert decision.approver_role == "supervisor"


@pytest.mark.parametrize("urgency", ["normal", "high", "urgent"])
def test_always_two_or_three_options_and_deterministic(urgency: str) -> None:
    facts = OfferFacts("CS9", "other", urgency)
    first, second = propose(facts, POLICY), propose(facts, POLICY)
    assert 2 <= len(first.options) <= 3
    assert first == second
