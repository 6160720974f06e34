"""Typed view of policy.toml. A file that does not validate is refused as a whole."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_POLICY_FILE = Path(__file__).with_name("policy.toml")

UrgencyName = Literal["urgent", "high", "normal"]


class PolicyError(ValueError):
    """The policy file is missing, unreadable or invalid; the message says where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UrgencyTargets(_Strict):
    respond_within_hours: float = Field(gt=0)
    resolve_within_hours: float = Field(gt=0)


class Escalation(_Strict):
    repeat_window_days: int = Field(gt=0)
    repeat_min_previous: int = Field(ge=1)
    vip_tiers: list[str]
    vip_lifetime_value: Decimal = Field(ge=0)
    influencer_followers: int = Field(ge=0)
    owner_role: str
    progress_update_every_hours: int = Field(gt=0)


class CategoryRule(_Strict):
    name: str
    urgency: UrgencyName
    label: str
    terms: list[str] = Field(min_length=1)


class TermList(_Strict):
    label: str = ""
    terms: list[str]


class Negation(_Strict):
    window: int = Field(ge=0)
    terms: list[str]


DeadlineClock = Literal["calendar", "business_hours"]


class BusinessHours(_Strict):
    opens: int = Field(ge=0, le=23)
    closes: int = Field(ge=1, le=24)
    working_weekdays: list[int] = Field(min_length=1)
    holiday_country: str | None = None

    @model_validator(mode="after")
    def _sane(self) -> BusinessHours:
        if self.opens >= self.closes:
            raise ValueError("business hours must open before they close")
        if not set(self.working_weekdays) <= set(range(7)):
            raise ValueError("working_weekdays are 0 (Monday) to 6 (Sunday)")
        return self


class TriagePolicy(_Strict):
    deadline_clock: DeadlineClock
    category_clock: dict[str, DeadlineClock] = Field(default_factory=dict)
    business_hours: BusinessHours
    default_category: str
    at_risk_share: float = Field(gt=0, lt=1)
    urgency: dict[UrgencyName, UrgencyTargets]
    channel_first_response_minutes: dict[Literal["email", "social", "app"], float]
    escalation: Escalation
    categories: list[CategoryRule] = Field(min_length=1)
    severity: TermList
    negation: Negation
    category_hints: dict[str, str]

    @model_validator(mode="after")
    def _complete(self) -> TriagePolicy:
        missing = {"urgent", "high", "normal"} - set(self.urgency)
        if missing:
            raise ValueError(f"triage.urgency lacks {sorted(missing)}")
        missing = {"email", "social", "app"} - set(self.channel_first_response_minutes)
        if missing:
            raise ValueError(f"triage.channel_first_response_minutes lacks {sorted(missing)}")
        known = {rule.name for rule in self.categories} | {self.default_category}
        unknown = set(self.category_hints.values()) - known
        if unknown:
            raise ValueError(f"triage.category_hints name unknown categories {sorted(unknown)}")
        return self


class CompensationPolicy(_Strict):
    offer_expires_hours: float = Field(gt=0)
    system_authority_limit: Decimal = Field(ge=0)
    supervisor_authority_limit: Decimal = Field(ge=0)
    customer_goodwill_cap: Decimal = Field(ge=0)
    customer_cap_window_days: int = Field(gt=0)
    coupon_tiers: list[Decimal] = Field(min_length=1)
    urgency_coupon_tier: dict[UrgencyName, int]
    vip_extra_tiers: int = Field(ge=0)
    default_shipping_fee: Decimal = Field(ge=0)
    no_money_categories: list[str]
    refund_categories: list[str]
    replacement_categories: list[str]
    shipping_refund_categories: list[str]
    monthly_budget_by_category: dict[str, Decimal]
    # What a customer who never chose gets when the offer expires.
    expiry_fallback: Literal["coupon", "apology_only", "none"] = "coupon"
    # A reopened case: goodwill this many coupon tiers higher per reopening.
    reopen_extra_tiers: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _ordered_limits(self) -> CompensationPolicy:
        if self.supervisor_authority_limit < self.system_authority_limit:
            raise ValueError("supervisor_authority_limit must be >= system_authority_limit")
        if sorted(self.coupon_tiers) != self.coupon_tiers:
            raise ValueError("coupon_tiers must be in increasing order")
        missing = {"urgent", "high", "normal"} - set(self.urgency_coupon_tier)
        if missing:
            raise ValueError(f"urgency_coupon_tier lacks {sorted(missing)}")
        if max(self.urgency_coupon_tier.values()) >= len(self.coupon_tiers):
            raise ValueError("urgency_coupon_tier points past the end of coupon_tiers")
        return self


class FollowupPolicy(_Strict):
    default_delay_days: int = Field(ge=0)
    refund_delay_days: int = Field(ge=0)
    min_delay_days: int = Field(ge=0)
    max_delay_days: int = Field(ge=0)
    send_window_start_hour: int = Field(ge=0, le=23)
    send_window_end_hour: int = Field(ge=1, le=24)
    reopen_max_score: int = Field(ge=1, le=5)
    closed_min_score: int = Field(ge=1, le=5)
    reopen_urgency: UrgencyName
    no_answer_reminder_days: int = Field(ge=1)
    holiday_country: str | None = None
    closed_weekdays: list[int] = Field(default_factory=lambda: [6])

    @model_validator(mode="after")
    def _window(self) -> FollowupPolicy:
        if not self.min_delay_days <= self.default_delay_days <= self.max_delay_days:
            raise ValueError("followup delays must satisfy min <= default <= max")
        if not self.min_delay_days <= self.refund_delay_days <= self.max_delay_days:
            raise ValueError("followup delays must satisfy min <= refund <= max")
        if self.send_window_start_hour >= self.send_window_end_hour:
            raise ValueError("followup send window must start before it ends")
        return self


class RepliesPolicy(_Strict):
    banned_phrases: list[str]


class Policy(_Strict):
    version: str = Field(min_length=1)
    business_time_zone: str
    currency: str
    triage: TriagePolicy
    compensation: CompensationPolicy
    followup: FollowupPolicy
    replies: RepliesPolicy

    @field_validator("business_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.business_time_zone)

    @property
    def category_names(self) -> list[str]:
        """Every category a case can have: triage's own, then the default."""
        names = [rule.name for rule in self.triage.categories]
        return [*names, *([] if self.triage.default_category in names else
                          [self.triage.default_category])]  # fmt: skip


def load_policy(path: Path = DEFAULT_POLICY_FILE) -> Policy:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {path} is not valid TOML: {exc}") from exc
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise PolicyError(f"policy file {path} is invalid: {problems}") from exc
