"""Triage decisions as stored documents and as `complaint.case.triaged` events. Pure."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from schemas.common import Money, Urgency
from schemas.events import CaseTriaged, ReplyFlagged
from schemas.topics import CASES_TRIAGED
from services.runtime.kafka import OutboundMessage, event_message
from services.triage.replies import ReplyProblem
from services.triage.rules import CaseFacts, CustomerFacts, TriageDecision

SOURCE = "/complaints/triage"


def facts_from_opened(
    data: dict[str, Any],
    customer: dict[str, Any] | None,
    previous_cases: int,
) -> CaseFacts:
    lifetime = (customer or {}).get("lifetime_value") or {}
    return CaseFacts(
        case_number=data["case_number"],
        channel=data["channel"],
        received_at=datetime.fromisoformat(data["received_at"]),
        subject=data.get("subject") or "",
        text=data.get("text") or "",
        category_hint=data.get("category_hint"),
        customer=CustomerFacts(
            tier=customer.get("tier"),
            lifetime_value=Decimal(lifetime["amount"]) if lifetime.get("amount") else None,
        )
        if customer
        else None,
        previous_cases_in_window=previous_cases,
        visibility=data.get("visibility"),
        followers=data.get("followers"),
    )


def decision_document(decision: TriageDecision) -> dict[str, Any]:
    return {
        **decision.__dict__,
        "first_response_due": decision.first_response_due,
        "resolution_due": decision.resolution_due,
    }


def decision_from_document(document: dict[str, Any]) -> TriageDecision:
    return TriageDecision(**document)


def triaged_message(
    case: dict[str, Any], decision: TriageDecision, revision: int, now: datetime
) -> OutboundMessage:
    opened = case["opened"]
    order_value = opened.get("order_value")
    customer = case.get("customer") or {}
    data = CaseTriaged(
        case_number=opened["case_number"],
        category=decision.category,
        urgency=Urgency(decision.urgency),
        reasons=decision.reasons,
        first_response_due=decision.first_response_due,
        resolution_due=decision.resolution_due,
        escalated=decision.escalated,
        escalation_reasons=decision.escalation_reasons,
        policy_version=decision.policy_version,
        owner_role=decision.owner_role,
        progress_update_every_hours=decision.progress_update_every_hours,
        secondary_category=decision.secondary_category,
        model_version=decision.model_version,
        channel=opened["channel"],
        customer_id=opened.get("customer_id"),
        customer_tier=customer.get("tier"),
        language=opened.get("language"),
        order_value=Money.model_validate(order_value) if order_value else None,
        received_at=datetime.fromisoformat(opened["received_at"]),
        revision=revision,
        customer_lifetime_value=customer.get("lifetime_value"),
    )
    event = event_message(
        CASES_TRIAGED,
        "complaint.case.triaged",
        SOURCE,
        data.case_number,
        data,
        now,
        (data.case_number, str(revision)),
    )
    return event


def flagged_message(
    case_number: str, action_id: str, problems: list[ReplyProblem], first: bool, now: datetime
) -> OutboundMessage:
    """An agent's reply that breaks the house rules, for the team lead (advisory)."""
    data = ReplyFlagged(
        case_number=case_number,
        action_id=action_id,
        problems=[problem.text for problem in problems],
        problem_codes=[problem.code for problem in problems],
        first=first,
    )
    return event_message(CASES_TRIAGED, "complaint.reply.flagged", SOURCE, case_number, data,
                         now, (case_number, action_id, "reply_flagged"))  # fmt: skip
