"""The offer engine: 2–3 options proportional to the harm, inside authority limits. Pure.

Goodwill is value beyond the customer's own money: coupons and tier upgrades are
goodwill; refunds and shipping refunds return what the customer paid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from services.policy import Policy

ZERO = Decimal("0")


@dataclass(frozen=True)
class OfferFacts:
    case_number: str
    category: str
    urgency: str
    escalated: bool = False
    customer_tier: str | None = None
    customer_id: str | None = None
    offer_id: str = ""
    order_value: Decimal | None = None
    currency: str = "TWD"
    language: str = "zh-Hant"
    # Goodwill this customer received in the rolling window, and this category's budget left.
    customer_goodwill_used: Decimal = ZERO
    category_budget_left: Decimal | None = None
    # A reopened case: how often, and what it already got (goodwill, money returned), so
    # that the new offer tops up rather than repeats.
    reopen_count: int = 0
    already_given: Decimal = ZERO
    already_refunded: Decimal = ZERO


@dataclass(frozen=True)
class Option:
    option_id: str
    kind: str
    value: Decimal | None
    goodwill: Decimal
    description: str


@dataclass(frozen=True)
class OfferDecision:
    options: list[Option]
    requested_goodwill: Decimal
    approver_role: str | None
    reasons: list[str]
    policy_version: str
    cap_left: Decimal = ZERO
    notes: list[str] = field(default_factory=list)

    @property
    def needs_approval(self) -> bool:
        return self.approver_role is not None


_DESCRIPTIONS = {
    "refund": {"zh-Hant": "退還訂單金額 {value}", "zh-Hans": "退还订单金额 {value}", "en": "Refund of {value}"},
    "replacement": {"zh-Hant": "免費為您重新寄送新品", "zh-Hans": "免费为您重新寄送新品", "en": "A free replacement, shipped to you"},
    "coupon": {"zh-Hant": "購物金 {value}", "zh-Hans": "购物金 {value}", "en": "Store credit of {value}"},
    "shipping_refund": {"zh-Hant": "退還運費 {value}", "zh-Hans": "退还运费 {value}", "en": "Shipping fee refund of {value}"},
    "tier_upgrade": {"zh-Hant": "會員等級升級一級", "zh-Hans": "会员等级升级一级", "en": "A one-level membership upgrade"},
    "apology_only": {"zh-Hant": "正式致歉並說明改善措施", "zh-Hans": "正式致歉并说明改进措施", "en": "A formal apology and what we are changing"},
}  # fmt: skip


def describe(kind: str, value: Decimal | None, currency: str, language: str) -> str:
    texts = _DESCRIPTIONS[kind]
    text = texts.get(language, texts["en"])
    return text.format(value=f"{currency} {value:,.0f}" if value is not None else "")


def coupon_value(facts: OfferFacts, policy: Policy) -> tuple[Decimal, list[str]]:
    rules = policy.compensation
    tier = rules.urgency_coupon_tier[facts.urgency]  # type: ignore[index]
    reasons = [f"{facts.urgency} urgency: coupon tier {tier + 1}"]
    if (facts.customer_tier or "").lower() in {
        t.lower() for t in policy.triage.escalation.vip_tiers
    }:
        tier += rules.vip_extra_tiers
        reasons.append(f"VIP customer: {rules.vip_extra_tiers} tier(s) more")
    if facts.reopen_count and rules.reopen_extra_tiers:
        tier += rules.reopen_extra_tiers * facts.reopen_count
        reasons.append(
            f"reopened {facts.reopen_count} time(s): "
            f"{rules.reopen_extra_tiers * facts.reopen_count} tier(s) more"
        )
    tier = min(tier, len(rules.coupon_tiers) - 1)
    return rules.coupon_tiers[tier], reasons


def approver_for(goodwill: Decimal, policy: Policy) -> str | None:
    rules = policy.compensation
    if goodwill <= rules.system_authority_limit:
        return None
    if goodwill <= rules.supervisor_authority_limit:
        return "supervisor"
    return "manager"


Kinds = list[tuple[str, Decimal | None, Decimal]]  # (kind, value, goodwill)


def _monetary(facts: OfferFacts, policy: Policy, cap_left: Decimal, reasons: list[str]) -> Kinds:
    rules = policy.compensation
    currency = facts.currency
    kinds: Kinds = []
    coupon, coupon_reasons = coupon_value(facts, policy)
    reasons.extend(coupon_reasons)
    refundable = None if facts.order_value is None else facts.order_value - facts.already_refunded
    if refundable is not None and refundable > ZERO and facts.category in rules.refund_categories:
        kinds.append(("refund", refundable, ZERO))
        reasons.append(f"refund capped at the order value {currency} {facts.order_value:,.2f}")
        if facts.already_refunded:
            reasons.append(f"{currency} {facts.already_refunded:,.2f} already refunded")
    if facts.category in rules.replacement_categories:
        kinds.append(("replacement", None, ZERO))
    if facts.category in rules.shipping_refund_categories:
        kinds.append(("shipping_refund", rules.default_shipping_fee, ZERO))
    if facts.already_given:
        topped_up = max(ZERO, coupon - facts.already_given)
        reasons.append(
            f"coupon {coupon:,.0f} less {facts.already_given:,.0f} already given: {topped_up:,.0f}"
        )
        coupon = topped_up
    if coupon > cap_left:
        reasons.append(
            f"coupon reduced from {coupon:,.0f} to {cap_left:,.0f}: customer goodwill cap "
            f"{rules.customer_goodwill_cap:,.0f} per {rules.customer_cap_window_days} days"
        )
        coupon = cap_left
    if coupon > ZERO:
        kinds.append(("coupon", coupon, coupon))
    for filler in ("apology_only", "tier_upgrade"):
        if len(kinds) < 2:
            kinds.append((filler, None, ZERO))
    return kinds


def propose(facts: OfferFacts, policy: Policy) -> OfferDecision:
    rules = policy.compensation
    currency = facts.currency
    reasons: list[str] = []
    cap_left = max(ZERO, rules.customer_goodwill_cap - facts.customer_goodwill_used)
    if facts.category in rules.no_money_categories:
        reasons.append(f"{facts.category}: no monetary offer, apology and a non-monetary option")
        kinds: Kinds = [("apology_only", None, ZERO), ("tier_upgrade", None, ZERO)]
    else:
        kinds = _monetary(facts, policy, cap_left, reasons)
    kinds = kinds[:3]

    options = [
        Option(
            option_id=f"{facts.offer_id or facts.case_number}-{index + 1}",
            kind=kind,
            value=value,
            goodwill=goodwill,
            description=describe(kind, value, currency, facts.language),
        )
        for index, (kind, value, goodwill) in enumerate(kinds)
    ]
    requested = max((option.goodwill for option in options), default=ZERO)
    approver = approver_for(requested, policy)
    if approver:
        reasons.append(
            f"goodwill {currency} {requested:,.0f} is above the system's authority "
            f"({rules.system_authority_limit:,.0f}): {approver} approval needed"
        )
    budget = facts.category_budget_left
    if approver is None and budget is not None and requested > budget:
        approver = "supervisor"
        reasons.append(
            f"{facts.category} monthly goodwill budget has {budget:,.0f} left, "
            f"less than {requested:,.0f}: supervisor approval needed"
        )
    return OfferDecision(
        options=options,
        requested_goodwill=requested,
        approver_role=approver,
        reasons=reasons,
        policy_version=policy.version,
        cap_left=cap_left,
    )
