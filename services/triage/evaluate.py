"""Measure triage on labeled complaints before shipping a change.

    python -m services.triage.evaluate LABELED.jsonl [--policy candidate.toml]
        [--errors] [--cross-validate K] [--min-category 0.90 --min-urgency 0.95
         --min-urgent-recall 1.0 --min-urgent-precision 0.85]

Prints category and urgency accuracy, per-category precision and recall, urgent recall and
precision, and a confusion matrix. Only aggregates by default: `--errors` lists the
mistakes (don't use it on a held-out set you want to keep honest). `--cross-validate K`
evaluates the policy's own examples instead: K stratified folds, each decided by a model
trained on the other folds (the rules are the policy's). With `--min-*` the command exits 1
when a figure is below its floor, so CI can gate on it.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from services.policy import Policy, PolicyError, load_policy
from services.policy.examples import ExamplesError, LabeledExample, parse_examples
from services.policy.model import DEFAULT_POLICY_FILE
from services.triage.categorise import categorise
from services.triage.classifier import TriageClassifier, example_text, train
from services.triage.rules import CaseFacts, decide

RECEIVED = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Taipei"))
URGENT = "urgent"


@dataclass(frozen=True)
class Outcome:
    row: LabeledExample
    category: str
    urgency: str
    secondary: str | None
    reason: str


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def _share(self, hits: int, total: int) -> float:
        return hits / total if total else 1.0

    @property
    def category_accuracy(self) -> float:
        return self._share(sum(o.category == o.row.category for o in self.outcomes), len(self))

    @property
    def urgency_accuracy(self) -> float:
        return self._share(sum(o.urgency == o.row.urgency for o in self.outcomes), len(self))

    @property
    def urgent_recall(self) -> float:
        labelled = [o for o in self.outcomes if o.row.urgency == URGENT]
        return self._share(sum(o.urgency == URGENT for o in labelled), len(labelled))

    @property
    def urgent_precision(self) -> float:
        flagged = [o for o in self.outcomes if o.urgency == URGENT]
        return self._share(sum(o.row.urgency == URGENT for o in flagged), len(flagged))

    def __len__(self) -> int:
        return len(self.outcomes)

    def lines(self, categories: list[str], errors: bool = False) -> list[str]:
        scripts = Counter(o.row.script or "unknown" for o in self.outcomes)
        out = [
            f"{len(self)} labeled complaints ({', '.join(f'{k} {v}' for k, v in sorted(scripts.items()))})"
        ]
        n_cat = sum(o.category == o.row.category for o in self.outcomes)
        n_urg = sum(o.urgency == o.row.urgency for o in self.outcomes)
        labelled = sum(o.row.urgency == URGENT for o in self.outcomes)
        flagged = sum(o.urgency == URGENT for o in self.outcomes)
        both = sum(o.urgency == URGENT and o.row.urgency == URGENT for o in self.outcomes)
        out += [
            f"category accuracy  {self.category_accuracy:.3f} ({n_cat}/{len(self)})",
            f"urgency accuracy   {self.urgency_accuracy:.3f} ({n_urg}/{len(self)})",
            f"urgent recall      {self.urgent_recall:.3f} ({both}/{labelled})",
            f"urgent precision   {self.urgent_precision:.3f} ({both}/{flagged})",
            "",
            f"{'category':<17}{'precision':>10}{'recall':>8}{'labeled':>9}{'decided':>9}",
        ]
        for name in categories:
            labeled = [o for o in self.outcomes if o.row.category == name]
            decided = [o for o in self.outcomes if o.category == name]
            right = sum(o.row.category == name for o in decided)
            out.append(
                f"{name:<17}{self._share(right, len(decided)):>10.2f}"
                f"{self._share(right, len(labeled)):>8.2f}{len(labeled):>9}{len(decided):>9}"
            )
        out += ["", f"{'script':<17}{'category':>10}{'urgency':>9}{'rows':>6}"]
        for script in sorted(scripts):
            rows = [o for o in self.outcomes if (o.row.script or "unknown") == script]
            cat = sum(o.category == o.row.category for o in rows) / len(rows)
            urg = sum(o.urgency == o.row.urgency for o in rows) / len(rows)
            out.append(f"{script:<17}{cat:>10.2f}{urg:>9.2f}{len(rows):>6}")
        out += ["", "urgency (rows: labeled, columns: decided)"]
        levels = ["urgent", "high", "normal"]
        out.append(" " * 8 + "".join(f"{level:>8}" for level in levels))
        for level in levels:
            counts = Counter(o.urgency for o in self.outcomes if o.row.urgency == level)
            out.append(f"{level:<8}" + "".join(f"{counts[c]:>8}" for c in levels))
        out += ["", "category confusion (rows: labeled, columns: decided)"]
        short = [name[:6] for name in categories]
        out.append(" " * 17 + "".join(f"{s:>7}" for s in short))
        for name in categories:
            counts = Counter(o.category for o in self.outcomes if o.row.category == name)
            out.append(f"{name:<17}" + "".join(f"{counts[c]:>7}" for c in categories))
        if errors:
            out += ["", "mistakes:"]
            for o in self.outcomes:
                if o.category != o.row.category or o.urgency != o.row.urgency:
                    text = example_text(o.row.subject, o.row.text).replace("\n", " ")[:140]
                    out.append(
                        f"  {o.row.id}: labeled {o.row.category}/{o.row.urgency}, decided "
                        f"{o.category}/{o.urgency} ({o.reason}) :: {text}"
                    )
        return out


def evaluate(rows: Sequence[LabeledExample], policy: Policy) -> Report:
    """Decide every row under the policy, exactly as the service would (no customer facts)."""
    report = Report()
    for row in rows:
        decision = decide(CaseFacts(row.id, row.channel, RECEIVED, row.subject, row.text), policy)
        reason = " | ".join(decision.reasons[:2])
        report.outcomes.append(
            Outcome(row, decision.category, decision.urgency, decision.secondary_category, reason)
        )
    return report


def cross_validate(
    policy: Policy, folds: int, progress: Callable[[int], None] | None = None
) -> Report:
    """K stratified folds of the policy's examples, each decided by a model trained without it."""
    from sklearn.model_selection import StratifiedKFold

    examples = policy.triage_examples
    if examples is None:
        raise ValueError("the policy has no examples")
    rows = list(examples.rows)
    report = Report()
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    for fold, (train_index, test_index) in enumerate(
        splitter.split(rows, [row.category for row in rows])
    ):
        model: TriageClassifier = train([rows[i] for i in train_index], policy, f"fold{fold}")
        for i in test_index:
            row = rows[i]
            found = categorise(example_text(row.subject, row.text), policy, model)
            report.outcomes.append(
                Outcome(
                    row,
                    found.category,
                    found.urgency,
                    found.secondary,
                    " | ".join(found.reasons[:2]),
                )
            )
        if progress:
            progress(fold)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure triage on labeled complaints.")
    parser.add_argument("labeled", type=Path, nargs="?", help="JSON Lines of labeled complaints")
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY_FILE)
    parser.add_argument("--errors", action="store_true", help="list every mistake")
    parser.add_argument("--cross-validate", type=int, metavar="K", default=0)
    parser.add_argument("--min-category", type=float, default=0.0)
    parser.add_argument("--min-urgency", type=float, default=0.0)
    parser.add_argument("--min-urgent-recall", type=float, default=0.0)
    parser.add_argument("--min-urgent-precision", type=float, default=0.0)
    args = parser.parse_args(argv)
    try:
        policy = load_policy(args.policy)
        if args.cross_validate:
            report = cross_validate(policy, args.cross_validate)
            source = f"{args.cross_validate}-fold cross-validation of the policy's examples"
        elif args.labeled:
            report = evaluate(
                parse_examples(args.labeled, policy.triage.category_names).rows, policy
            )
            source = str(args.labeled)
        else:
            parser.error("give a labeled file or --cross-validate K")
    except (PolicyError, ExamplesError) as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"policy {policy.version}, {source}")
    print("\n".join(report.lines(policy.triage.category_names, args.errors)))
    floors = {
        "category accuracy": (report.category_accuracy, args.min_category),
        "urgency accuracy": (report.urgency_accuracy, args.min_urgency),
        "urgent recall": (report.urgent_recall, args.min_urgent_recall),
        "urgent precision": (report.urgent_precision, args.min_urgent_precision),
    }
    below = [f"{name} {value:.3f} < {floor:.3f}" for name, (value, floor) in floors.items()
             if value < floor]  # fmt: skip
    if below:
        print("BELOW THE FLOOR: " + "; ".join(below))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
