"""Payloads that upstream teams publish (docs/contract.md, "Inbound topics")."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from schemas.common import Money, Timestamp


class _Inbound(BaseModel):
    # Upstream may add fields at any time; unknown ones are ignored, never fatal.
    model_config = ConfigDict(extra="ignore")


class SocialAuthor(_Inbound):
    id: str
    handle: str | None = None
    name: str | None = None


class SocialPost(_Inbound):
    platform: str
    post_id: str = Field(min_length=1)
    in_reply_to: str | None = None
    author: SocialAuthor
    visibility: Literal["public", "private"] = "public"
    text: str
    url: str | None = None
    created_at: Timestamp | None = None
    followers: int | None = Field(default=None, ge=0)


class AppContact(_Inbound):
    email: str | None = None
    phone: str | None = None


class AppItem(_Inbound):
    """A product the complaint is about, as the app knows it from the order."""

    sku: str | None = None
    name: str | None = None
    quantity: int | None = Field(default=None, ge=1)


class AppSubmission(_Inbound):
    submission_id: str = Field(min_length=1)
    customer_id: str | None = None
    order_id: str | None = None
    order_value: Money | None = None
    subject: str | None = None
    message: str = Field(min_length=1)
    category_hint: str | None = None
    contact: AppContact | None = None
    locale: str | None = None
    submitted_at: Timestamp
    items: list[AppItem] | None = None


class CustomerProfile(_Inbound):
    customer_id: str = Field(min_length=1)
    tier: str = "standard"
    lifetime_value: Money | None = None
    emails: list[str] = Field(default_factory=list)
    phones: list[str] = Field(default_factory=list)
    social: dict[str, str] = Field(default_factory=dict)
    locale: str | None = None
    time_zone: str | None = None
    # An addition to the CRM's profile: the customer asked not to be surveyed.
    followup_opt_out: bool = False


class _Action(_Inbound):
    action_id: str = Field(min_length=1)
    case_number: str = Field(min_length=1)
    actor: str
    at: Timestamp


class AcceptOffer(_Action):
    type: Literal["accept_offer"]
    offer_id: str
    option_id: str


class ApproveCompensation(_Action):
    type: Literal["approve_compensation"]
    offer_id: str
    note: str | None = None


class RejectCompensation(_Action):
    type: Literal["reject_compensation"]
    offer_id: str
    note: str | None = None


class Resolution(_Inbound):
    summary: str
    root_cause: Literal["systemic", "one_off", "unknown"] = "unknown"


class Resolve(_Action):
    type: Literal["resolve"]
    resolution: Resolution


class SurveyResponse(_Action):
    type: Literal["survey_response"]
    score: int = Field(ge=1, le=5)
    comment: str | None = None


class CustomerReply(_Action):
    type: Literal["customer_reply"]
    text: str


class FirstResponse(_Action):
    """An agent's first reply to the customer; stops the first-response clock."""

    type: Literal["first_response"]


class Reply(_Action):
    """An agent's message to the customer. The first one stops the first-response clock;
    each is checked against the reply rules (advisory: never blocked)."""

    type: Literal["reply"]
    text: str = Field(min_length=1)
    first: bool = False


class ErasureIdentities(_Inbound):
    """How the customer is known on the channels: as in the CRM profile."""

    emails: list[str] = Field(default_factory=list)
    phones: list[str] = Field(default_factory=list)
    # platform → the customer's author id there
    social: dict[str, str] = Field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.emails or self.phones or self.social)


class EraseCustomer(_Action):
    """The customer's right to erasure (GDPR art. 17, Taiwan PDPA art. 11): every personal
    field the system keeps about them is erased or irreversibly masked; case numbers,
    categories, urgencies, amounts and dates stay for statistics and audit."""

    type: Literal["erase_customer"]
    # Not about one case: may be empty.
    case_number: str = ""
    customer_id: str | None = Field(default=None, min_length=1)
    identities: ErasureIdentities = Field(default_factory=ErasureIdentities)

    @model_validator(mode="after")
    def _someone(self) -> EraseCustomer:
        if self.customer_id is None and self.identities.empty():
            raise ValueError("erase_customer needs customer_id or at least one identity")
        return self


class AcknowledgeInsight(_Action):
    """Ops take ownership of a systemic issue; it stops alerting. ``case_number`` is any
    case of the insight (the action is about the insight)."""

    type: Literal["acknowledge_insight"]
    insight_id: str = Field(min_length=1)
    owner: str = Field(min_length=1)


CaseAction = Annotated[
    AcceptOffer
    | ApproveCompensation
    | RejectCompensation
    | Resolve
    | SurveyResponse
    | CustomerReply
    | FirstResponse
    | Reply
    | EraseCustomer
    | AcknowledgeInsight,
    Field(discriminator="type"),
]


class CaseActionRecord(RootModel[CaseAction]):
    """A `cases.actions` record is one action object; its `type` says which."""
