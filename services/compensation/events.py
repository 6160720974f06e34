"""Offers as documents and as `cases.compensation` events. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.common import Money
from schemas.events import (
    ApprovalRequested,
    CompensationAccepted,
    CompensationProposed,
    OfferOption,
)
from schemas.topics import CASES_COMPENSATION
from services.compensation.offers import OfferDecision
from services.policy import Policy
from services.runtime.kafka import OutboundMessage, event_message, notification_message

SOURCE = "/complaints/compensation"


def offer_document(
    offer_id: str, decision: OfferDecision, currency: str, now: datetime, policy: Policy
) -> dict[str, Any]:
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
        "history": [{"what": "created", "at": now, "by": "system"}],
    }


def _money(value: str | None, currency: str) -> Money | None:
    return Money(amount=Decimal(value), currency=currency) if value is not None else None


def proposed_messages(
    case_number: str, offer: dict[str, Any], facts: dict[str, Any], now: datetime
) -> list[OutboundMessage]:
    currency = offer["currency"]
    data = CompensationProposed(
        case_number=case_number,
        offer_id=offer["offer_id"],
        options=[
            OfferOption(
                option_id=option["option_id"],
                kind=option["kind"],
                value=_money(option["value"], currency),
                description=option["description"],
            )
            for option in offer["options"]
        ],
        expires_at=offer["expires_at"],
        policy_version=offer["policy_version"],
    )
    proposed = event_message(
        CASES_COMPENSATION,
        "complaint.compensation.proposed",
        SOURCE,
        case_number,
        data,
        now,
        (offer["offer_id"], "proposed"),
    )
    language = facts.get("language") or "zh-Hant"
    notification = notification_message(
        SOURCE,
        case_number,
        facts.get("channel"),
        facts.get("customer_id"),
        f"compensation_offer.{language}",
        language,
        offer_text(case_number, offer, language),
        now,
        (offer["offer_id"], "offer_notification"),
    )
    return [
        proposed,
        notification,
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


def approval_message(case_number: str, offer: dict[str, Any], now: datetime) -> OutboundMessage:
    data = ApprovalRequested(
        case_number=case_number,
        offer_id=offer["offer_id"],
        requested=Money(amount=Decimal(offer["requested_goodwill"]), currency=offer["currency"]),
        approver_role=offer["approver_role"],
        reasons=offer["reasons"],
        policy_version=offer["policy_version"],
    )
    event = event_message(
        CASES_COMPENSATION,
        "complaint.compensation.approval_requested",
        SOURCE,
        case_number,
        data,
        now,
        (offer["offer_id"], "approval_requested"),
    )
    return event


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
    event = event_message(
        CASES_COMPENSATION,
        "complaint.compensation.accepted",
        SOURCE,
        case_number,
        data,
        now,
        (offer["offer_id"], "accepted"),
    )
    return event
