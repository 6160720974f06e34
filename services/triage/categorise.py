"""Category and urgency from two signals: weighted lexicon rules and the trained model. Pure.

The model reads the words and the rules' evidence and gives each category a probability;
a category is present from ``presence``. The primary category is the first present among
the categories more urgent than normal, in policy order (product_safety, legal, billing,
refund: a double charge on a late parcel is billing), otherwise the most probable of the
rest; the secondary is the next present one.

Rules overrule the model for urgent categories (safety, legal): decisive rule evidence
(a term of weight 1) makes them present whatever the model says, so the model never down-grades them.
The model alone may make them present too, from ``urgent_presence``, unless the only
mentions of that category are negated ("I'm not going to sue"): the model may raise
urgency, but it does not overrule a negation the rules understood.

Urgency is the most urgent of the present categories' urgencies, raised to high by severe
dissatisfaction or a repeated complaint.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from services.policy import Policy
from services.triage.classifier import TriageClassifier, classifier_for
from services.triage.evidence import lexicon_for

URGENCY_ORDER = ("normal", "high", "urgent")


def quote(terms: list[str]) -> str:
    return " and ".join(terms[:3]) + (" …" if len(terms) > 3 else "")


def _most_urgent(levels: list[str]) -> str:
    return max(levels, key=URGENCY_ORDER.index) if levels else "normal"


@dataclass(frozen=True)
class Categorisation:
    category: str
    secondary: str | None
    urgency: str
    reasons: list[str]
    terms: list[str]
    scores: dict[str, float]
    policy_version: str
    model_version: str
    # No rule evidence and no confident model: an app form's hint may decide.
    nothing_specific: bool

    def hinted(self, category: str, reason: str, policy: Policy) -> Categorisation:
        urgency = next(
            (rule.urgency for rule in policy.triage.categories if rule.name == category),
            "normal",
        )
        return replace(self, category=category, urgency=_most_urgent([urgency, self.urgency]),
                       reasons=[reason, *self.reasons[1:]])  # fmt: skip


def categorise(text: str, policy: Policy, model: TriageClassifier | None = None) -> Categorisation:
    """``model`` defaults to the policy's own (cross-validation passes one per fold)."""
    rules = policy.triage
    settings = rules.model
    evidence = lexicon_for(policy).evidence(text)
    model = model or classifier_for(policy)
    prediction = model.predict(evidence)
    probability = prediction.probabilities
    names = rules.category_names
    scores = {name: round(probability.get(name, 0.0), 4) for name in names}
    urgency_of = {rule.name: rule.urgency for rule in rules.categories}
    urgency_of[rules.default_category] = "normal"

    # The model's probability of an urgency level is the sum over its categories (every
    # labeled urgent complaint is safety or legal first): when "urgent" as a whole reaches
    # its bar, the more probable of its categories is present.
    by_level: dict[str, list[str]] = {}
    for name in names:
        by_level.setdefault(urgency_of[name], []).append(name)

    def level_leader(name: str, bar: float) -> bool:
        group = by_level[urgency_of[name]]
        total = sum(scores[other] for other in group)
        return total >= bar and max(group, key=scores.__getitem__) == name

    def present(name: str) -> bool:
        if name == rules.default_category:
            return False
        if urgency_of[name] == "urgent":
            found = evidence.categories.get(name)
            if evidence.decisive(name):
                return True  # rules overrule the model for safety and legal
            if found is not None and found.negated and not found.terms:
                return False  # only negated mentions: the model does not overrule them
            return scores[name] >= settings.urgent_presence or level_leader(
                name, settings.urgent_presence
            )
        if urgency_of[name] == "high":
            return scores[name] >= settings.presence or level_leader(name, settings.presence)
        return scores[name] >= settings.presence

    present_names = [name for name in names if present(name)]
    ahead = [name for name in present_names if urgency_of[name] != "normal"]
    # After the categories that take precedence, the one the complaint is mainly about:
    # the highest score, the default ("other") included.
    rest = [name for name in names if urgency_of[name] == "normal"]
    primary = ahead[0] if ahead else max(rest, key=lambda name: (scores[name], -rest.index(name)))
    ordered = ahead + sorted(
        (name for name in present_names if name not in ahead), key=lambda name: -scores[name]
    )
    secondary = next((name for name in ordered if name != primary), None)
    if secondary is None:
        # No second category is probable enough, but the rules may still see one plainly:
        # a cracked mug that cut a finger is a defect too.
        plain = [name for name in names
                 if name not in (primary, rules.default_category) and evidence.decisive(name)]
        secondary = max(plain, key=scores.__getitem__) if plain else None

    labels = {rule.name: rule.label for rule in rules.categories}
    labels[rules.default_category] = "general complaint"
    reasons: list[str] = []
    primary_terms = evidence.categories[primary].terms if primary in evidence.categories else []
    if primary_terms:
        reasons.append(f"mentions {quote(primary_terms)}: {labels[primary]}")
    explained = prediction.explain(primary, settings.explain_features)
    model_part = f"model: {', '.join(repr(f) for f in explained) or 'no strong words'}"
    reasons.append(f"{model_part} → {primary} ({probability.get(primary, 0.0):.2f})")
    if not primary_terms and primary == rules.default_category:
        reasons.insert(0, "no specific issue recognised: general complaint")
    if secondary:
        terms = evidence.categories[secondary].terms if secondary in evidence.categories else []
        why = f"mentions {quote(terms)}" if terms else f"model {probability[secondary]:.2f}"
        reasons.append(f"also {labels[secondary]} (secondary: {why})")
    for name, found in evidence.categories.items():
        if found.negated and name not in (primary, secondary):
            reasons.append(f"not counted, negated: {quote(found.negated)} ({labels[name]})")

    urgency = _most_urgent([urgency_of[name] for name in (primary, secondary) if name])
    if urgency == "normal" and evidence.severe:
        urgency = "high"
        reasons.append(f"mentions {quote(evidence.severe)}: {rules.severity.label}")
    if urgency == "normal" and evidence.repeat:
        urgency = "high"
        reasons.append(f"mentions {quote(evidence.repeat)}: {rules.repeat.label}")
    if urgency == "normal" and prediction.severe >= settings.severe_at:
        urgency = "high"
        top = prediction.explain_severe(settings.explain_features)
        words = ", ".join(repr(f) for f in top) or "no strong words"
        reasons.append(f"model: {words} → {rules.severity.label} ({prediction.severe:.2f})")
    if primary == "product_safety" and evidence.vulnerable:
        reasons.append(f"mentions {quote(evidence.vulnerable)}: {rules.vulnerable.label}")

    nothing_specific = primary == rules.default_category and not any(
        found.terms for found in evidence.categories.values()
    )
    return Categorisation(
        category=primary,
        secondary=secondary,
        urgency=urgency,
        reasons=reasons,
        terms=primary_terms,
        scores=scores,
        policy_version=f"{policy.version}+model.{model.version}",
        model_version=model.version,
        nothing_specific=nothing_specific,
    )
