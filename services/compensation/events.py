"""Offers as documents and as `cases.compensation` events. Pure."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.common import Money
from schemas.events import (
    ApprovalRequested,
    CompensationAccepted,
    CompensationExpired,
    CompensationProposed,
    CompensationRejected,
    OfferOption,
)
from schemas.topics import CASES_COMPENSATION
from services.compensation.offers import OfferDecision, OfferFacts
from services.policy import Policy
from services.runtime.kafka import OutboundMessage, event_message, notification_message

SOURCE = "/complaints/compensation"


def offer_inputs(facts: OfferFacts) -> dict[str, Any]:
    """The facts an offer was computed from, kept with it for the audit trail."""
    return {
        key: str(value) if isinstance(value, Decimal) else value
        for key, value in dataclasses.asdict(facts).items()
    }


def offer_document(
    offer_id: str,
    decision: OfferDecision,
    facts: OfferFacts,
    now: datetime,
    policy: Policy,
    charged: dict[str, Any] | None,
    created_by: str = "system",
    **extra: Any,
) -> dict[str, Any]:
    currency = facts.currency
    return {
        "offer_id": offer_id,
        "status": "pending_approval" if decision.needs_approval else "proposed",
        "options": [
            {
                "option_id": option.option_id,
                "kind": option.kind,
                "value": str(option.value) if option.value is not None else None,
                "goodwill": str(option.goodwill),
                "description": option.description,
            }
            for option in decision.options
        ],
        "currency": currency,
        "requested_goodwill": str(decision.requested_goodwill),
        "approver_role": decision.approver_role,
        "reasons": decision.reasons,
        "policy_version": policy.version,
        "created_at": now,
        "expires_at": None
        if decision.needs_approval
        else now + timedelta(hours=policy.compensation.offer_expires_hours),
        "inputs": offer_inputs(facts),
        "charged": charged,
        "history": [{"what": "created", "at": now, "by": created_by, "charged": charged, **extra}],
    }


def _money(value: str | None, currency: str) -> Money | None:
    return Money(amount=Decimal(value), currency=currency) if value is not None else None


def _option(option: dict[str, Any], currency: str) -> OfferOption:
    return OfferOption(
        option_id=option["option_id"],
        kind=option["kind"],
        value=_money(option["value"], currency),
        description=option["description"],
    )


def _offer_event(
    step: str, case_number: str, offer: dict[str, Any], data: Any, now: datetime
) -> OutboundMessage:
    """``complaint.compensation.<step>`` for one offer; its id stands for (offer, step)."""
    return event_message(CASES_COMPENSATION, f"complaint.compensation.{step}", SOURCE,
                         case_number, data, now, (offer["offer_id"], step))  # fmt: skip


def _customer_message(
    kind: str, case_number: str, offer: dict[str, Any], facts: dict[str, Any], body: str,
    language: str, now: datetime,
) -> OutboundMessage:  # fmt: skip
    return notification_message(
        SOURCE, case_number, facts.get("channel"), facts.get("customer_id"),
        f"compensation_{kind}.{language}", language, body, now,
        (offer["offer_id"], f"{kind}_notification"),
    )  # fmt: skip


def proposed_messages(
    case_number: str, offer: dict[str, Any], facts: dict[str, Any], now: datetime
) -> list[OutboundMessage]:
    data = CompensationProposed(
        case_number=case_number,
        offer_id=offer["offer_id"],
        options=[_option(option, offer["currency"]) for option in offer["options"]],
        expires_at=offer["expires_at"],
        policy_version=offer["policy_version"],
    )
    language = facts.get("language") or "zh-Hant"
    body = offer_text(case_number, offer, language)
    return [
        _offer_event("proposed", case_number, offer, data, now),
        _customer_message("offer", case_number, offer, facts, body, language, now),
    ]


_OFFER_TEXT = {
    "zh-Hant": "關於案件 {case}，再次向您致歉。請從以下方案中選擇一項：{options}。此方案於 {expires} 前有效。",
    "zh-Hans": "关于案件 {case}，再次向您致歉。请从以下方案中选择一项：{options}。此方案于 {expires} 前有效。",
    "en": "We are sorry again about case {case}. Please choose one of these options: {options}. "
    "This offer is open until {expires}.",
}


def offer_text(case_number: str, offer: dict[str, Any], language: str) -> str:
    template = _OFFER_TEXT.get(language, _OFFER_TEXT["en"])
    separator = "; " if language == "en" else "；"
    options = separator.join(
        f"({index + 1}) {option['description']}" for index, option in enumerate(offer["options"])
    )
    expires: datetime = offer["expires_at"]
    return template.format(case=case_number, options=options, expires=f"{expires:%Y-%m-%d %H:%M}")


def approval_message(
    case_number: str, offer: dict[str, Any], now: datetime, reminder: int | None = None,
    escalated_from: str | None = None,
) -> OutboundMessage:  # fmt: skip
    """The request to the approver role the offer names; again with ``reminder`` n, or for
    the role above with ``escalated_from``. Each has its own stable id."""
    data = ApprovalRequested(
        case_number=case_number,
        offer_id=offer["offer_id"],
        requested=Money(amount=Decimal(offer["requested_goodwill"]), currency=offer["currency"]),
        approver_role=offer["approver_role"],
        reasons=offer["reasons"],
        policy_version=offer["policy_version"],
        reminder=reminder,
        escalated_from=escalated_from,
    )
    if reminder is None and escalated_from is None:
        return _offer_event("approval_requested", case_number, offer, data, now)
    fact = ((offer["offer_id"], "approval_requested", "reminder", str(reminder))
            if reminder is not None
            else (offer["offer_id"], "approval_requested", "escalated", offer["approver_role"]))  # fmt: skip
    return event_message(CASES_COMPENSATION, "complaint.compensation.approval_requested", SOURCE,
                         case_number, data, now, fact)  # fmt: skip


def accepted_message(
    case_number: str, offer: dict[str, Any], option: dict[str, Any], now: datetime
) -> OutboundMessage:
    data = CompensationAccepted(
        case_number=case_number,
        offer_id=offer["offer_id"],
        option_id=option["option_id"],
        kind=option["kind"],
        value=_money(option["value"], offer["currency"]),
        description=option["description"],
    )
    return _offer_event("accepted", case_number, offer, data, now)


_ACCEPTED_TEXT = {
    "zh-Hant": "謝謝您，案件 {case} 的補償方案已為您確認：{choice}。接下來{next}，預計於 {when} 前完成。"
    "如有任何問題，歡迎隨時與我們聯繫。",
    "zh-Hans": "谢谢您，案件 {case} 的补偿方案已为您确认：{choice}。接下来{next}，预计于 {when} 前完成。"
    "如有任何问题，欢迎随时与我们联系。",
    "en": "Thank you: for case {case} we have confirmed your choice: {choice}. Next, {next}, "
    "by {when}. If anything is unclear, please contact us at any time.",
}
_NEXT_STEP = {
    "refund": {"zh-Hant": "我們會將款項退回您原本的付款方式", "zh-Hans": "我们会将款项退回您原本的付款方式",
               "en": "we will return the money to your original payment method"},
    "replacement": {"zh-Hant": "我們會為您寄出新品", "zh-Hans": "我们会为您寄出新品",
                    "en": "we will ship the replacement to you"},
    "coupon": {"zh-Hant": "購物金會存入您的帳戶", "zh-Hans": "购物金会存入您的账户",
               "en": "the store credit will be added to your account"},
    "shipping_refund": {"zh-Hant": "我們會將運費退回您原本的付款方式", "zh-Hans": "我们会将运费退回您原本的付款方式",
                        "en": "we will return the shipping fee to your original payment method"},
    "tier_upgrade": {"zh-Hant": "您的會員等級會升級一級", "zh-Hans": "您的会员等级会升级一级",
                     "en": "your membership will be upgraded by one level"},
    "apology_only": {"zh-Hant": "我們會寄給您正式的致歉信並說明改善措施", "zh-Hans": "我们会寄给您正式的致歉信并说明改进措施",
                     "en": "we will send you a formal apology and what we are changing"},
}  # fmt: skip


def acceptance_text(case_number: str, option: dict[str, Any], language: str, when: datetime) -> str:
    """What the customer chose, what happens next and by when, in their language."""
    chosen = language if language in _ACCEPTED_TEXT else "en"
    return _ACCEPTED_TEXT[chosen].format(
        case=case_number, choice=option["description"],
        next=_NEXT_STEP[option["kind"]][chosen], when=f"{when:%Y-%m-%d}",
    )  # fmt: skip


def acceptance_messages(
    case_number: str, offer: dict[str, Any], option: dict[str, Any], facts: dict[str, Any],
    now: datetime, policy: Policy,
) -> list[OutboundMessage]:  # fmt: skip
    """The acceptance, and the customer's confirmation on the channel they wrote on."""
    language = facts.get("language") or "zh-Hant"
    chosen = language if language in _ACCEPTED_TEXT else "en"
    days = policy.compensation.fulfilment_days[option["kind"]]
    when = (now + timedelta(days=days)).astimezone(policy.zone)
    body = acceptance_text(case_number, option, chosen, when)
    return [
        accepted_message(case_number, offer, option, now),
        _customer_message("accepted", case_number, offer, facts, body, chosen, now),
    ]


