"""Try a policy before shipping it: re-run triage over stored cases under a candidate file.

    python -m services.triage.replay --policy candidate.toml [--examples 5]

Reads triage's own store (MONGODB_URI, MONGODB_DATABASE_PREFIX), decides every case
again under the candidate policy, and prints how categories, urgency and deadlines
would change: counts, then examples. Nothing is written anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from services.policy import Policy, PolicyError, load_policy
from services.runtime.connections import mongo_client
from services.triage.events import facts_from_opened
from services.triage.rules import URGENCY_ORDER, decide
from services.triage.settings import TriageSettings


@dataclass
class ReplayReport:
    cases: int = 0
    category_changes: Counter[tuple[str, str]] = field(default_factory=Counter)
    urgency_changes: Counter[tuple[str, str]] = field(default_factory=Counter)
    first_response_tighter: int = 0
    first_response_looser: int = 0
    resolution_tighter: int = 0
    resolution_looser: int = 0
    examples: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.cases} stored case(s) re-triaged"]
        changed = sum(self.urgency_changes.values())
        raised = sum(n for (a, b), n in self.urgency_changes.items()
                     if URGENCY_ORDER.index(b) > URGENCY_ORDER.index(a))  # fmt: skip
        out.append(f"urgency changes: {changed} ({raised} raised, {changed - raised} lowered)")
        for (before, after), count in self.urgency_changes.most_common():
            out.append(f"  {before:>7} -> {after:<7} {count}")
        out.append(f"category changes: {sum(self.category_changes.values())}")
        for (before, after), count in self.category_changes.most_common():
            out.append(f"  {before} -> {after}: {count}")
        out.append(
            f"first response due: {self.first_response_tighter} earlier, "
            f"{self.first_response_looser} later"
        )
        out.append(
            f"resolution due: {self.resolution_tighter} earlier, {self.resolution_looser} later"
        )
        if self.examples:
            out.append("examples:")
            out.extend(f"  {example}" for example in self.examples)
        return out


def replay_report(
    cases: Iterable[dict[str, Any]], candidate: Policy, examples: int = 5
) -> ReplayReport:
    """Compare each stored decision with the candidate policy's. Pure."""
    report = ReplayReport()
    for case in cases:
        if "opened" not in case or "decision" not in case:
            continue
        report.cases += 1
        stored = case["decision"]
        facts = dataclasses.replace(
            facts_from_opened(case["opened"], case.get("customer"), case.get("previous_cases", 0)),
            later_messages=tuple(case.get("messages", [])),
            minimum_urgency=case.get("minimum_urgency"),
            minimum_urgency_reason=case.get("minimum_urgency_reason"),
        )
        fresh = decide(facts, candidate)
        notes = []
        if fresh.category != stored["category"]:
            report.category_changes[(stored["category"], fresh.category)] += 1
            notes.append(f"category {stored['category']} -> {fresh.category}")
        if fresh.urgency != stored["urgency"]:
            report.urgency_changes[(stored["urgency"], fresh.urgency)] += 1
            notes.append(f"urgency {stored['urgency']} -> {fresh.urgency}")
        for name, new in (("first_response", fresh.first_response_due),
                          ("resolution", fresh.resolution_due)):  # fmt: skip
            old = stored[f"{name}_due"]
            if new < old:
                setattr(report, f"{name}_tighter", getattr(report, f"{name}_tighter") + 1)
                notes.append(f"{name} due {new - old} earlier")
            elif new > old:
                setattr(report, f"{name}_looser", getattr(report, f"{name}_looser") + 1)
                notes.append(f"{name} due {new - old} later")
        if notes and len(report.examples) < examples:
            report.examples.append(f"{case['_id']}: {'; '.join(notes)} ({fresh.reasons[0]})")
    return report


async def load_cases(settings: TriageSettings) -> list[dict[str, Any]]:
    client: AsyncMongoClient[dict[str, Any]] = mongo_client(settings, tz_aware=True)
    try:
        collection = client[f"{settings.mongodb_database_prefix}_triage"]["cases"]
        return await collection.find({}, {"outbox": 0, "applied": 0}).to_list()
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Re-run triage under a candidate policy.")
    parser.add_argument("--policy", type=Path, required=True, help="the candidate policy file")
    parser.add_argument("--examples", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        candidate = load_policy(args.policy)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 2
    cases = asyncio.run(load_cases(TriageSettings()))
    print(f"candidate policy {candidate.version}")
    print("\n".join(replay_report(cases, candidate, args.examples).lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
