"""What the triage model reads: text features of canonical text and the rules' evidence.

Two blocks of text features, each weighted by TF-IDF (sublinear term frequency) and scaled
to unit length on its own, so that neither drowns the other: character n-grams ("c:"), which
read Chinese without segmentation and survive typos and inflections, and words ("w:"; jieba
for Chinese, lemmas for English). Then the rules' evidence for each category (its weighted
score, whether it is decisive, whether the only mentions were negated) and a few signals no
word list carries, times ``rule_feature_scale``: small, because the lexicon was grown from
the training examples and so looks more reliable on them than on a new writer's complaint
(author-group cross-validation chose 0.1 over 0.3).
"""

from __future__ import annotations

from services.policy.model import TriageModel
from services.triage.evidence import RuleEvidence
from services.triage.text import words

# Bump when features() or rule_features() change: the model version must change with them.
FEATURES_VERSION = "5"
CHAR, WORD, RULE = "c:", "w:", "r:"
_SKIP = frozenset(" ,.;:!?。、\n-—()[]\"'")


def example_text(subject: str, text: str) -> str:
    return f"{subject}\n{text}" if subject else text


def features(form: str, settings: TriageModel) -> list[str]:
    """Text features of canonical text: character n-grams ("c:") and word n-grams ("w:")."""
    out: list[str] = []
    squeezed = " ".join(form.split())
    for size in range(settings.char_ngram_min, settings.char_ngram_max + 1):
        if size == 1:  # single Latin letters say nothing
            out.extend(CHAR + char for char in squeezed if not char.isascii() and char not in _SKIP)
            continue
        last = size - 1
        out.extend(
            CHAR + squeezed[start : start + size]
            for start in range(len(squeezed) - last)
            if squeezed[start] not in _SKIP and squeezed[start + last] not in _SKIP
        )
    tokens = words(form)
    for size in range(1, settings.word_ngram_max + 1):
        for start in range(len(tokens) - size + 1):
            out.append(WORD + " ".join(tokens[start : start + size]))
    return out


def rule_feature_names(classes: list[str]) -> list[str]:
    return (
        [f"r:rules {name}" for name in classes]
        + [f"r:rules decisive {name}" for name in classes]
        + [f"r:negated {name}" for name in classes]
        + ["r:severe dissatisfaction", "r:repeated complaint", "r:vulnerable person",
           "r:an amount of money", "r:shouting", "r:angry emoji",
           "r:a question or suggestion"]
    )  # fmt: skip


def rule_features(evidence: RuleEvidence, classes: list[str], scale: float) -> list[float]:
    """The rules' evidence as model features, in rule_feature_names order."""
    found = [evidence.categories.get(name) for name in classes]
    return [
        scale * value
        for value in (
            [min(e.score, 1.0) if e else 0.0 for e in found]
            + [1.0 if e and e.decisive else 0.0 for e in found]
            + [1.0 if e and e.negated and not e.terms else 0.0 for e in found]
            + [
                float(bool(evidence.severe)),
                float(bool(evidence.repeat)),
                float(bool(evidence.vulnerable)),
                float(evidence.money),
                float(evidence.shouting),
                float(evidence.angry_emoji),
                float(evidence.inquiry),
            ]
        )
    ]


def readable(feature: str) -> bool:
    """Words, Chinese character n-grams of two or more, rule evidence: what an agent reads."""
    kind, body = feature[:2], feature[2:]
    if kind == RULE:
        return True
    if kind == WORD:
        return len(body) >= 2 and body not in _STOPWORDS
    return len(body) >= 2 and not body.isascii()


_STOPWORDS = frozenset(
    ["the", "be", "a", "an", "and", "or", "but", "to", "of", "in", "on", "at", "it", "i", "my", "me", "we", "you", "your", "this", "that", "for", "with", "is", "was", "have", "has", "had", "do", "not", "no", "so", "just"]
)  # fmt: skip
