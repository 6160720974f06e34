"""Typed view of policy.toml. A file that does not validate is refused as a whole."""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.policy.examples import ExamplesError, ExampleSet, load_examples

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


class Evidence(_Strict):
    """Terms that are evidence for a category, all of one weight (1.0 = decisive alone)."""

    weight: float = Field(gt=0, le=5)
    terms: list[str] = Field(min_length=1)


class CategoryRule(_Strict):
    name: str
    urgency: UrgencyName
    label: str
    # Negated mentions ("I wasn't hurt", "not going to sue") are no evidence. Only for
    # categories where a negation cancels the issue: for the others the negation usually
    # IS the complaint ("never arrived", "doesn't work", "refund not received").
    negatable: bool = False
    evidence: list[Evidence] = Field(min_length=1)
    # Phrases that contain one of the terms but are no evidence for the category: a term
    # found inside one of them does not count ("Fire TV", "fire him", "時間膨脹").
    not_terms: list[str] = Field(default_factory=list)

    @property
    def terms(self) -> list[str]:
        return [term for group in self.evidence for term in group.terms]


class TermList(_Strict):
    label: str = ""
    terms: list[str]


class Vulnerable(_Strict):
    """People at higher risk: their presence adds `boost` to harm evidence already found."""

    label: str
    boost: float = Field(ge=0, le=5)
    terms: list[str] = Field(min_length=1)


class BodyHarm(_Strict):
    """A body part and a harm word in one clause: harm evidence of `weight`."""

    label: str
    weight: float = Field(gt=0, le=5)
    body: list[str] = Field(min_length=1)
    not_body: list[str] = Field(default_factory=list)
    harm: list[str] = Field(min_length=1)


class Negation(_Strict):
    """Negation is scoped to its clause, and to a few words/characters after the cue."""

    terms: list[str] = Field(min_length=1)
    # Words containing a cue that do not negate (不小心 "carelessly", 不舒服 "unwell").
    not_negating: list[str] = Field(default_factory=list)
    # Words that end a clause besides punctuation (but, 但是, 不過, 可是).
    clause_breaks: list[str] = Field(default_factory=list)
    # Words that end a negation's scope inside a clause ("did not stop AND caught fire").
    scope_breaks: list[str] = Field(default_factory=list)
    # At most this many English words / Chinese characters between the cue and the term.
    english_window: int = Field(ge=0, le=20)
    chinese_window: int = Field(ge=0, le=20)


