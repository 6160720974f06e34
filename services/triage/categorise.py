"""Category and urgency from two signals: weighted lexicon rules and the trained model. Pure.

The model reads the words and the rules' evidence and gives each category a probability;
a category is present from ``presence``. The primary category is the first present among
the categories more urgent than normal, in policy order (product_safety, legal, billing,
refund: a double charge on a late parcel is billing), otherwise the most probable of the
rest; the secondary is the next present one.

Urgent (safety or legal present) is its own decision. Rules overrule the model: decisive
rule evidence (a term of weight 1) makes a category present whatever the model says, so the
model never down-grades them. The model's urgent head may make them present too, from
``urgent_presence`` (chosen on author-group cross-validation for recall), unless the only
mentions of that category are negated ("I'm not going to sue"): the model may raise
urgency, but it does not overrule a negation the rules understood.

Urgency is the most urgent of the present categories' urgencies, raised to high by severe
dissatisfaction or a repeated complaint.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from services.policy import Policy
from services.triage.classifier import Prediction, TriageClassifier, classifier_for
from services.triage.evidence import RuleEvidence, lexicon_for

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


@dataclass(frozen=True)
class _Signals:
    """What one complaint's rules and model say, and the policy's view of categories."""

    policy: Policy
    evidence: RuleEvidence
    prediction: Prediction
    scores: dict[str, float]
    urgency_of: dict[str, str]

    def _level_leader(self, name: str, bar: float) -> bool:
        """The model's probability of an urgency level is the sum over its categories
        (every labeled urgent complaint is safety or legal first): when the level as a
        whole reaches its bar, the more probable of its categories is present."""
        group = [other for other in self.scores if self.urgency_of[other] == self.urgency_of[name]]
        total = sum(self.scores[other] for other in group)
        return total >= bar and max(group, key=self.scores.__getitem__) == name

    def urgent_present(self) -> list[str]:
        """The urgent categories present. Urgency is its own decision: decisive rule
        evidence makes a category present whatever the model says (the model never
        down-grades the rules' urgent); otherwise the model's probability of urgent reaching
        ``urgent_presence`` does, for the urgent categories it finds probable (at least the
        more probable one), except one whose only mentions the rules read as negated ("I'm
        not going to sue"): the model does not overrule a negation the rules understood."""
        settings, evidence = self.policy.triage.model, self.evidence
        names = [name for name in self.scores if self.urgency_of[name] == "urgent"]
        present = [name for name in names if evidence.decisive(name)]
        if self.prediction.urgent < settings.urgent_presence:
            return present
        negated = {name for name in names if self._negated_only(name)}
        probable = [
            name for name in names if name not in negated and self.scores[name] >= settings.presence
        ]
        likeliest = max(names, key=self.scores.__getitem__)
        # When the likeliest urgent category is one the rules read as negated, the model's
        # urgency is most likely that negated mention's ("I won't sue, but…").
        extra = probable or ([likeliest] if likeliest not in negated else [])
        return [name for name in names if name in present or name in extra]

    def _negated_only(self, name: str) -> bool:
        found = self.evidence.categories.get(name)
        return found is not None and bool(found.negated) and not found.terms

    def present(self, name: str, urgent: list[str]) -> bool:
        settings = self.policy.triage.model
        if name == self.policy.triage.default_category:
            return False
        if self.urgency_of[name] == "urgent":
            return name in urgent
        if self.urgency_of[name] == "high":
            return self.scores[name] >= settings.presence or self._level_leader(
                name, settings.presence
            )
        return self.scores[name] >= settings.presence

    def choose(self) -> tuple[str, str | None]:
        """(primary, secondary) by the guide's precedence, then by probability."""
        names = self.policy.triage.category_names
        scores, urgency_of = self.scores, self.urgency_of
        urgent = self.urgent_present()
        present_names = [name for name in names if self.present(name, urgent)]
        ahead = [name for name in present_names if urgency_of[name] != "normal"]
        # After the categories that take precedence, the one the complaint is mainly about:
        # the highest score, the default ("other") included.
        rest = [name for name in names if urgency_of[name] == "normal"]
        primary = ahead[0] if ahead else max(rest, key=lambda n: (scores[n], -rest.index(n)))
        found = self.evidence.categories.get(primary)
        if (
            not ahead
            and scores[primary] < self.policy.triage.model.general_below
            and not (found and found.terms)
        ):
            # Nothing in the text names an issue and the model is unsure: a general
            # complaint ("謝謝你們", "請盡快處理"), where an app form's hint may decide.
            primary = self.policy.triage.default_category
        ordered = ahead + sorted(
            (name for name in present_names if name not in ahead), key=lambda n: -scores[n]
        )
        secondary = next((name for name in ordered if name != primary), None)
        if secondary is None:
            # No second category is probable enough, but the rules may still see one
            # plainly: a cracked mug that cut a finger is a defect too.
            default = self.policy.triage.default_category
            plain = [n for n in names if n not in (primary, default) and self.evidence.decisive(n)]
            secondary = max(plain, key=scores.__getitem__) if plain else None
        return primary, secondary

    def urgency(self, primary: str, secondary: str | None, reasons: list[str]) -> str:
        """The most urgent present category's urgency, raised to high by severity."""
        rules, evidence, prediction = self.policy.triage, self.evidence, self.prediction
        urgency = _most_urgent([self.urgency_of[n] for n in (primary, secondary) if n])
        if urgency == "normal" and evidence.severe:
            urgency = "high"
            reasons.append(f"mentions {quote(evidence.severe)}: {rules.severity.label}")
        if urgency == "normal" and evidence.repeat:
            urgency = "high"
            reasons.append(f"mentions {quote(evidence.repeat)}: {rules.repeat.label}")
        if urgency == "normal" and prediction.severe >= rules.model.severe_at:
            urgency = "high"
            top = prediction.explain_severe(rules.model.explain_features)
            words = ", ".join(repr(f) for f in top) or "no strong words"
            reasons.append(f"model: {words} → {rules.severity.label} ({prediction.severe:.2f})")
        return urgency

    def reasons(self, primary: str, secondary: str | None) -> list[str]:
        rules, evidence = self.policy.triage, self.evidence
        probability = self.prediction.probabilities
        labels = {rule.name: rule.label for rule in rules.categories}
        labels[rules.default_category] = "general complaint"
        reasons: list[str] = []
        primary_terms = evidence.categories[primary].terms if primary in evidence.categories else []
        if primary_terms:
            reasons.append(f"mentions {quote(primary_terms)}: {labels[primary]}")
        elif primary == rules.default_category:
            reasons.append("no specific issue recognised: general complaint")
        explained = self.prediction.explain(primary, rules.model.explain_features)
        words = ", ".join(repr(f) for f in explained) or "no strong words"
        reasons.append(f"model: {words} → {primary} ({probability.get(primary, 0.0):.2f})")
        if self.urgency_of[primary] == "urgent" and not evidence.decisive(primary):
            top = self.prediction.explain_urgent(rules.model.explain_features)
            words = ", ".join(repr(f) for f in top) or "no strong words"
            reasons.append(f"model: {words} → urgent ({self.prediction.urgent:.2f})")
        if secondary:
            found = evidence.categories.get(secondary)
            why = (f"mentions {quote(found.terms)}" if found and found.terms
                   else f"model {probability[secondary]:.2f}")  # fmt: skip
            reasons.append(f"also {labels[secondary]} (secondary: {why})")
        for name, found in evidence.categories.items():
            if found.negated and name not in (primary, secondary):
                reasons.append(f"not counted, negated: {quote(found.negated)} ({labels[name]})")
        if primary == "product_safety" and evidence.vulnerable:
            reasons.append(f"mentions {quote(evidence.vulnerable)}: {rules.vulnerable.label}")
        return reasons


def categorise(text: str, policy: Policy, model: TriageClassifier | None = None) -> Categorisation:
    """``model`` defaults to the policy's own (cross-validation passes one per fold)."""
    rules = policy.triage
    evidence = lexicon_for(policy).evidence(text)
    model = model or classifier_for(policy)
    prediction = model.predict(evidence)
    scores = {
        name: round(prediction.probabilities.get(name, 0.0), 4) for name in rules.category_names
    }
    urgency_of: dict[str, str] = {rule.name: rule.urgency for rule in rules.categories}
    urgency_of[rules.default_category] = "normal"
    signals = _Signals(policy, evidence, prediction, scores, urgency_of)
    primary, secondary = signals.choose()
    reasons = signals.reasons(primary, secondary)
    urgency = signals.urgency(primary, secondary, reasons)
    return Categorisation(
        category=primary,
        secondary=secondary,
        urgency=urgency,
        reasons=reasons,
        terms=evidence.categories[primary].terms if primary in evidence.categories else [],
        scores=scores,
        policy_version=f"{policy.version}+model.{model.version}",
        model_version=model.version,
        nothing_specific=primary == rules.default_category
        and not any(found.terms for found in evidence.categories.values()),
    )