def rejected_message(
    case_number: str, offer: dict[str, Any], approver: str, note: str | None,
    alternative_offer_id: str, now: datetime,
) -> OutboundMessage:  # fmt: skip
    data = CompensationRejected(
        case_number=case_number,
        offer_id=offer["offer_id"],
        approver=approver,
        note=note,
        alternative_offer_id=alternative_offer_id,
    )
    return _offer_event("rejected", case_number, offer, data, now)


_EXPIRED_TEXT = {
    "zh-Hant": "案件 {case} 的補償方案已超過選擇期限。{fallback}如仍需協助，歡迎隨時與我們聯繫。",
    "zh-Hans": "案件 {case} 的补偿方案已超过选择期限。{fallback}如仍需协助，欢迎随时与我们联系。",
    "en": "The time to choose an option for case {case} has passed. {fallback}"
    "If there is anything more we can do, please contact us at any time.",
}
_APPROVAL_EXPIRED_TEXT = {
    "zh-Hant": "關於案件 {case}，很抱歉讓您久等了。您的補償審核未能在時限內完成。{fallback}"
    "如仍需協助，歡迎隨時與我們聯繫，謝謝您的耐心。",
    "zh-Hans": "关于案件 {case}，很抱歉让您久等了。您的补偿审核未能在时限内完成。{fallback}"
    "如仍需协助，欢迎随时与我们联系，谢谢您的耐心。",
    "en": "About case {case}: we are sorry to have kept you waiting. The review of your "
    "compensation was not completed in time. {fallback}If there is anything more we can do, "
    "please contact us at any time. Thank you for your patience.",
}
_FALLBACK_TEXT = {
    "zh-Hant": "我們已為您安排：{option}。",
    "zh-Hans": "我们已为您安排：{option}。",
    "en": "We have arranged this for you: {option}. ",
}


def expired_messages(
    case_number: str, offer: dict[str, Any], fallback: dict[str, Any] | None,
    facts: dict[str, Any], now: datetime, pending_approval: bool = False,
) -> list[OutboundMessage]:  # fmt: skip
    """The offer's end, and the customer's notice: the time to choose has passed, or (for
    an approval nobody decided) the review did not finish; either way what they get."""
    data = CompensationExpired(
        case_number=case_number,
        offer_id=offer["offer_id"],
        expired_at=now,
        fallback=None if fallback is None else _option(fallback, offer["currency"]),
        policy_version=offer["policy_version"],
    )
    language = facts.get("language") or "zh-Hant"
    given = ""
    if fallback is not None:  # its description is already in the customer's language
        given = _FALLBACK_TEXT.get(language, _FALLBACK_TEXT["en"]).format(
            option=fallback["description"]
        )
    texts, kind = (_APPROVAL_EXPIRED_TEXT, "approval_expired") if pending_approval else (
        _EXPIRED_TEXT, "expired")  # fmt: skip
    body = texts.get(language, texts["en"]).format(case=case_number, fallback=given)
    return [
        _offer_event("expired", case_number, offer, data, now),
        _customer_message(kind, case_number, offer, facts, body, language, now),
    ]