class TriageModel(_Strict):
    """The statistical classifier trained from labeled examples, and how it is combined."""

    # JSON Lines of labeled complaints, relative to the policy file (see README).
    examples: str = Field(min_length=1)
    char_ngram_min: int = Field(ge=1, le=6)
    char_ngram_max: int = Field(ge=1, le=6)
    word_ngram_max: int = Field(ge=1, le=3)
    # Inverse regularisation strength of the logistic regression.
    c: float = Field(gt=0)
    class_weight: Literal["balanced", "none"] = "balanced"
    # Examples labeled urgent weigh this much more in training: missing a safety or legal
    # case costs more than a false alarm, so the model should lean towards urgent.
    urgent_weight: float = Field(default=1.0, ge=1, le=10)
    min_examples_per_category: int = Field(ge=1)
    # Rule evidence enters the model as features, multiplied by this (text features are
    # TF-IDF weights of a unit-length vector, so about 1 puts rules on a par with words).
    rule_feature_scale: float = Field(gt=0)
    # A text whose character (or word) features weigh less than this share of the median
    # training example's is scaled as if it weighed that much: short texts carry less
    # evidence (0 = every text scaled to unit length).
    short_text_share: float = Field(default=0.0, ge=0, le=1)
    # Terms weighing less than 1 add up to at most this: weak hints alone never decide.
    weak_evidence_cap: float = Field(gt=0, le=1)
    # Probability at which a category counts as present (primary/secondary, urgency), and
    # the bar for safety or legal when the rules found no decisive evidence for them.
    presence: float = Field(gt=0, le=1)
    urgent_presence: float = Field(gt=0, le=1)
    # A complaint whose most probable category stays below this, with no rule terms for it
    # and nothing more urgent than normal, is a general complaint (an app form's hint may
    # then decide).
    general_below: float = Field(default=0.3, ge=0, le=1)
    # Probability of severe dissatisfaction (from a second model trained on the examples'
    # high vs normal urgency) at which a normal-urgency complaint becomes high.
    severe_at: float = Field(gt=0, le=1)
    # How many features explain the model's part of a decision in `reasons`.
    explain_features: int = Field(ge=0, le=10)

    @model_validator(mode="after")
    def _ngrams(self) -> TriageModel:
        if self.char_ngram_min > self.char_ngram_max:
            raise ValueError("char_ngram_min must be <= char_ngram_max")
        return self


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
    body_harm: BodyHarm
    vulnerable: Vulnerable
    severity: TermList
    repeat: TermList
    # Words of a question or a suggestion rather than a complaint (a model feature only).
    inquiry: TermList = TermList(label="a question or suggestion", terms=[])
    negation: Negation
    category_hints: dict[str, str]
    model: TriageModel

    @property
    def category_names(self) -> list[str]:
        """Every category, in priority order, the default last."""
        return [rule.name for rule in self.categories] + [self.default_category]

    @property
    def urgency_of(self) -> dict[str, str]:
        """Each category's own urgency, in priority order, the default (normal) last."""
        return {**{rule.name: rule.urgency for rule in self.categories},
                self.default_category: "normal"}  # fmt: skip

    @model_validator(mode="after")
    def _complete(self) -> TriagePolicy:
        missing = {"urgent", "high", "normal"} - set(self.urgency)
        if missing:
            raise ValueError(f"triage.urgency lacks {sorted(missing)}")
        missing = {"email", "social", "app"} - set(self.channel_first_response_minutes)
        if missing:
            raise ValueError(f"triage.channel_first_response_minutes lacks {sorted(missing)}")
        names = [rule.name for rule in self.categories]
        if len(set(names)) != len(names) or self.default_category in names:
            raise ValueError("triage.categories names must be unique and not the default")
        known = {rule.name for rule in self.categories} | {self.default_category}
        unknown = set(self.category_hints.values()) - known
        if unknown:
            raise ValueError(f"triage.category_hints name unknown categories {sorted(unknown)}")
        return self


OfferKindName = Literal[
    "refund", "replacement", "coupon", "shipping_refund", "tier_upgrade", "apology_only"
]


class ApprovalTimers(_Strict):
    """How long a pending approval waits on one role before it reminds, moves up, expires.

    Each role's clock starts when the approval reaches it."""

    remind_after_hours: float = Field(gt=0)
    escalate_after_hours: float = Field(gt=0)
    expire_at_top_after_hours: float = Field(gt=0)
    # Who may approve, lowest first; an approval not decided in time moves one step up.
    approver_roles: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> ApprovalTimers:
        if self.remind_after_hours >= self.escalate_after_hours:
            raise ValueError("approval reminder must come before the escalation")
        if self.remind_after_hours >= self.expire_at_top_after_hours:
            raise ValueError("approval reminder must come before the expiry at the top")
        if len(set(self.approver_roles)) != len(self.approver_roles):
            raise ValueError("approver_roles must not repeat a role")
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
    approval: ApprovalTimers
    # Days until what the customer chose has reached them, told in the confirmation.
    fulfilment_days: dict[OfferKindName, int]

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
        missing_kinds = set(get_args(OfferKindName)) - set(self.fulfilment_days)
        if missing_kinds:
            raise ValueError(f"fulfilment_days lacks {sorted(missing_kinds)}")
        if any(days < 0 for days in self.fulfilment_days.values()):
            raise ValueError("fulfilment_days must be 0 or more")
        roles = self.approval.approver_roles
        if not {"supervisor", "manager"} <= set(roles):
            raise ValueError("approval.approver_roles must name supervisor and manager")
        if roles.index("supervisor") > roles.index("manager"):
            # An approval moves up the list: a manager's would otherwise go down.
            raise ValueError("approval.approver_roles go up: supervisor before manager")
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


class FirstReplyRules(_Strict):
    """What a first reply must contain, as words and patterns (matched case-insensitively)."""

    thanks: list[str] = Field(min_length=1)
    apology: list[str] = Field(min_length=1)
    next_step: list[str] = Field(min_length=1)
    # A time: words ("tomorrow", "今天") or regular expressions ("\\d{1,2}:\\d{2}").
    time_words: list[str] = Field(min_length=1)
    time_patterns: list[str] = Field(default_factory=list)

    @field_validator("time_patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"time pattern {pattern!r} is not a regular expression: {exc}"
                ) from exc
        return patterns


