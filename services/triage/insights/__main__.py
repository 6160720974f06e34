"""python -m services.triage.insights [serve]      the insights worker (worker.py)
python -m services.triage.insights report --since 30d

``report`` reads triage's store (MONGODB_URI, MONGODB_DATABASE_PREFIX) and prints the
open and past systemic-issue insights; see services/triage/insights/report.py.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

from services.policy import load_policy
from services.runtime.serve import serve
from services.triage.insights.app import create_app
from services.triage.insights.report import load_insights, parse_since, report_lines
from services.triage.insights.worker import lower_priority
from services.triage.settings import TriageSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.triage.insights")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the insights worker (the default)")
    report = commands.add_parser("report", help="open and past insights")
    report.add_argument("--since", default="30d", help="how far back: 30d, 12h, 2w")
    args = parser.parse_args(argv)
    if args.command in (None, "serve"):
        settings = TriageSettings()
        lower_priority(settings.insights_nice)
        serve(create_app(settings), settings)
        return 0
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
