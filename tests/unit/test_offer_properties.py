"""The offer engine's promises, for random cases under random policies."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.compensation.events import offer_document
from services.compensation.lifecycle import capped_options
from services.compensation.offers import OfferFacts, coupon_value, propose
from services.policy import Policy, load_policy

BASE = load_policy()
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CATEGORIES = [rule.name for rule in BASE.triage.categories] + ["other"]
money = st.decimals(min_value=0, max_value=100_000, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    system = draw(st.decimals(min_value=0, max_value=2_000, places=0))
    supervisor = system + draw(st.decimals(min_value=0, max_value=5_000, places=0))
    tiers = sorted(
        draw(st.lists(st.decimals(min_value=0, max_value=5_000, places=0), min_size=3, max_size=5))
    )
    compensation = BASE.compensation.model_copy(update={
        "system_authority_limit": system,
        "supervisor_authority_limit": supervisor,
        "customer_goodwill_cap": draw(st.decimals(min_value=0, max_value=10_000, places=0)),
        "coupon_tiers": tiers,
        "urgency_coupon_tier": {"normal": 0, "high": min(1, len(tiers) - 1), "urgent": min(2, len(tiers) - 1)},
        "vip_extra_tiers": draw(st.integers(0, 3)),
        "default_shipping_fee": draw(st.decimals(min_value=0, max_value=300, places=0)),
    })  # fmt: skip
    return BASE.model_copy(update={"compensation": compensation})


facts = st.builds(
    OfferFacts,
    case_number=st.just("CS20261123-0001"),
    category=st.sampled_from(CATEGORIES),
    urgency=st.sampled_from(["normal", "high", "urgent"]),
    escalated=st.booleans(),
    customer_tier=st.sampled_from([None, "standard", "vip", "gold"]),
    order_value=st.none() | money,
    currency=st.just("TWD"),
    language=st.sampled_from(["zh-Hant", "zh-Hans", "en"]),
    customer_goodwill_used=money,
    category_budget_left=st.none() | st.decimals(min_value=-500, max_value=50_000, places=2),
    reopen_count=st.integers(0, 3),
    already_given=st.decimals(min_value=0, max_value=3_000, places=0),
    already_refunded=st.decimals(min_value=0, max_value=100_000, places=2),
)


@settings(max_examples=1500, deadline=None)
@given(facts, policies())
def test_offers_stay_inside_policy(case: OfferFacts, policy: Policy) -> None:
    decision = propose(case, policy)
    rules = policy.compensation
    assert 2 <= len(decision.options) <= 3
    assert len({option.option_id for option in decision.options}) == len(decision.options)
    for option in decision.options:
        if option.kind == "refund":
            assert case.order_value is not None and option.value is not None
            assert option.value <= case.order_value - case.already_refunded
        assert option.goodwill >= 0
        # Never beyond what the customer has left under the rolling cap.
        assert option.goodwill <= max(
            Decimal(0), rules.customer_goodwill_cap - case.customer_goodwill_used
        )
    if decision.requested_goodwill > rules.system_authority_limit:
        assert decision.approver_role in {"supervisor", "manager"}
    if decision.requested_goodwill > rules.supervisor_authority_limit:
        assert decision.approver_role == "manager"
    budget = case.category_budget_left
    if budget is not None and decision.requested_goodwill > budget:
        assert decision.needs_approval
    if case.category in rules.no_money_categories:
        assert all(option.value is None for option in decision.options)
    assert propose(case, policy) == decision  # same inputs, same policy: same offer


@settings(max_examples=500, deadline=None)
@given(facts, policies(), st.decimals(min_value=0, max_value=3_000, places=0))
def test_a_capped_alternative_stays_under_its_ceiling(
    case: OfferFacts, policy: Policy, ceiling: Decimal
) -> None:
    offer = offer_document("X-O1", propose(case, policy), case, T0, policy, None)
    options = capped_options(offer["options"], ceiling, "TWD", case.language, "X-O2")
    assert 2 <= len(options) <= 3
    assert len({option["kind"] for option in options}) == len(options)
    assert all(Decimal(option["goodwill"]) <= ceiling for option in options)
    assert all(option["option_id"].startswith("X-O2-") for option in options)


@settings(max_examples=500, deadline=None)
@given(facts, policies())
def test_a_reopened_case_is_topped_up_never_paid_twice(case: OfferFacts, policy: Policy) -> None:
    """The new offer's coupon plus what the case already got never exceeds its tier."""
    reopened = dataclasses.replace(case, reopen_count=1)
    decision = propose(reopened, policy)
    tier, _ = coupon_value(reopened, policy)
    for option in decision.options:
        if option.kind == "coupon":
            assert option.goodwill + reopened.already_given <= tier