class RepliesPolicy(_Strict):
    banned_phrases: list[str]
    first_reply: FirstReplyRules


class PrivacyPolicy(_Strict):
    # A resolved case keeps its personal data this long, then it is masked as an erasure
    # would mask it (a reopened case starts counting again at its next resolution).
    retention_days: int = Field(gt=0)
    # Dead-lettered records carry the original bytes: the DLQ topic keeps them this long.
    dlq_retention_days: int = Field(gt=0)
    # The other topics that carry personal data (inbound, cases, notifications) keep their
    # records this long; what the services need from them is in their stores by then.
    topic_retention_days: int = Field(gt=0)


InsightKind = Literal["product", "courier", "city", "phrase"]


class InsightsPolicy(_Strict):
    """Systemic issues: when a group of complaints sharing a cause becomes an insight."""

    window_hours: int = Field(gt=0, le=24 * 7)
    baseline_days: int = Field(gt=0, le=60)
    baseline_multiple: float = Field(ge=1)
    min_cases: dict[InsightKind, int]
    safety_categories: list[str]
    safety_min_cases: int = Field(ge=2)
    overlap_share: float = Field(gt=0, le=1)
    cold_start_days: int = Field(ge=0, le=60)
    update_interval_minutes: int = Field(ge=0, le=24 * 60)
    keywords_per_script: int = Field(ge=0, le=20)
    phrases_per_case: int = Field(ge=0, le=20)
    max_inferred_products: int = Field(ge=0, le=10)
    max_tracked_cases: int = Field(ge=10, le=500)
    max_listed_cases: int = Field(ge=10, le=500)
    sample_texts: int = Field(ge=0, le=10)
    sample_chars: int = Field(ge=20, le=1000)
    ignore_terms: list[str] = Field(default_factory=list)
    couriers: dict[str, list[str]] = Field(default_factory=dict)
    cities: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete(self) -> InsightsPolicy:
        missing = {"product", "courier", "city", "phrase"} - set(self.min_cases)
        if missing:
            raise ValueError(f"insights.min_cases lacks {sorted(missing)}")
        if any(count < 2 for count in self.min_cases.values()):
            raise ValueError("insights.min_cases: a group needs at least 2 customers")
        if self.max_tracked_cases < max(self.min_cases.values()):
            raise ValueError("insights.max_tracked_cases must be at least every min_cases")
        return self


class Policy(_Strict):
    version: str = Field(min_length=1)
    business_time_zone: str
    currency: str
    triage: TriagePolicy
    compensation: CompensationPolicy
    followup: FollowupPolicy
    replies: RepliesPolicy
    privacy: PrivacyPolicy
    insights: InsightsPolicy
    # Filled by load_policy from triage.model.examples, never from the TOML itself.
    triage_examples: ExampleSet | None = Field(default=None, exclude=True)

    @property
    def source_files(self) -> tuple[Path, ...]:
        """Files besides the policy file whose change is a policy change (hot reload)."""
        return (self.triage_examples.path,) if self.triage_examples else ()

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


def examples_path(policy_file: Path, named: str) -> Path:
    """Where triage.model.examples is: an absolute path as it is; a relative one beside the
    policy file, else beside the bundled policy (so a candidate policy written elsewhere
    uses the bundled examples unless it brings its own)."""
    if Path(named).is_absolute():
        return Path(named)
    beside = policy_file.parent / named
    bundled = DEFAULT_POLICY_FILE.parent / named
    return beside if beside.exists() or not bundled.exists() else bundled


def load_policy(path: Path = DEFAULT_POLICY_FILE) -> Policy:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {path} is not valid TOML: {exc}") from exc
    if "triage_examples" in raw:
        raise PolicyError(f"policy file {path} is invalid: triage_examples is not a setting")
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise PolicyError(f"policy file {path} is invalid: {problems}") from exc
    model = policy.triage.model
    try:
        examples = load_examples(
            examples_path(path, model.examples),
            policy.triage.category_names,
            model.min_examples_per_category,
        )
    except ExamplesError as exc:
        raise PolicyError(f"policy file {path}: triage.model.examples refused: {exc}") from exc
    return policy.model_copy(update={"triage_examples": examples})
