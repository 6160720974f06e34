"""The statistical signal: linear models trained from the policy's labeled examples.

Three heads read the same features (``features.py``: character n-grams, words, the rules'
evidence):
- **category**: multinomial logistic regression over every category;
- **urgent**: a binary model of "urgent" (safety or legal present, also as a secondary issue),
  because missing one is the costliest mistake: urgency is decided on its own, not only as
  a by-product of the most probable category;
- **severe**: a binary model of "high" among complaints whose categories alone are normal
  urgency (fury, sarcasm, "never again", a complaint repeated).
All are scikit-learn's logistic regression with a deterministic solver and balanced class
weights, so the same examples, lexicon and settings always give the same model. They train
in a few seconds, when triage first needs the policy, and are cached by content: the model
version is a hash of the examples file, the triage rules, the settings and the feature code.

Inference does not go through scikit-learn: the fitted vocabulary, IDF weights and
coefficients are copied into plain arrays and applied directly, which costs tens of
microseconds per complaint, and gives the per-feature contributions that explain a decision
in ``reasons``.
"""

from __future__ import annotations

import asyncio
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
from services.triage.features import (
    FEATURES_VERSION,
    WORD,
    example_text,
    features,
    readable,
    rule_feature_names,
    rule_features,
)

__all__ = [
    "Prediction",
    "TriageClassifier",
    "classifier_for",
    "ensure_trained",
    "example_text",
    "is_trained",
    "train",
]


def _sigmoid(score: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, score))))


@dataclass(frozen=True)
class Prediction:
    probabilities: dict[str, float]
    # Probability of "urgent": the mean of the urgent head's and the category head's (the
    # summed probability of the urgent categories); two views of one question agree better
    # than either alone (author-group cross-validation).
    urgent: float
    # Probability that a complaint of normal-urgency categories is severe (high urgency).
    severe: float
    classes: list[str]
    model: TriageClassifier
    columns: NDArray[np.int_]
    # Per-feature contributions (rows: categories, then urgent, then severe).
    contributions: NDArray[np.float64]

    def best(self) -> tuple[str, float]:
        name = max(self.probabilities, key=self.probabilities.__getitem__)
        return name, self.probabilities[name]

    def explain(self, name: str, count: int) -> list[str]:
        """The readable features that pushed most towards category ``name``."""
        if name not in self.classes:
            return []
        return self._top(self.classes.index(name), count)

    def explain_urgent(self, count: int) -> list[str]:
        return self._top(len(self.classes), count)

    def explain_severe(self, count: int) -> list[str]:
        return self._top(len(self.classes) + 1, count)

    def _top(self, row: int, count: int) -> list[str]:
        """The readable features that contributed most, none contained in another."""
        contributions = self.contributions[row]
        chosen: list[str] = []
        for position in np.argsort(-contributions):
            if contributions[position] <= 0 or len(chosen) >= count:
                break
            name = self.model.feature_name(int(self.columns[position]))
            text = name[2:]
            if not readable(name) or any(text in kept or kept in text for kept in chosen):
                continue
            chosen.append(text)
        return chosen


