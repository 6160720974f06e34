"""Rejection, expiry and reopening, as pure functions over stored offers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.compensation.events import approval_message, expired_messages, offer_document
from services.compensation.lifecycle import (
    ApprovalStep,
    capped_fallback,
    capped_options,
    fallback_option,
    given_so_far,
    live_offer,
    next_approval_step,
    next_offer_id,
    next_role,
    settled_amount,
)
from services.compensation.offers import OfferFacts, propose
from services.policy import load_policy

POLICY = load_policy()
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def offer(category: str = "delivery", urgency: str = "urgent", **facts: object) -> dict:
    case = OfferFacts(case_number="CS1", category=category, urgency=urgency, offer_id="CS1-O1",
                      language="en", **facts)  # type: ignore[arg-type]  # fmt: skip
    return offer_document("CS1-O1", propose(case, POLICY), case, T0, POLICY, None)


def with_rule(rule: str):  # type: ignore[no-untyped-def]
    compensation = POLICY.compensation.model_copy(update={"expiry_fallback": rule})
    return POLICY.model_copy(update={"compensation": compensation})


def test_the_coupon_rule_grants_the_coupon_on_expiry() -> None:
    delivery = offer()
    fallback = fallback_option(delivery, POLICY, "en")
    assert fallback is not None and fallback["kind"] == "coupon" and fallback["value"] == "300"


def test_no_coupon_means_an_apology_and_none_means_nothing() -> None:
    legal = offer(category="legal")
    assert (fallback_option(legal, POLICY, "en") or {})["kind"] == "apology_only"
    assert (fallback_option(offer(), with_rule("apology_only"), "en") or {})["kind"] == (
        "apology_only"
    )
    assert fallback_option(offer(), with_rule("none"), "en") is None


@pytest.mark.parametrize(
    ("status", "extra", "expected"),
    [
        ("proposed", {}, Decimal(300)),
        ("accepted", {"accepted_option": {"kind": "coupon", "goodwill": "300"}}, Decimal(300)),
        ("accepted", {"accepted_option": {"kind": "shipping_refund", "goodwill": "0"}}, 0),
        ("expired", {"fallback": {"kind": "coupon", "goodwill": "300"}}, Decimal(300)),
        ("expired", {"fallback": None}, 0),
        ("rejected", {}, 0),
        ("pending_approval", {}, 0),
    ],
)
def test_what_an_offer_finally_holds(status: str, extra: dict, expected: Decimal) -> None:
    assert settled_amount({**offer(), "status": status, **extra}) == expected


def test_a_capped_alternative_keeps_a_choice() -> None:
    options = offer()["options"]
    assert [o["kind"] for o in capped_options(options, Decimal(0), "TWD", "en", "CS1-O2")] == [
        "shipping_refund", "apology_only",
    ]  # fmt: skip
    cut = capped_options(options, Decimal(150), "TWD", "en", "CS1-O2")
    assert [(o["kind"], o["goodwill"]) for o in cut] == [
        ("shipping_refund", "0"),
        ("coupon", "150"),
    ]
    assert cut[1]["description"] == "Store credit of TWD 150"


def test_what_a_case_was_given_counts_accepted_and_fallback_options() -> None:
    offers = {
        "CS1-O1": {"status": "accepted", "accepted_option": {"kind": "refund", "value": "990",
                                                            "goodwill": "0"}},
        "CS1-O2": {"status": "expired", "fallback": {"kind": "coupon", "value": "200",
                                                    "goodwill": "200"}},
        "CS1-O3": {"status": "rejected"},
    }  # fmt: skip
    given = given_so_far(offers)
    assert (given.goodwill, given.refunded) == (Decimal(200), Decimal(990))
    assert live_offer(offers) is None and next_offer_id("CS1", offers) == "CS1-O4"


def test_a_reopened_case_tops_up_and_does_not_refund_twice() -> None:
    first = offer(category="product_defect", urgency="normal", order_value=Decimal(990))
    again = offer(category="product_defect", urgency="high", order_value=Decimal(990),
                  reopen_count=1, already_given=Decimal(100), already_refunded=Decimal(990))  # fmt: skip
    assert [o["kind"] for o in first["options"]] == ["refund", "replacement", "coupon"]
    kinds = {o["kind"]: o for o in again["options"]}
    assert "refund" not in kinds
    # high is tier 2 (200); reopened once: one tier more (300); less the 100 given.
    assert kinds["coupon"]["value"] == "200"


def test_the_expiry_message_says_what_the_customer_still_gets() -> None:
    delivery = {**offer(), "expires_at": T0}
    fallback = fallback_option(delivery, POLICY, "en")
    event, notification = expired_messages("CS1", delivery, fallback, {"language": "en"}, T0)
    assert event["type"] == "complaint.compensation.expired"
    assert "Store credit of TWD 300" in notification["value"]


def test_an_expired_approval_tells_the_customer_the_review_did_not_finish() -> None:
    pending = {**offer(), "expires_at": None}
    fallback = capped_fallback(fallback_option(pending, POLICY, "en") or {}, Decimal(200),
                               pending, "en")  # fmt: skip
    event, notification = expired_messages("CS1", pending, fallback, {"language": "en"}, T0,
                                           pending_approval=True)  # fmt: skip
    assert json.loads(event["value"])["data"]["fallback"]["value"]["amount"] == "200.00"
    data = json.loads(notification["value"])["data"]
    assert data["template"] == "compensation_approval_expired.en"
    assert "not completed in time" in data["body"] and "Store credit of TWD 200" in data["body"]


H = timedelta(hours=1)
RULES = POLICY.compensation.approval


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        # A supervisor's approval: reminded at 4 h, moved up at 12 h.
        ({"approver_role": "supervisor"}, ApprovalStep("remind", T0 + 4 * H, "supervisor")),
        ({"approver_role": "supervisor", "reminded_role": "supervisor"},
         ApprovalStep("escalate", T0 + 12 * H, "supervisor", "manager")),
        # The manager's clock starts when it got the approval: reminded, then expired.
        ({"approver_role": "manager", "reminded_role": "supervisor", "role_since": T0 + 12 * H},
         ApprovalStep("remind", T0 + 16 * H, "manager")),
        ({"approver_role": "manager", "reminded_role": "manager", "role_since": T0 + 12 * H},
         ApprovalStep("expire", T0 + 36 * H, "manager")),
        # Asked of the manager from the start: 4 h, then 24 h.
        ({"approver_role": "manager"}, ApprovalStep("remind", T0 + 4 * H, "manager")),
        ({"approver_role": "manager", "reminded_role": "manager"},
         ApprovalStep("expire", T0 + 24 * H, "manager")),
        # A role the policy no longer lists is treated as the top.
        ({"approver_role": "director", "reminded_role": "director"},
         ApprovalStep("expire", T0 + 24 * H, "director")),
    ],
)  # fmt: skip
def test_a_pending_approval_is_chased_at_the_policys_hours(
    state: dict, expected: ApprovalStep
) -> None:
    assert next_approval_step({"created_at": T0, **state}, RULES) == expected


def test_roles_go_up_one_step_and_stop_at_the_top() -> None:
    assert next_role("supervisor", RULES) == "manager"
    assert next_role("manager", RULES) is None


def test_reminders_and_escalations_are_new_events_for_the_same_offer() -> None:
    pending = {**offer(), "approver_role": "supervisor", "requested_goodwill": "900"}
    first, reminder, again, escalated = (
        approval_message("CS1", pending, T0),
        approval_message("CS1", pending, T0, reminder=1),
        approval_message("CS1", pending, T0, reminder=1),
        approval_message("CS1", {**pending, "approver_role": "manager"}, T0,
                         escalated_from="supervisor"),
    )  # fmt: skip
    assert len({first["id"], reminder["id"], escalated["id"]}) == 3
    assert again["id"] == reminder["id"]  # stable: a repeated step is the same event
    data = json.loads(escalated["value"])["data"]
    assert (data["offer_id"], data["approver_role"], data["escalated_from"]) == (
        "CS1-O1", "manager", "supervisor")  # fmt: skip
    assert json.loads(reminder["value"])["data"]["reminder"] == 1


@pytest.mark.parametrize(
    ("ceiling", "kind", "value"),
    [(Decimal(500), "coupon", "300"), (Decimal(200), "coupon", "200"), (Decimal(0), "apology_only", None)],
)  # fmt: skip
def test_an_expired_approval_gives_at_most_what_the_system_may(
    ceiling: Decimal, kind: str, value: str | None
) -> None:
    coupon = fallback_option(offer(), POLICY, "en")
    assert coupon is not None
    capped = capped_fallback(coupon, ceiling, offer(), "en")
    assert (capped["kind"], capped["value"]) == (kind, value)
    assert Decimal(capped["goodwill"]) <= ceiling
