"""What happens to an offer after it is made: rejection, expiry, approvals nobody
decides, a reopened case. Pure.

Offers are stored as documents; these functions read and return their option dicts
(`option_id`, `kind`, `value`, `goodwill`, `description`, money as decimal strings).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from services.compensation.offers import ZERO, describe
from services.policy import Policy
from services.policy.model import ApprovalTimers

OptionDoc = dict[str, Any]
# Statuses in which an offer is still waiting for someone: at most one per case.
LIVE = ("proposed", "pending_approval")
# Kinds that carry no money: what a capped offer falls back to.
NON_MONETARY = ("apology_only", "tier_upgrade")


def goodwill_of(option: OptionDoc | None) -> Decimal:
    return Decimal(option["goodwill"]) if option else ZERO


def capped_options(
    options: list[OptionDoc], ceiling: Decimal, currency: str, language: str, offer_id: str
) -> list[OptionDoc]:
    """The same options with goodwill cut to ``ceiling``; still 2–3 distinct kinds.

    Used when an approver rejects an offer above the system's authority: the customer
    still gets a choice, inside what the system may give on its own and what the cap
    and the budget have left.
    """
    capped: list[OptionDoc] = []
    for option in options:
        goodwill = goodwill_of(option)
        if goodwill <= ceiling:
            capped.append(dict(option))
        elif ceiling > ZERO:
            capped.append({
                **option,
                "value": str(ceiling),
                "goodwill": str(ceiling),
                "description": describe(option["kind"], ceiling, currency, language),
            })  # fmt: skip
    kinds = {option["kind"] for option in capped}
    for kind in NON_MONETARY:
        if len(capped) >= 2:
            break
        if kind not in kinds:
            capped.append({"kind": kind, "value": None, "goodwill": "0",
                           "description": describe(kind, None, currency, language)})  # fmt: skip
    return [
        {**option, "option_id": f"{offer_id}-{index + 1}"}
        for index, option in enumerate(capped[:3])
    ]


def fallback_option(offer: dict[str, Any], policy: Policy, language: str) -> OptionDoc | None:
    """What an expired offer leaves the customer with, by policy."""
    rule = policy.compensation.expiry_fallback
    if rule == "none":
        return None
    if rule == "coupon":
        coupon = next((o for o in offer["options"] if o["kind"] == "coupon"), None)
        if coupon is not None:
            return dict(coupon)
    apology = next((o for o in offer["options"] if o["kind"] == "apology_only"), None)
    return dict(apology) if apology else {
        "option_id": f"{offer['offer_id']}-fallback",
        "kind": "apology_only",
        "value": None,
        "goodwill": "0",
        "description": describe("apology_only", None, offer["currency"], language),
    }  # fmt: skip


def capped_fallback(
    fallback: OptionDoc, ceiling: Decimal, offer: dict[str, Any], language: str
) -> OptionDoc:
    """``fallback`` with its goodwill cut to ``ceiling`` (an apology when nothing is left).

    An approval that expired was never approved: what it leaves the customer with stays
    inside what the system may give on its own and what cap and budget have left."""
    if goodwill_of(fallback) <= ceiling:
        return dict(fallback)
    currency = offer["currency"]
    if ceiling > ZERO:
        return {**fallback, "option_id": f"{offer['offer_id']}-fallback", "value": str(ceiling),
                "goodwill": str(ceiling),
                "description": describe(fallback["kind"], ceiling, currency, language)}  # fmt: skip
    return {"option_id": f"{offer['offer_id']}-fallback", "kind": "apology_only", "value": None,
            "goodwill": "0", "description": describe("apology_only", None, currency, language)}  # fmt: skip


@dataclass(frozen=True)
class ApprovalStep:
    """What happens next to a pending approval, and when."""

    kind: Literal["remind", "escalate", "expire"]
    due_at: datetime
    role: str  # the role holding the approval now
    to_role: str | None = None  # for an escalation: the role it moves to


def next_role(role: str, rules: ApprovalTimers) -> str | None:
    """The role above ``role``, None at the top (or for a role the policy does not list)."""
    roles = rules.approver_roles
    if role not in roles or role == roles[-1]:
        return None
    return roles[roles.index(role) + 1]


def next_approval_step(offer: dict[str, Any], rules: ApprovalTimers) -> ApprovalStep:
    """The pending approval's next step: a reminder to the role holding it, then a move one
    role up, or, at the top, the expiry. Each role's clock starts when the approval
    reached it (``role_since``; the offer's creation for the first role)."""
    role = offer["approver_role"]
    since: datetime = offer.get("role_since") or offer["created_at"]
    if offer.get("reminded_role") != role:
        return ApprovalStep("remind", since + timedelta(hours=rules.remind_after_hours), role)
    up = next_role(role, rules)
    if up is None:
        return ApprovalStep(
            "expire", since + timedelta(hours=rules.expire_at_top_after_hours), role
        )
    return ApprovalStep("escalate", since + timedelta(hours=rules.escalate_after_hours), role, up)


@dataclass(frozen=True)
class Given:
    """What a case received from its earlier offers."""

    goodwill: Decimal = ZERO
    refunded: Decimal = ZERO


def given_so_far(offers: dict[str, dict[str, Any]]) -> Given:
    goodwill = refunded = ZERO
    for offer in offers.values():
        option = offer.get("accepted_option") or offer.get("fallback")
        if not option:
            continue
        goodwill += goodwill_of(option)
        if option["kind"] == "refund" and option.get("value") is not None:
            refunded += Decimal(option["value"])
    return Given(goodwill=goodwill, refunded=refunded)


def live_offer(offers: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    return next((offer for offer in offers.values() if offer["status"] in LIVE), None)


def next_offer_id(case_number: str, offers: dict[str, Any]) -> str:
    return f"{case_number}-O{len(offers) + 1}"


def settled_amount(offer: dict[str, Any]) -> Decimal:
    """The goodwill an offer finally holds against the limits, from its state."""
    status = offer["status"]
    if status == "accepted":
        return goodwill_of(offer.get("accepted_option"))
    if status == "expired":
        return goodwill_of(offer.get("fallback"))
    if status == "proposed":
        return Decimal(offer["requested_goodwill"])
    return ZERO  # rejected, or waiting for an approver: nothing given