class TriageClassifier:
    """Fitted models as plain arrays: vocabulary, IDF, and each head's coefficients."""

    def __init__(
        self,
        version: str,
        settings: TriageModel,
        classes: list[str],
        urgent_classes: list[str],
        vocabulary: dict[str, int],
        idf: NDArray[np.float64],
        coef: NDArray[np.float64],
        intercept: NDArray[np.float64],
        floors: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        """``coef``/``intercept``: one row per category, then the urgent and severe heads."""
        self.version = version
        self.settings = settings
        self.classes = classes
        self.urgent_index = [classes.index(name) for name in urgent_classes]
        self.vocabulary = vocabulary  # text features; rule features follow them
        # Word features come after character features (the vocabulary is sorted).
        self.word_start = min(
            (column for feature, column in vocabulary.items() if feature.startswith(WORD)),
            default=len(vocabulary),
        )
        self.idf = idf
        self.coef = coef
        self.intercept = intercept
        self.rule_names = rule_feature_names(classes)
        self.char_floor, self.word_floor = floors

    def predict(self, evidence: RuleEvidence) -> Prediction:
        """Probabilities for text whose rule evidence is ``evidence``."""
        counts = Counter(features(evidence.canonical, self.settings))
        index: list[int] = []
        seen: list[int] = []
        lookup = self.vocabulary.get
        for feature, count in counts.items():
            column = lookup(feature)
            if column is not None:
                index.append(column)
                seen.append(count)
        # Sublinear TF times IDF, as the vectorizer computed it in training, in one step.
        columns_text = np.array(index, dtype=int)
        weights = (1.0 + np.log(np.array(seen, dtype=np.float64))) * self.idf[columns_text]
        words = columns_text >= self.word_start
        # Each block has unit length, or less for a short text (see _unit).
        for block, floor in ((~words, self.char_floor), (words, self.word_floor)):
            norm = max(float(np.linalg.norm(weights[block])), floor)
            if norm:
                weights[block] /= norm
        rules = rule_features(evidence, self.classes, self.settings.rule_feature_scale)
        offset = len(self.vocabulary)
        columns = np.concatenate([columns_text, offset + np.arange(len(rules))]).astype(int)
        values_all = np.concatenate([weights, np.array(rules)])
        contributions = self.coef[:, columns] * values_all
        scores = contributions.sum(axis=1) + self.intercept
        count = len(self.classes)
        category = scores[:count]
        exp = np.exp(category - category.max())
        probabilities = exp / exp.sum()
        urgent_sum = float(probabilities[self.urgent_index].sum())
        urgent = (urgent_sum + _sigmoid(float(scores[count]))) / 2
        return Prediction(
            {name: float(p) for name, p in zip(self.classes, probabilities, strict=True)},
            urgent,
            _sigmoid(float(scores[count + 1])),
            self.classes,
            self,
            columns,
            contributions,
        )

    def feature_name(self, column: int) -> str:
        """The feature a column stands for (text features, then rule features)."""
        if not hasattr(self, "_names"):
            names = [""] * len(self.vocabulary)
            for feature, number in self.vocabulary.items():
                names[number] = feature
            self._names = names + self.rule_names
        return self._names[column]


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


def _design(rows: Sequence[LabeledExample], policy: Policy) -> tuple[Any, Any, tuple[float, float]]:
    """The feature matrix of labeled rows (as predict() builds it), the fitted vectorizer
    and the short-text floors of the character and word blocks."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer

    settings = policy.triage.model
    classes = policy.triage.category_names
    lexicon = lexicon_for(policy)
    evidence = [lexicon.evidence(example_text(r.subject, r.text)) for r in rows]
    vectorizer = TfidfVectorizer(
        analyzer=lambda form: features(form, settings),
        sublinear_tf=True,
        norm=None,
        dtype=np.float64,
    )
    text = vectorizer.fit_transform([found.canonical for found in evidence]).tocsc()
    split = min(
        (column for feature, column in vectorizer.vocabulary_.items() if feature.startswith(WORD)),
        default=text.shape[1],
    )
    chars, char_floor = _unit(text[:, :split], settings.short_text_share)
    words, word_floor = _unit(text[:, split:], settings.short_text_share)
    rules = csr_matrix(
        np.array([rule_features(found, classes, settings.rule_feature_scale) for found in evidence])
    )
    return hstack([chars, words, rules]).tocsr(), vectorizer, (char_floor, word_floor)


def _unit(block: Any, share: float) -> tuple[Any, float]:
    """Rows scaled to unit length, except that a row shorter than ``share`` of the median
    row's length is divided by that instead: a short text ("請盡快處理") carries less
    evidence, and unit length would make each of its few words weigh as much as a long
    complaint's whole vocabulary. Returns the scaled block and that floor."""
    from scipy.sparse import diags

    norms = np.sqrt(np.asarray(block.multiply(block).sum(axis=1)).ravel())
    floor = share * float(np.median(norms)) if len(norms) else 0.0
    scale = np.divide(1.0, np.maximum(norms, floor), out=np.zeros_like(norms), where=norms > 0)
    return diags(scale) @ block, floor


def _fit(matrix: Any, labels: list[Any], c: float, weights: list[float] | None = None) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, solver="lbfgs")
    # One BLAS thread: on a busy two-core machine more threads make the fit several times
    # slower, and the result is the same.
    with threadpool_limits(1):
        model.fit(matrix, labels, sample_weight=weights)
    return model


