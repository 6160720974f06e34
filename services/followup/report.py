"""Satisfaction figures from the follow-up store: CSAT by category, channel and urgency.

    python -m services.followup.report

CSAT is the share of answers at or above the policy's "closed" score (default 4 of 5).
"""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from pymongo import AsyncMongoClient

from services.followup.settings import FollowupSettings
from services.policy import load_policy
from services.runtime.connections import mongo_client

DIMENSIONS = ("category", "channel", "urgency")


def csat_lines(checks: Iterable[dict[str, Any]], good_score: int, reopen_score: int) -> list[str]:
    """One block per dimension: answers, mean score, CSAT and reopen share. Pure."""
    answered = [c for c in checks if c.get("status") == "answered" and c.get("score")]
    lines = [f"{len(answered)} answered check(s)"]
    for dimension in DIMENSIONS:
        groups: defaultdict[str, list[int]] = defaultdict(list)
        for check in answered:
            groups[str(check.get(dimension) or "unknown")].append(int(check["score"]))
        lines.append(f"by {dimension}:")
        for value, scores in sorted(groups.items()):
            good = sum(1 for score in scores if score >= good_score)
            bad = sum(1 for score in scores if score <= reopen_score)
            lines.append(
                f"  {value:<18} answers {len(scores):>5}  mean {sum(scores) / len(scores):4.2f}  "
                f"CSAT {100 * good / len(scores):5.1f}%  reopened {100 * bad / len(scores):5.1f}%"
            )
    return lines


async def load_checks(settings: FollowupSettings) -> list[dict[str, Any]]:
    client: AsyncMongoClient[dict[str, Any]] = mongo_client(settings)
    try:
        collection = client[f"{settings.mongodb_database_prefix}_followup"]["followups"]
        fields = {"status": 1, "score": 1, **dict.fromkeys(DIMENSIONS, 1)}
        return await collection.find({"status": "answered"}, fields).to_list(None)
    finally:
        await client.close()


def main() -> int:
    settings = FollowupSettings()
    rules = load_policy(settings.policy_file).followup
    checks = asyncio.run(load_checks(settings))
    print("\n".join(csat_lines(checks, rules.closed_min_score, rules.reopen_max_score)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
