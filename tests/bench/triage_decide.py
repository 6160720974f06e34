"""Per-decision time of triage (rules + model), over the held-out complaints.

    python -m tests.bench.triage_decide [--rounds 5] [--file tests/triage/heldout.jsonl]

Prints mean, median and p99 microseconds per decide() call, after the model is trained
and every text has been seen once (jieba's dictionary and caches are warm). A benchmark,
not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from services.policy import load_policy
from services.policy.examples import parse_examples
from services.triage.classifier import classifier_for
from services.triage.rules import CaseFacts, decide

HELDOUT = Path(__file__).resolve().parents[1] / "triage" / "heldout.jsonl"
RECEIVED = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Taipei"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=HELDOUT)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    policy = load_policy()
    started = time.perf_counter()
    classifier_for(policy)
    trained = time.perf_counter() - started
    rows = parse_examples(args.file).rows
    facts = [CaseFacts(r.id, r.channel, RECEIVED, r.subject, r.text) for r in rows]
    for fact in facts:  # warm-up
        decide(fact, policy)
    timings: list[float] = []
    cpu_started = time.process_time()
    for _ in range(args.rounds):
        for fact in facts:
            start = time.perf_counter_ns()
            decide(fact, policy)
            timings.append((time.perf_counter_ns() - start) / 1000)
    cpu = (time.process_time() - cpu_started) / len(timings) * 1e6
    timings.sort()
    chars = statistics.mean(len(r.subject) + len(r.text) for r in rows)
    print(f"model trained in {trained:.2f} s; {len(rows)} complaints (mean {chars:.0f} chars) "
          f"x {args.rounds} rounds")  # fmt: skip
    print(f"decide(): mean {statistics.mean(timings):.0f} µs, median "
          f"{timings[len(timings) // 2]:.0f} µs, p99 {timings[int(len(timings) * 0.99)]:.0f} µs, "
          f"max {timings[-1]:.0f} µs; CPU time {cpu:.0f} µs per decision")  # fmt: skip
    print("(wall times include waiting for a core: compare with `uptime` on a busy machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