def train(rows: Sequence[LabeledExample], policy: Policy, version: str) -> TriageClassifier:
    """Fit every head on labeled rows (deterministic: same rows and policy, same model)."""
    settings = policy.triage.model
    classes = policy.triage.category_names
    urgency_of = {rule.name: rule.urgency for rule in policy.triage.categories}
    matrix, vectorizer, floors = _design(rows, policy)
    width = matrix.shape[1]
    coef = np.zeros((len(classes) + 2, width))
    # Categories without examples (allowed only by a policy that wants them) never win.
    intercept = np.full(len(classes) + 2, -50.0)

    weights = [settings.urgent_weight if row.urgency == "urgent" else 1.0 for row in rows]
    model = _fit(matrix, [row.category for row in rows], settings.c, weights)
    fitted = [str(name) for name in model.classes_]
    if len(fitted) < 3:
        raise ValueError(f"need examples of at least three categories, got {fitted}")
    for row, name in enumerate(fitted):
        coef[classes.index(name)] = model.coef_[row]
        intercept[classes.index(name)] = model.intercept_[row]

    # Each binary head never fires without examples of both answers.
    urgent = [row.urgency == "urgent" for row in rows]
    if len(set(urgent)) == 2:
        head = _fit(matrix, urgent, settings.c)
        coef[len(classes)], intercept[len(classes)] = head.coef_[0], head.intercept_[0]
    normal = [
        i for i, row in enumerate(rows)
        if all(urgency_of.get(name, "normal") == "normal" for name in (row.category, row.secondary) if name)
    ]  # fmt: skip
    severe = [rows[i].urgency == "high" for i in normal]
    if len(set(severe)) == 2:
        head = _fit(matrix[normal], severe, settings.c)
        coef[len(classes) + 1], intercept[len(classes) + 1] = head.coef_[0], head.intercept_[0]

    vocabulary = {str(k): int(v) for k, v in vectorizer.vocabulary_.items()}
    urgent_classes = [name for name in classes if urgency_of.get(name) == "urgent"]
    return TriageClassifier(
        version, settings, classes, urgent_classes, vocabulary, np.asarray(vectorizer.idf_),
        coef, intercept, floors,
    )  # fmt: skip


_lock = threading.Lock()
_trained: dict[str, TriageClassifier] = {}
# The model version of a policy object (hashing the rules costs more than a decision).
_versions: dict[int, tuple[Policy | None, str]] = {}


def classifier_for(policy: Policy) -> TriageClassifier:
    """The policy's model, trained on first use and cached by model version."""
    if policy.triage_examples is None:
        raise ValueError("the policy has no triage examples (load it with load_policy)")
    return _classifier(policy, _model_version(policy))


def _model_version(policy: Policy) -> str:
    examples = policy.triage_examples
    assert examples is not None
    version = _versions.get(id(policy), (None, ""))
    if version[0] is not policy:
        version = (policy, model_version(examples.digest, policy.triage))
        if len(_versions) >= 8:
            _versions.clear()
        _versions[id(policy)] = version
    return version[1]


def is_trained(policy: Policy) -> bool:
    """Whether ``policy``'s model is ready (deciding with it will not train)."""
    return policy.triage_examples is not None and _model_version(policy) in _trained


async def ensure_trained(policy: Policy) -> None:
    """Train ``policy``'s model, if needed, in a worker thread: training takes seconds of
    CPU, and a service must keep heartbeating its consumer group and answering probes."""
    if not is_trained(policy):
        await asyncio.to_thread(classifier_for, policy)


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
