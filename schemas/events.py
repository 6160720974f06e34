"""The ``data`` of every event the system publishes (docs/contract.md, "Outbound events")."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import Channel, Money, Timestamp, Urgency


class _Data(BaseModel):
    # Fields may be added to the contract, never removed: consumers must tolerate extras.
    model_config = ConfigDict(extra="allow")


class Attachment(_Data):
    filename: str | None
    content_type: str
    size: int


class OrderItem(_Data):
    """A product the complaint is about (from the app form)."""

    sku: str | None = None
    name: str | None = None
    quantity: int | None = None


class CaseOpened(_Data):
    case_number: str
    channel: Channel
    customer_id: str | None
    language: str
    received_at: Timestamp
    subject: str
    text: str
    source_ref: str
    order_id: str | None = None
    order_value: Money | None = None
    category_hint: str | None = None
    visibility: Literal["public", "private"] | None = None
    followers: int | None = None
    platform: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    items: list[OrderItem] = Field(default_factory=list)


class MessageAdded(_Data):
    case_number: str
    channel: Channel
    source_ref: str
    text: str
    received_at: Timestamp
    language: str | None = None


class CaseTriaged(_Data):
    case_number: str
    category: str
    urgency: Urgency
    reasons: list[str]
    first_response_due: Timestamp
    resolution_due: Timestamp
    escalated: bool
    escalation_reasons: list[str]
    policy_version: str
    owner_role: str | None = None
    progress_update_every_hours: int | None = None
    # The next issue present after the primary category (a double charge on a late parcel:
    # billing, then delivery), and the triage model's version (also in policy_version).
    secondary_category: str | None = None
    model_version: str | None = None
    channel: Channel | None = None
    customer_id: str | None = None
    customer_tier: str | None = None
    language: str | None = None
    order_value: Money | None = None
    received_at: Timestamp | None = None
    # 1 for the first decision; + 1 each time a later message or a reopening changes it.
    revision: int = 1
    customer_lifetime_value: Money | None = None


class SlaWarning(_Data):
    case_number: str
    deadline: Literal["first_response", "resolution"]
    due: Timestamp


OfferKind = Literal[
    "refund", "replacement", "coupon", "shipping_refund", "tier_upgrade", "apology_only"
]


class OfferOption(_Data):
    option_id: str
    kind: OfferKind
    value: Money | None
    description: str


class CompensationProposed(_Data):
    case_number: str
    offer_id: str
    options: list[OfferOption] = Field(min_length=2, max_length=3)
    expires_at: Timestamp
    policy_version: str


class ApprovalRequested(_Data):
    case_number: str
    offer_id: str
    requested: Money
    approver_role: str
    reasons: list[str]
    policy_version: str | None = None
    # A pending approval asked again: the n-th reminder of this offer (absent on the first
    # request and on an escalation).
    reminder: int | None = None
    # Passed up because the role below did not decide in time: the role it came from.
    escalated_from: str | None = None


class CompensationAccepted(_Data):
    case_number: str
    offer_id: str
    option_id: str
    # The chosen option, repeated so that consumers need not keep the offer.
    kind: OfferKind | None = None
    value: Money | None = None
    description: str | None = None


class CompensationRejected(_Data):
    """An approver said no; ``alternative_offer_id`` is the capped offer made instead."""

    case_number: str
    offer_id: str
    approver: str
    note: str | None = None
    alternative_offer_id: str


class CompensationExpired(_Data):
    """The customer did not choose in time; ``fallback`` is what the policy gives instead."""

    case_number: str
    offer_id: str
    expired_at: Timestamp
    fallback: OfferOption | None
    policy_version: str


class FollowupScheduled(_Data):
    case_number: str
    followup_id: str
    due_at: Timestamp


class FollowupSent(_Data):
    case_number: str
    followup_id: str


class FollowupAnswered(_Data):
    case_number: str
    followup_id: str
    score: int


class FollowupCancelled(_Data):
    """A scheduled satisfaction check that will not happen, and why."""

    case_number: str
    followup_id: str
    reason: str


class CaseReopened(_Data):
    case_number: str
    reason: str


class CaseResolved(_Data):
    case_number: str
    customer_id: str | None
    channel: Channel | None
    category: str | None
    urgency: Urgency | None
    opened_at: Timestamp | None
    resolved_at: Timestamp
    first_response_due: Timestamp | None
    resolution_due: Timestamp | None
    sla_met: bool
    compensation: dict[str, Any] | None
    resolution: dict[str, Any]
    followup_due_at: Timestamp
    resolved_by: str | None = None  # the actor of the resolve action
    reopen_count: int = 0
    # 1 for the record of a resolution; + 1 each time a later compensation outcome
    # (an acceptance, an expiry's fallback) changes its `compensation`.
    revision: int = 1


class ReplyFlagged(_Data):
    """An agent's reply that breaks the house rules; advisory, the reply went out."""

    case_number: str
    action_id: str
    problems: list[str]  # sentences a team lead can read
    problem_codes: list[str] = Field(default_factory=list)  # the same, as short codes
    first: bool | None = None  # whether it was checked as the case's first reply


