"""The statistical second signal: a linear classifier trained from the policy's examples.

Features are character n-grams and words (jieba for Chinese, lemmas for English) of the
canonical text, weighted by TF-IDF, plus the rules' evidence for each category (its weighted
score, whether it is decisive, whether the only mentions were negated). The model learns
from the examples how far to trust each kind of rule evidence next to the words: a weak
"box" says little about delivery, a decisive "charged twice" a lot about billing. It is
scikit-learn's logistic regression with a deterministic solver, so the same examples,
lexicon and settings always give the same model. It trains in a second or two, when triage
first needs the policy, and is cached by content: the model version is a hash of the
examples file, the triage rules, the settings and the feature code, so a reload that changed
none of them reuses the trained model.

Inference does not go through scikit-learn: the fitted vocabulary, IDF weights and
coefficients are copied into plain arrays and applied directly, which costs tens of
microseconds per complaint instead of scikit-learn's per-call validation, and gives the
per-feature contributions that explain a decision in `reasons`.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from services.policy import Policy
from services.policy.examples import LabeledExample
from services.policy.model import TriageModel, TriagePolicy
from services.triage.evidence import RuleEvidence, lexicon_for
from services.triage.text import words

# Bump when features() changes: the model version must change with it.
FEATURES_VERSION = "4"
_SKIP = frozenset(" ,.;:!?。、\n-—()[]\"'")


def example_text(subject: str, text: str) -> str:
    return f"{subject}\n{text}" if subject else text


def features(form: str, settings: TriageModel) -> list[str]:
    """Features of canonical text: character n-grams ("c:") and word n-grams ("w:")."""
    out: list[str] = []
    squeezed = " ".join(form.split())
    for size in range(settings.char_ngram_min, settings.char_ngram_max + 1):
        for start in range(len(squeezed) - size + 1):
            gram = squeezed[start : start + size]
            if gram[0] in _SKIP or gram[-1] in _SKIP:
                continue
            if size == 1 and gram.isascii():
                continue  # single Latin letters say nothing
            out.append("c:" + gram)
    tokens = words(form)
    for size in range(1, settings.word_ngram_max + 1):
        for start in range(len(tokens) - size + 1):
            out.append("w:" + " ".join(tokens[start : start + size]))
    return out


@dataclass(frozen=True)
class Prediction:
    probabilities: dict[str, float]
    # Probability that a complaint of a normal-urgency category is severe (high urgency).
    severe: float
    # Per-feature contributions, explained on demand (most decisions need two categories).
    classes: list[str]
    model: TriageClassifier
    columns: NDArray[np.int_]
    contributions: NDArray[np.float64]
    severe_contributions: NDArray[np.float64]

    def best(self) -> tuple[str, float]:
        name = max(self.probabilities, key=self.probabilities.__getitem__)
        return name, self.probabilities[name]

    def explain(self, name: str, count: int) -> list[str]:
        """The readable features that pushed most towards category ``name``."""
        if name not in self.classes:
            return []
        names = self.model.vocabulary_names(self.columns)
        return _top(names, self.contributions[self.classes.index(name)], count)

    def explain_severe(self, count: int) -> list[str]:
        return _top(self.model.vocabulary_names(self.columns), self.severe_contributions, count)


class TriageClassifier:
    """A fitted model as plain arrays: vocabulary, IDF, coefficients, intercepts."""

    def __init__(
        self,
        version: str,
        settings: TriageModel,
        classes: list[str],
        vocabulary: dict[str, int],
        idf: NDArray[np.float64],
        coef: NDArray[np.float64],
        intercept: NDArray[np.float64],
        severe_coef: NDArray[np.float64],
        severe_intercept: float,
    ) -> None:
        self.version = version
        self.settings = settings
        self.classes = classes
        self.vocabulary = vocabulary  # text features; rule features follow them
        self.idf = idf
        self.coef = coef
        self.intercept = intercept
        self.severe_coef = severe_coef
        self.severe_intercept = severe_intercept
        self.rule_names = rule_feature_names(classes)

    def predict(self, evidence: RuleEvidence) -> Prediction:
        """Category probabilities for text whose rule evidence is ``evidence``."""
        counts = Counter(features(evidence.canonical, self.settings))
        index: list[int] = []
        values: list[float] = []
        for feature, count in counts.items():
            column = self.vocabulary.get(feature)
            if column is not None:
                index.append(column)
                values.append((1.0 + math.log(count)) * float(self.idf[column]))
        weights = np.array(values)
        if index:
            weights /= np.linalg.norm(weights)
        rules = rule_features(evidence, self.classes, self.settings.rule_feature_scale)
        offset = len(self.vocabulary)
        columns = np.array(index + [offset + i for i in range(len(rules))], dtype=int)
        values_all = np.concatenate([weights, np.array(rules)])
        contributions = self.coef[:, columns] * values_all
        scores = contributions.sum(axis=1) + self.intercept
        severe_parts = self.severe_coef[columns] * values_all
        severe = 1.0 / (1.0 + math.exp(-(float(severe_parts.sum()) + self.severe_intercept)))
        exp = np.exp(scores - scores.max())
        probabilities = exp / exp.sum()
        return Prediction(
            {name: float(p) for name, p in zip(self.classes, probabilities, strict=True)},
            severe,
            self.classes,
            self,
            columns,
            contributions,
            severe_parts,
        )

    def vocabulary_names(self, columns: NDArray[np.int_]) -> list[str]:
        if not hasattr(self, "_names"):
            names = [""] * len(self.vocabulary)
            for feature, column in self.vocabulary.items():
                names[column] = feature
            self._names = names + self.rule_names
        return [self._names[int(column)] for column in columns]


def _top(names: list[str], contributions: NDArray[np.float64], count: int) -> list[str]:
    """The readable features that contributed most, none contained in another."""
    chosen: list[str] = []
    for position in np.argsort(-contributions):
        if contributions[position] <= 0 or len(chosen) >= count:
            break
        readable = names[position][2:]
        if not _readable(names[position]) or any(
            readable in kept or kept in readable for kept in chosen
        ):
            continue
        chosen.append(readable)
    return chosen


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


def _readable(feature: str) -> bool:
    """Words, Chinese character n-grams of two or more, rule evidence: what an agent reads."""
    kind, body = feature[:2], feature[2:]
    if kind == "r:":
        return True
    if kind == "w:":
        return len(body) >= 2 and body not in _STOPWORDS
    return len(body) >= 2 and not body.isascii()


_STOPWORDS = frozenset(
    [
        "the",
        "be",
        "a",
        "an",
        "and",
        "or",
        "but",
        "to",
        "of",
        "in",
        "on",
        "at",
        "it",
        "i",
        "my",
        "me",
        "we",
        "you",
        "your",
        "this",
        "that",
        "for",
        "with",
        "is",
        "was",
        "have",
        "has",
        "had",
        "do",
        "not",
        "no",
        "so",
        "just",
    ]
)


def model_version(digest: str, rules: TriagePolicy) -> str:
    """Hash of what the model is made from: examples, lexicon, settings, feature code."""
    key = json.dumps(
        [
            digest,
            rules.model_dump(mode="json", include={"categories", "body_harm", "vulnerable", "severity", "inquiry",
                                                   "repeat", "negation", "model"}),
            FEATURES_VERSION,
            sklearn.__version__,
        ],
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(key.encode()).hexdigest()[:10]


def train(rows: Sequence[LabeledExample], policy: Policy, version: str) -> TriageClassifier:
    """Fit the model on labeled rows (deterministic: same rows and policy, same model)."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    settings = policy.triage.model
    classes = policy.triage.category_names
    lexicon = lexicon_for(policy)
    evidence = [lexicon.evidence(example_text(r.subject, r.text)) for r in rows]
    vectorizer = TfidfVectorizer(
        analyzer=lambda form: features(form, settings), sublinear_tf=True, dtype=np.float64
    )
    text_matrix = vectorizer.fit_transform([found.canonical for found in evidence])
    rule_matrix = csr_matrix(
        np.array([rule_features(found, classes, settings.rule_feature_scale) for found in evidence])
    )
    matrix = hstack([text_matrix, rule_matrix]).tocsr()
    labels = [row.category for row in rows]
    model = LogisticRegression(
        C=settings.c,
        class_weight="balanced" if settings.class_weight == "balanced" else None,
        max_iter=3000,
        solver="lbfgs",
    )
    # One BLAS thread: on a busy two-core machine more threads make the fit several times
    # slower, and the result is the same.
    weights = [settings.urgent_weight if row.urgency == "urgent" else 1.0 for row in rows]
    with threadpool_limits(1):
        model.fit(matrix, labels, sample_weight=weights)
    fitted = [str(name) for name in model.classes_]
    # Categories without examples (allowed only by a policy that wants them) never win.
    coef = np.full((len(classes), matrix.shape[1]), 0.0)
    intercept = np.full(len(classes), -50.0)
    if len(fitted) < 3:
        raise ValueError(f"need examples of at least three categories, got {fitted}")
    for row, name in enumerate(fitted):
        coef[classes.index(name)] = model.coef_[row]
        intercept[classes.index(name)] = model.intercept_[row]
    severe_coef, severe_intercept = _fit_severity(matrix, rows, policy)
    vocabulary = {str(k): int(v) for k, v in vectorizer.vocabulary_.items()}
    return TriageClassifier(
        version, settings, classes, vocabulary, np.asarray(vectorizer.idf_), coef, intercept,
        severe_coef, severe_intercept,
    )  # fmt: skip


