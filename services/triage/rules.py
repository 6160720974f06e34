"""Triage decisions: category, urgency, escalation and deadlines. Pure: policy + facts in.

Every rule that fires adds a reason an agent can read; nothing here does I/O or
reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from services.policy import Policy
from services.policy.calendar import add_working_hours, country_holidays
from services.triage.categorise import Categorisation, categorise

URGENCY_ORDER = ("normal", "high", "urgent")


def raise_one(urgency: str) -> str:
    return URGENCY_ORDER[min(URGENCY_ORDER.index(urgency) + 1, len(URGENCY_ORDER) - 1)]


def most_urgent(first: str, second: str) -> str:
    return max(first, second, key=URGENCY_ORDER.index)


@dataclass(frozen=True)
class CustomerFacts:
    tier: str | None = None
    lifetime_value: Decimal | None = None


@dataclass(frozen=True)
class CaseFacts:
    case_number: str
    channel: str
    received_at: datetime
    subject: str
    text: str
    category_hint: str | None = None
    customer: CustomerFacts | None = None
    previous_cases_in_window: int = 0
    visibility: str | None = None
    followers: int | None = None
    # Later messages on the case, in order; they can reveal more than the first one.
    later_messages: tuple[str, ...] = ()
    # A reopened case is never less urgent than this.
    minimum_urgency: str | None = None
    minimum_urgency_reason: str | None = None


@dataclass(frozen=True)
class TriageDecision:
    category: str
    urgency: str
    reasons: list[str]
    first_response_due: datetime
    resolution_due: datetime
    escalated: bool
    escalation_reasons: list[str]
    owner_role: str | None
    progress_update_every_hours: int | None
    policy_version: str
    base_urgency: str = "normal"
    matched_terms: list[str] = field(default_factory=list)
    secondary_category: str | None = None
    model_version: str | None = None
    # Each category's combined score (model probability and rule evidence), for audits.
    scores: dict[str, float] = field(default_factory=dict)


def _escalations(facts: CaseFacts, policy: Policy) -> list[str]:
    rules = policy.triage.escalation
    reasons: list[str] = []
    if facts.previous_cases_in_window >= rules.repeat_min_previous:
        reasons.append(
            f"repeat complaint: {facts.previous_cases_in_window} earlier case(s) from this "
            f"customer in the last {rules.repeat_window_days} days"
        )
    customer = facts.customer
    if customer is not None:
        if customer.tier and customer.tier.lower() in {t.lower() for t in rules.vip_tiers}:
            reasons.append(f"VIP customer (tier {customer.tier})")
        elif (
            customer.lifetime_value is not None
            and customer.lifetime_value >= rules.vip_lifetime_value
        ):
            reasons.append(
                f"high-value customer (lifetime value {customer.lifetime_value:,.0f} ≥ "
                f"{rules.vip_lifetime_value:,.0f})"
            )
    if (
        facts.channel == "social"
        and facts.visibility == "public"
        and (facts.followers or 0) >= rules.influencer_followers
    ):
        reasons.append(
            f"public post by an author with {facts.followers:,} followers "
            f"(≥ {rules.influencer_followers:,})"
        )
    return reasons


def _after(start: datetime, duration: timedelta, category: str, policy: Policy) -> datetime:
    rules = policy.triage
    if rules.category_clock.get(category, rules.deadline_clock) == "calendar":
        return start.astimezone(policy.zone) + duration
    hours = rules.business_hours
    return add_working_hours(
        start, duration, policy.zone, hours.opens, hours.closes,
        frozenset(hours.working_weekdays), country_holidays(hours.holiday_country),
    )  # fmt: skip


def deadlines(
    received_at: datetime, channel: str, urgency: str, policy: Policy, category: str = ""
) -> tuple[datetime, datetime, str]:
    """(first_response_due, resolution_due, why the first-response deadline is what it is)."""
    targets = policy.triage.urgency[urgency]  # type: ignore[index]
    urgency_hours = timedelta(hours=targets.respond_within_hours)
    channel_minutes = policy.triage.channel_first_response_minutes[channel]  # type: ignore[index]
    channel_target = timedelta(minutes=channel_minutes)
    if channel_target < urgency_hours:
        why = f"first response within {channel_minutes:g} min ({channel} channel target)"
        first = channel_target
    else:
        why = f"first response within {targets.respond_within_hours:g} h ({urgency} urgency)"
        first = urgency_hours
    if policy.triage.category_clock.get(category, policy.triage.deadline_clock) != "calendar":
        why += ", in business hours"
    resolve = timedelta(hours=targets.resolve_within_hours)
    return (
        _after(received_at, first, category, policy),
        _after(received_at, resolve, category, policy),
        why,
    )


def _categorise(facts: CaseFacts, policy: Policy) -> Categorisation:
    text = "\n".join(part for part in (facts.subject, facts.text, *facts.later_messages) if part)
    found = categorise(text, policy)
    hinted = policy.triage.category_hints.get(facts.category_hint or "")
    if found.nothing_specific and hinted:
        # The app form's category counts only when the text itself says nothing specific.
        return found.hinted(hinted, f"app form category '{facts.category_hint}'", policy)
    return found


def decide(facts: CaseFacts, policy: Policy) -> TriageDecision:
    found = _categorise(facts, policy)
    category, urgency, reasons = found.category, found.urgency, list(found.reasons)
    base_urgency = urgency
    if facts.minimum_urgency and URGENCY_ORDER.index(facts.minimum_urgency) > URGENCY_ORDER.index(
        urgency
    ):
        urgency = facts.minimum_urgency
        reasons.append(facts.minimum_urgency_reason or f"kept at {urgency}")
    escalation_reasons = _escalations(facts, policy)
    escalated = bool(escalation_reasons)
    if escalated:
        raised = raise_one(urgency)
        if raised != urgency:
            reasons.append(f"escalated from {urgency} to {raised}")
        urgency = raised
    first_due, resolution_due, why = deadlines(
        facts.received_at, facts.channel, urgency, policy, category
    )
    reasons.append(why)
    rules = policy.triage.escalation
    return TriageDecision(
        category=category,
        urgency=urgency,
        reasons=reasons,
        first_response_due=first_due,
        resolution_due=resolution_due,
        escalated=escalated,
        escalation_reasons=escalation_reasons,
        owner_role=rules.owner_role if escalated else None,
        progress_update_every_hours=rules.progress_update_every_hours if escalated else None,
        policy_version=found.policy_version,
        base_urgency=base_urgency,
        matched_terms=found.terms,
        secondary_category=found.secondary,
        model_version=found.model_version,
        scores=found.scores,
    )


def retriage(previous: TriageDecision, facts: CaseFacts, policy: Policy) -> TriageDecision:
    """A new message may raise urgency and tighten deadlines; it never relaxes them."""
    fresh = decide(facts, policy)
    if URGENCY_ORDER.index(fresh.urgency) < URGENCY_ORDER.index(previous.urgency):
        return TriageDecision(
            **{
                **previous.__dict__,
                "reasons": [*previous.reasons, "new message reviewed: urgency unchanged"],
                "policy_version": fresh.policy_version,
                "model_version": fresh.model_version,
            }
        )
    return TriageDecision(
        **{
            **fresh.__dict__,
            "first_response_due": min(fresh.first_response_due, previous.first_response_due),
            "resolution_due": min(fresh.resolution_due, previous.resolution_due),
            "escalated": fresh.escalated or previous.escalated,
            "escalation_reasons": list(
                dict.fromkeys([*previous.escalation_reasons, *fresh.escalation_reasons])
            ),
        }
    )
