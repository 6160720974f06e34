"""Measure triage on labeled complaints before shipping a change.

    python -m services.triage.evaluate LABELED.jsonl [--policy candidate.toml]
        [--errors] [--cross-validate K | --by-author [GROUPS]] [--min-category 0.90 --min-urgency 0.95
         --min-urgent-recall 1.0 --min-urgent-precision 0.85]

Prints category and urgency accuracy, per-category precision and recall, urgent recall and
precision, and a confusion matrix. Only aggregates by default: `--errors` lists the
mistakes (don't use it on a held-out set you want to keep honest). `--cross-validate K`
evaluates the policy's own examples instead: K stratified folds, each decided by a model
trained on the other folds (the rules are the policy's). `--by-author [GROUPS]` is the
stricter check: each author group (the id's prefix, e.g. "xa" for "xa-0001") is decided by a
model trained on the other writers' examples, which measures what matters for new
customers: generalising to a writer the model has never read. With `--min-*` the command exits 1
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
from services.policy.examples import ExamplesError, LabeledExample, label_problems, parse_examples
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


def _policy_rows(policy: Policy) -> list[LabeledExample]:
    examples = policy.triage_examples
    if examples is None:
        raise ValueError("the policy has no examples")
    return list(examples.rows)


def _decide_with(model: TriageClassifier, rows: Sequence[LabeledExample], policy: Policy) -> Report:
    report = Report()
    for row in rows:
        found = categorise(example_text(row.subject, row.text), policy, model)
        reason = " | ".join(found.reasons[:2])
        report.outcomes.append(Outcome(row, found.category, found.urgency, found.secondary, reason))
    return report


def cross_validate(
    policy: Policy, folds: int, progress: Callable[[int], None] | None = None
) -> Report:
    """K stratified folds of the policy's examples, each decided by a model trained without it."""
    from sklearn.model_selection import StratifiedKFold

    rows = _policy_rows(policy)
    report = Report()
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    for fold, (train_index, test_index) in enumerate(
        splitter.split(rows, [row.category for row in rows])
    ):
        model = train([rows[i] for i in train_index], policy, f"fold{fold}")
        report.outcomes += _decide_with(model, [rows[i] for i in test_index], policy).outcomes
        if progress:
            progress(fold)
    return report


def author(row: LabeledExample) -> str:
    """Who wrote an example: its id's prefix ("xa-0001" → "xa"; one prefix per writer)."""
    return row.id.split("-", 1)[0]


def cross_validate_authors(
    policy: Policy, held: Sequence[str] = (), progress: Callable[[str, Report], None] | None = None
) -> dict[str, Report]:
    """Each author group's examples decided by a model trained on everyone else's: how well
    triage reads a writer it has never seen (stricter than random folds, where a writer's
    habits are on both sides). ``held``: the groups to hold out, each in turn (all if empty)."""
    rows = _policy_rows(policy)
    groups = list(held) or list(dict.fromkeys(author(row) for row in rows))
    unknown = set(groups) - {author(row) for row in rows}
    if unknown:
        raise ValueError(f"no examples by author group(s) {sorted(unknown)}")
    reports: dict[str, Report] = {}
    for group in groups:
        model = train([row for row in rows if author(row) != group], policy, f"without-{group}")
        reports[group] = _decide_with(model, [row for row in rows if author(row) == group], policy)
        if progress:
            progress(group, reports[group])
    return reports


def _print_group(group: str, report: Report) -> None:
    print(
        f"held out {group:<8} {len(report):>5} rows: category {report.category_accuracy:.3f}, "
        f"urgency {report.urgency_accuracy:.3f}, urgent recall {report.urgent_recall:.3f}, "
        f"urgent precision {report.urgent_precision:.3f}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure triage on labeled complaints.")
    parser.add_argument("labeled", type=Path, nargs="?", help="JSON Lines of labeled complaints")
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY_FILE)
    parser.add_argument("--errors", action="store_true", help="list every mistake")
    parser.add_argument("--cross-validate", type=int, metavar="K", default=0)
    parser.add_argument(
        "--by-author",
        nargs="?",
        const="",
        metavar="GROUPS",
        help="hold out each author group (id prefix; comma-separated, default all) in turn",
    )
    parser.add_argument("--min-category", type=float, default=0.0)
    parser.add_argument("--min-urgency", type=float, default=0.0)
    parser.add_argument("--min-urgent-recall", type=float, default=0.0)
    parser.add_argument("--min-urgent-precision", type=float, default=0.0)
    args = parser.parse_args(argv)
    try:
        policy = load_policy(args.policy)
        if args.by_author is not None:
            held = [group for group in args.by_author.split(",") if group]
            reports = cross_validate_authors(policy, held, _print_group)
            report = Report([o for found in reports.values() for o in found.outcomes])
            source = f"author groups {', '.join(reports)} each held out in turn (pooled below)"
        elif args.cross_validate:
            report = cross_validate(policy, args.cross_validate)
            source = f"{args.cross_validate}-fold cross-validation of the policy's examples"
        elif args.labeled:
            report = evaluate(
                parse_examples(args.labeled, policy.triage.category_names).rows, policy
            )
            source = str(args.labeled)
        else:
            parser.error("give a labeled file or --cross-validate K")
    except (PolicyError, ExamplesError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"policy {policy.version}, {source}")
    problems = label_problems([o.row for o in report.outcomes], policy.triage.urgency_of)
    if problems:
        ids = ", ".join(problem.split(":")[0] for problem in problems[:10])
        print(
            f"{len(problems)} rows' labels contradict the labeling guide ({ids}{' …' if len(problems) > 10 else ''})"
        )
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