InsightKind = Literal["product", "courier", "city", "phrase"]


class InsightKey(_Data):
    """What the complaints of an insight share: their category and one of the others."""

    category: str
    sku: str | None = None
    courier: str | None = None
    city: str | None = None
    phrase: str | None = None


class InsightWindow(_Data):
    start: Timestamp
    end: Timestamp
    hours: int


class InsightEvent(_Data):
    """A systemic issue: ``count`` distinct customers in ``window`` against a trailing
    ``baseline`` (the mean count per window of the same length over the days before)."""

    insight_id: str
    kind: InsightKind
    key: InsightKey
    window: InsightWindow
    count: int
    baseline: float
    # The first cases (at most the policy's max_listed_cases, oldest first); case_total
    # counts them all. A bounded list: an insight of thousands of cases stays one small event.
    case_numbers: list[str]
    case_total: int | None = None
    first_seen: Timestamp | None = None
    sample_texts: list[str] = Field(default_factory=list)
    threshold: int | None = None
    status: Literal["open", "acknowledged", "subsided"] | None = None
    detected_at: Timestamp | None = None
    owner: str | None = None
    systemic_resolutions: int | None = None
    change: str | None = None
    policy_version: str | None = None


class NotificationRequested(_Data):
    case_number: str
    channel: Channel
    recipient: str | None
    template: str
    language: str
    body: str


class InputRejected(_Data):
    topic: str
    partition: int
    offset: int
    reason: str
    original: str  # base64 of the exact record value
    key: str | None = None  # base64 of the record key, when there was one
    service: str | None = None
    reason_code: str | None = None  # short fixed vocabulary, e.g. invalid_json
    # When the record counted as received: a replay keeps the original deadlines.
    received_at: Timestamp | None = None


class CustomerErased(_Data):
    """What one service erased for an ``erase_customer`` request: counts, never the data."""

    customer_id: str | None
    erased_at: Timestamp
    # What was erased or masked, per kind (e.g. cases, messages, customer_profiles).
    counts: dict[str, int]
    service: str
    erasure_id: str  # the erase_customer action's action_id
    # The cases found for the customer (intake's event lists them for the other services).
    case_numbers: list[str] = Field(default_factory=list)
    # Every CRM id the request matched (its customer_id, profiles found by its identities).
    customer_ids: list[str] = Field(default_factory=list)


# Event type names, with the data model each one carries, for the exports.
EVENT_TYPES: dict[str, tuple[str, type[BaseModel]]] = {
    "complaint.case.opened": ("cases.opened", CaseOpened),
    "complaint.case.message_added": ("cases.opened", MessageAdded),
    "complaint.case.triaged": ("cases.triaged", CaseTriaged),
    "complaint.case.sla_at_risk": ("cases.triaged", SlaWarning),
    "complaint.case.sla_breached": ("cases.triaged", SlaWarning),
    "complaint.reply.flagged": ("cases.triaged", ReplyFlagged),
    "complaint.compensation.proposed": ("cases.compensation", CompensationProposed),
    "complaint.compensation.approval_requested": ("cases.compensation", ApprovalRequested),
    "complaint.compensation.accepted": ("cases.compensation", CompensationAccepted),
    "complaint.compensation.rejected": ("cases.compensation", CompensationRejected),
    "complaint.compensation.expired": ("cases.compensation", CompensationExpired),
    "complaint.followup.scheduled": ("cases.followups", FollowupScheduled),
    "complaint.followup.sent": ("cases.followups", FollowupSent),
    "complaint.followup.answered": ("cases.followups", FollowupAnswered),
    "complaint.followup.cancelled": ("cases.followups", FollowupCancelled),
    "complaint.case.reopened": ("cases.followups", CaseReopened),
    "complaint.case.resolved": ("cases.resolved", CaseResolved),
    "complaint.insight.detected": ("cases.insights", InsightEvent),
    "complaint.insight.updated": ("cases.insights", InsightEvent),
    "complaint.insight.subsided": ("cases.insights", InsightEvent),
    "complaint.notification.requested": ("notifications.outbound", NotificationRequested),
    "complaint.customer.erased": ("customers.erasures", CustomerErased),
    "complaint.input.rejected": ("complaints.dlq", InputRejected),
}
