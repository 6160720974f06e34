"""The compensation audit trail, for agents and finance.

    python -m services.compensation.audit case CS20261123-0001
    python -m services.compensation.audit month 2026-11

`case`: every offer of the case with the inputs it was computed from, its options, and
each step (created, approved, rejected, accepted, expired) with who, when, the policy
version and what was charged against which budget and customer cap.
`month`: per category, the budget, the goodwill reserved against it (open offers count
until they end) and the goodwill actually given.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from pymongo import AsyncMongoClient

from services.compensation.limits import Limits
from services.compensation.settings import CompensationSettings
from services.policy import load_policy

Document = dict[str, Any]


def _charged(charged: Document | None) -> str:
    if not charged:
        return "nothing charged"
    where = [f"budget {charged['budget']}" if charged.get("budget") else None,
             "customer cap" if charged.get("customer_id") else None]  # fmt: skip
    return f"{charged['amount']} against {' and '.join(w for w in where if w) or 'nothing'}"


def case_lines(case: Document) -> list[str]:
    """A case's compensation history, oldest offer first. Pure."""
    lines = [f"case {case['_id']}  category {case.get('facts', {}).get('category')}  "
             f"reopened {case.get('reopen_count', 0)} time(s)"]  # fmt: skip
    for offer_id, offer in sorted(case.get("offers", {}).items()):
        lines.append(
            f"{offer_id}  status {offer['status']}  policy {offer['policy_version']}  "
            f"requested goodwill {offer['currency']} {offer['requested_goodwill']}"
            + (f"  approver {offer['approver_role']}" if offer.get("approver_role") else "")
        )
        inputs = offer.get("inputs") or {}
        shown = ("urgency", "customer_tier", "order_value", "customer_goodwill_used",
                 "category_budget_left", "reopen_count", "already_given")  # fmt: skip
        lines.append("  inputs: " + ", ".join(f"{k}={inputs.get(k)}" for k in shown))
        lines.extend(f"  reason: {reason}" for reason in offer.get("reasons", []))
        for option in offer["options"]:
            lines.append(f"  option {option['option_id']}: {option['kind']} "
                         f"value {option['value']} goodwill {option['goodwill']}")  # fmt: skip
        for step in offer.get("history", []):
            detail = {k: v for k, v in step.items() if k not in {"what", "at", "by", "charged"}}
            lines.append(
                f"  {step['at']:%Y-%m-%d %H:%M:%S}  {step['what']:<9} by {step['by']:<16} "
                f"{_charged(step.get('charged'))}" + (f"  {detail}" if detail else "")
            )
    return lines


def month_lines(
    month: str, budgets: dict[str, Decimal], reserved: dict[str, Decimal],
    given: Iterable[Document],
) -> list[str]:  # fmt: skip
    """Budget use per category for one month. Pure."""
    given_by: defaultdict[str, Decimal] = defaultdict(Decimal)
    for entry in given:
        given_by[str(entry.get("category"))] += Decimal(entry["cents"]) / 100
    lines = [f"goodwill budget use, {month}",
             f"  {'category':<18}{'budget':>10}{'reserved':>10}{'given':>10}{'left':>10}"]  # fmt: skip
    for category in sorted(set(budgets) | set(reserved) | set(given_by)):
        budget = budgets.get(category)
        used = reserved.get(category, Decimal(0))
        left = "-" if budget is None else f"{budget - used:,.0f}"
        lines.append(
            f"  {category:<18}{'-' if budget is None else f'{budget:,.0f}':>10}"
            f"{used:>10,.0f}{given_by.get(category, Decimal(0)):>10,.0f}{left:>10}"
        )
    return lines


async def _run(settings: CompensationSettings, args: argparse.Namespace) -> list[str]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_uri)
    try:
        db = client[f"{settings.mongodb_database_prefix}_compensation"]
        if args.what == "case":
            case = await db["cases"].find_one({"_id": args.key})
            return case_lines(case) if case else [f"no compensation record for {args.key}"]
        policy = load_policy(settings.policy_file)
        reserved = await Limits(db).month_usage(args.key, policy.category_names)
        given = await db["ledger"].find({"month": args.key}).to_list(None)
        return month_lines(
            args.key, policy.compensation.monthly_budget_by_category, reserved, given
        )
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("what", choices=("case", "month"))
    parser.add_argument("key", help="a case number, or a month as YYYY-MM")
    args = parser.parse_args(argv)
    print("\n".join(asyncio.run(_run(CompensationSettings(), args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
