"""Labeled triage examples: the data the triage model is trained from. Policy, like the lexicon.

One JSON object per line (see the README's "Teaching triage" section):
{"id": "...", "channel": "email|social|app", "subject": "...", "text": "...",
 "category": "<primary>", "secondary": "<category or null>", "urgency": "urgent|high|normal", ...}
Other fields (script, tags) are kept for reports and ignored by training.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

UrgencyLabel = Literal["urgent", "high", "normal"]


class LabeledExample(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1)
    channel: Literal["email", "social", "app"] = "email"
    subject: str = ""
    text: str = Field(min_length=1)
    category: str
    secondary: str | None = None
    urgency: UrgencyLabel
    script: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExampleSet:
    path: Path
    rows: tuple[LabeledExample, ...]
    # sha256 of the file's bytes: part of the model version.
    digest: str


class ExamplesError(ValueError):
    """The examples file is unreadable or a row is invalid; the message names the line."""


def parse_examples(path: Path, categories: list[str] | None = None) -> ExampleSet:
    """Read and validate a JSON Lines file of labeled complaints."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ExamplesError(f"cannot read examples file {path}: {exc}") from exc
    rows: list[LabeledExample] = []
    seen: set[str] = set()
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        where = f"examples file {path} line {number}"
        try:
            row = LabeledExample.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ExamplesError(f"{where} is not JSON: {exc}") from exc
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ExamplesError(f"{where} is invalid: {problems}") from exc
        if categories is not None:
            for field, value in (("category", row.category), ("secondary", row.secondary)):
                if value is not None and value not in categories:
                    raise ExamplesError(
                        f"{where}: {field} {value!r} is not a triage category {categories}"
                    )
        if row.id in seen:
            raise ExamplesError(f"{where}: id {row.id!r} appears twice")
        seen.add(row.id)
        rows.append(row)
    return ExampleSet(path, tuple(rows), hashlib.sha256(raw).hexdigest())


_LEVELS = ("normal", "high", "urgent")


def label_problems(rows: Sequence[LabeledExample], urgency_of: dict[str, str]) -> list[str]:
    """Rows whose labels contradict the labeling guide, given each category's urgency
    (categories in precedence order): urgent exactly when an urgent category is present,
    at least the urgency of the categories present, the earlier of two precedence
    categories first, a secondary that is not the primary again. Not a reason to refuse a
    policy (a candidate may change a category's urgency); the bundled examples are tested
    against the bundled policy, and evaluate reports the problems of a labeled file."""
    order = list(urgency_of)
    problems: list[str] = []
    for row in rows:
        present = [row.category, *([row.secondary] if row.secondary else [])]
        needed = max((urgency_of[name] for name in present), key=_LEVELS.index)
        why = []
        if row.secondary == row.category:
            why.append("secondary repeats the category")
        if (needed == "urgent") != (row.urgency == "urgent"):
            why.append(f"urgency {row.urgency} with {'/'.join(present)}")
        elif _LEVELS.index(row.urgency) < _LEVELS.index(needed):
            why.append(f"urgency {row.urgency} below {needed} of {'/'.join(present)}")
        if (
            row.secondary
            and urgency_of[row.secondary] != "normal"
            and order.index(row.secondary) < order.index(row.category)
        ):
            why.append(f"{row.secondary} comes before {row.category}")
        if why:
            problems.append(f"{row.id}: {'; '.join(why)}")
    return problems


def load_examples(path: Path, categories: list[str], minimum: int) -> ExampleSet:
    """Examples fit to train from: every category has at least ``minimum`` of them."""
    examples = parse_examples(path, categories)
    counts = {name: 0 for name in categories}
    for row in examples.rows:
        counts[row.category] += 1
    thin = {name: count for name, count in counts.items() if count < minimum}
    if thin:
        raise ExamplesError(
            f"examples file {path}: categories with fewer than {minimum} examples "
            f"(triage.model.min_examples_per_category): {thin}"
        )
    return examples
