"""python -m services.triage.insights report --since 30d

Reads triage's store (MONGODB_URI, MONGODB_DATABASE_PREFIX) and prints the open and past
systemic-issue insights; see services/triage/insights/report.py.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

from services.policy import load_policy
from services.triage.insights.report import load_insights, parse_since, report_lines
from services.triage.settings import TriageSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.triage.insights")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="open and past insights")
    report.add_argument("--since", default="30d", help="how far back: 30d, 12h, 2w")
    args = parser.parse_args(argv)
    try:
        since = parse_since(args.since)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    settings = TriageSettings()
    now = datetime.now(UTC)
    insights = asyncio.run(load_insights(settings, now - since))
    zone = load_policy(settings.policy_file).zone
    print("\n".join(report_lines(insights, now, zone)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