def _fit_severity(
    matrix: Any, rows: Sequence[LabeledExample], policy: Policy
) -> tuple[NDArray[np.float64], float]:
    """A binary model of "high" among complaints whose category alone is normal urgency:
    fury, sarcasm, "never again", a complaint repeated. Never fires without examples."""
    from sklearn.linear_model import LogisticRegression

    normal = {rule.name for rule in policy.triage.categories if rule.urgency == "normal"}
    normal.add(policy.triage.default_category)
    index = [i for i, row in enumerate(rows) if row.category in normal]
    labels = [rows[i].urgency == "high" for i in index]
    if len(set(labels)) < 2:
        return np.zeros(matrix.shape[1]), -50.0
    model = LogisticRegression(C=policy.triage.model.c, class_weight="balanced", max_iter=3000)
    with threadpool_limits(1):
        model.fit(matrix[index], labels)
    return np.asarray(model.coef_[0], dtype=np.float64), float(model.intercept_[0])


_lock = threading.Lock()
_trained: dict[str, TriageClassifier] = {}
# The model version of a policy object (hashing the rules costs more than a decision).
_versions: dict[int, tuple[Policy | None, str]] = {}


def classifier_for(policy: Policy) -> TriageClassifier:
    """The policy's model, trained on first use and cached by model version."""
    examples = policy.triage_examples
    if examples is None:
        raise ValueError("the policy has no triage examples (load it with load_policy)")
    version = _versions.get(id(policy), (None, ""))
    if version[0] is not policy:
        version = (policy, model_version(examples.digest, policy.triage))
        if len(_versions) >= 8:
            _versions.clear()
        _versions[id(policy)] = version
    return _classifier(policy, version[1])


def _classifier(policy: Policy, version: str) -> TriageClassifier:
    examples = policy.triage_examples
    assert examples is not None
    found = _trained.get(version)
    if found is not None:
        return found
    with _lock:
        found = _trained.get(version)
        if found is None:
            found = train(examples.rows, policy, version)
            if len(_trained) >= 4:
                _trained.clear()
            _trained[version] = found
        return found
