"""Payloads that upstream teams publish (docs/contract.md, "Inbound topics")."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

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


CaseAction = Annotated[
    AcceptOffer
    | ApproveCompensation
    | RejectCompensation
    | Resolve
    | SurveyResponse
    | CustomerReply
    | FirstResponse,
    Field(discriminator="type"),
]


class CaseActionRecord(RootModel[CaseAction]):
    """A `cases.actions` record is one action object; its `type` says which."""
