"""Weighted rule evidence for every category, from the policy's lexicon. Pure.

Every category collects the weights of the distinct terms it finds (negated mentions do
not count for negatable categories: safety, legal, severity). A vulnerable person
(a child, an elderly parent, a pregnancy) adds the policy's boost to harm evidence that is
already there: "my toddler nearly swallowed it" is more than "nearly swallowed it".
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.policy import Policy
from services.policy.model import CategoryRule
from services.triage.lexicon import Hit, NegationScope, PreparedText, TermIndex, TermSet

HARM = "product_safety"
# On canonical text (NFKC: full-width ＄ and digits are ASCII already).
_MONEY = re.compile(
    r"(?:nt\$|us\$|\$|¥|￥|€|£|rmb|usd|twd)\s?\d|\d[\d,.]*\s?(?:元|块|塊|dollar|buck|usd|rmb)"
)
_SHOUTING = re.compile(r"[!！?？]{2,}|\b[A-Z]{4,}\b")
_ANGRY = frozenset("😡🤬💢😤🙄👎😠")


@dataclass(frozen=True)
class CategoryEvidence:
    name: str
    score: float
    terms: list[str]  # affirmed, in the order they appear
    negated: list[str] = field(default_factory=list)
    # At least one decisive term (weight >= 1): weak hints, however many, and a vulnerable
    # person on top of them make a strong score but never a decisive one.
    decisive: bool = False


@dataclass(frozen=True)
class RuleEvidence:
    canonical: str  # the text the rules read, for the model to read too
    categories: dict[str, CategoryEvidence]
    severe: list[str]
    repeat: list[str]
    vulnerable: list[str]
    # Signals no word list carries: an amount of money, shouting (!!!, ???, CAPITALS),
    # an angry emoji. The model learns what they mean.
    money: bool = False
    shouting: bool = False
    angry_emoji: bool = False
    inquiry: bool = False

    def score(self, name: str) -> float:
        found = self.categories.get(name)
        return found.score if found else 0.0

    def decisive(self, name: str) -> bool:
        found = self.categories.get(name)
        return found.decisive if found else False


class CompiledLexicon:
    """A policy's term lists, compiled once per policy object."""

    def __init__(self, policy: Policy) -> None:
        rules = policy.triage
        self.scope = NegationScope(rules.negation)
        self.categories: list[tuple[CategoryRule, TermSet, TermSet]] = [
            (rule, TermSet((t, g.weight) for g in rule.evidence for t in g.terms),
             TermSet((t, 1.0) for t in rule.not_terms))
            for rule in rules.categories
        ]  # fmt: skip
        harm = rules.body_harm
        self.body = TermSet((t, 1.0) for t in harm.body)
        self.not_body = TermSet((t, 1.0) for t in harm.not_body)
        self.harm_words = TermSet((t, 1.0) for t in harm.harm)
        self.body_harm_weight = harm.weight
        self.vulnerable = TermSet((t, 1.0) for t in rules.vulnerable.terms)
        self.vulnerable_boost = rules.vulnerable.boost
        self.weak_cap = rules.model.weak_evidence_cap
        self.severity = TermSet((t, 1.0) for t in rules.severity.terms)
        self.repeat = TermSet((t, 1.0) for t in rules.repeat.terms)
        self.inquiry = TermSet((t, 1.0) for t in rules.inquiry.terms)
        self.index = TermIndex([
            *(terms for _, terms, _ in self.categories),
            *(excluded for _, _, excluded in self.categories), self.body, self.not_body,
            self.harm_words, self.vulnerable, self.severity, self.repeat, self.inquiry,
            *self.scope.term_sets,
        ])  # fmt: skip

    def _affirmed(self, prepared: PreparedText, terms: TermSet, negatable: bool) -> list[Hit]:
        hits = terms.hits(prepared)
        return self.scope.mark(prepared, hits) if negatable else hits

    def _body_harm(self, prepared: PreparedText) -> list[str]:
        """ "<body part> … <harm word>" for each pair found in one clause, harm not negated."""
        bodies = _outside(self.body.hits(prepared), self.not_body.hits(prepared))
        if not bodies:
            return []
        harms = [hit for hit in self._affirmed(prepared, self.harm_words, True) if not hit.negated]
        starts = prepared.clause_starts
        pairs: list[str] = []
        for body in bodies:
            clause = bisect.bisect_right(starts, body.start)
            for harm in harms:
                apart = harm.end <= body.start or harm.start >= body.end
                if apart and bisect.bisect_right(starts, harm.start) == clause:
                    first, second = sorted((body, harm), key=lambda hit: hit.start)
                    source = prepared.source
                    pairs.append(
                        f"{source.source(first.start, first.end)} … "
                        f"{source.source(second.start, second.end)}"
                    )
        return list(dict.fromkeys(pairs))

    def evidence(self, text: str) -> RuleEvidence:
        prepared = self.scope.prepare(text, self.index)
        found: dict[str, CategoryEvidence] = {}
        vulnerable = _distinct(prepared, self.vulnerable.hits(prepared))
        for rule, terms, excluded in self.categories:
            hits = _outside(terms.hits(prepared), excluded.hits(prepared))
            if rule.negatable:
                hits = self.scope.mark(prepared, hits)
            weights: dict[str, float] = {}
            surface: dict[str, str] = {}  # policy term -> the customer's words
            for hit in hits:
                if not hit.negated:
                    weights[hit.term] = max(weights.get(hit.term, 0.0), hit.weight)
                    surface.setdefault(hit.term, prepared.source.source(hit.start, hit.end))
            negated = _distinct(prepared, (h for h in hits if h.negated and h.term not in weights))
            if rule.name == HARM:
                for pair in self._body_harm(prepared):
                    weights[pair] = self.body_harm_weight
                    surface[pair] = pair
            strong = sum(w for w in weights.values() if w >= 1.0)
            weak = sum(w for w in weights.values() if w < 1.0)
            score = strong + min(weak, self.weak_cap)
            if rule.name == HARM and score > 0 and vulnerable:
                score += self.vulnerable_boost
            if score or negated:
                words = list(dict.fromkeys(surface.values()))
                found[rule.name] = CategoryEvidence(rule.name, score, words, negated, strong >= 1.0)
        severe = _distinct(
            prepared, (h for h in self._affirmed(prepared, self.severity, True) if not h.negated)
        )
        repeat = _distinct(prepared, self.repeat.hits(prepared))
        original = prepared.source.original
        return RuleEvidence(
            prepared.text, found, severe, repeat, vulnerable,
            money=bool(_MONEY.search(prepared.text)),
            shouting=bool(_SHOUTING.search(original)),
            angry_emoji=any(char in _ANGRY for char in original),
            inquiry=bool(self.inquiry.hits(prepared)),
        )  # fmt: skip


def _outside(hits: list[Hit], excluded: list[Hit]) -> list[Hit]:
    """The hits that do not start inside an excluded phrase."""
    if not excluded:
        return hits
    spans = [(hit.start, hit.end) for hit in excluded]
    return [hit for hit in hits if not any(start <= hit.start < end for start, end in spans)]


def _distinct(prepared: PreparedText, hits: Iterable[Hit]) -> list[str]:
    """The customer's words for each distinct term found."""
    seen: dict[str, str] = {}
    for hit in hits:
        seen.setdefault(hit.term, prepared.source.source(hit.start, hit.end))
    return list(dict.fromkeys(seen.values()))


_lock = threading.Lock()
_compiled: dict[int, tuple[Policy, CompiledLexicon]] = {}


def lexicon_for(policy: Policy) -> CompiledLexicon:
    """The compiled lexicon of this policy object (a reloaded policy compiles anew)."""
    key = id(policy)
    cached = _compiled.get(key)
    if cached is not None and cached[0] is policy:
        return cached[1]
    with _lock:
        compiled = CompiledLexicon(policy)
        if len(_compiled) >= 8:
            _compiled.clear()
        _compiled[key] = (policy, compiled)
        return compiled
