"""make chaos ARGS="--rounds 5 --seed 42"      fault-injection rounds, a verdict each
make chaos ARGS="--fuzz --records 100000"   generated records through intake

Every round runs a fresh system on private ports under .run/chaos/; a failing round
prints its seed, and `--rounds 1 --seed N` replays it (same traffic mix, same fault
schedule; the interleavings of a real system differ from run to run).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys
from pathlib import Path

from tests.chaos.cluster import Ports
from tests.chaos.driver import DEFAULT_FAULTS, RoundOptions, run_round
from tests.chaos.faults import KINDS, FaultTimings
from tests.support.infra import REPO_ROOT


def _ports(args: argparse.Namespace) -> Ports:
    return Ports(args.kafka_port, args.kafka_port + 1, args.store_port, args.http_port)


def _replay(seed: int) -> str:
    """This run's options for one round with ``seed``."""
    kept, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg in ("--rounds", "--seed"):
            skip = True
        elif not arg.startswith(("--rounds=", "--seed=")):
            kept.append(arg)
    return " ".join(["--rounds 1", f"--seed {seed}", *kept])


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, help="first round's seed (then +1 per round)")
    parser.add_argument("--rate", type=float, default=20.0, help="complaints per second")
    parser.add_argument(
        "--duration", type=float, default=150.0, help="seconds of traffic, at least"
    )
    for kind in KINDS:
        parser.add_argument(f"--{kind.replace('_', '-')}", type=int, default=DEFAULT_FAULTS[kind],
                            metavar="N", help=f"{kind} faults per round")  # fmt: skip
    parser.add_argument(
        "--store-down", type=float, nargs=2, default=(20.0, 30.0), metavar=("MIN", "MAX")
    )
    parser.add_argument(
        "--kafka-down", type=float, nargs=2, default=(45.0, 60.0), metavar=("MIN", "MAX")
    )
    parser.add_argument(
        "--pause", type=float, nargs=2, default=(16.0, 22.0), metavar=("MIN", "MAX")
    )
    parser.add_argument("--gap", type=float, nargs=2, default=(8.0, 20.0), metavar=("MIN", "MAX"))
    parser.add_argument("--settle-timeout", type=float, default=900.0)
    parser.add_argument(
        "--no-kill-after-jump",
        action="store_true",
        help="no kill -9 of a background loop's owner right after the clock jump",
    )
    parser.add_argument("--short", action="store_true",
                        help="the round `make test` runs (tests/integration/test_chaos.py)")  # fmt: skip
    parser.add_argument("--run-dir", type=Path, default=REPO_ROOT / ".run" / "chaos")
    parser.add_argument("--kafka-port", type=int, default=int(env("CHAOS_KAFKA_PORT", "49092")),
                        help="and the controller on the next port")  # fmt: skip
    parser.add_argument("--store-port", type=int, default=int(env("CHAOS_STORE_PORT", "47017")))
    parser.add_argument("--http-port", type=int, default=int(env("CHAOS_HTTP_PORT", "8501")),
                        help="first of the service instances' ports")  # fmt: skip
    parser.add_argument("--fuzz", action="store_true", help="fuzz intake instead of chaos rounds")
    parser.add_argument("--records", type=int, default=100_000, help="fuzz records")
    return parser


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    args = _parser().parse_args()
    if args.fuzz:
        from tests.chaos.fuzz import run_fuzz

        return asyncio.run(
            run_fuzz(args.records, args.seed or 1, args.run_dir / "fuzz", _ports(args))
        )
    options = RoundOptions.short() if args.short else RoundOptions(
        rate=args.rate, duration=args.duration, settle_timeout=args.settle_timeout,
        faults={kind: getattr(args, kind) for kind in KINDS},
        timings=FaultTimings(store_down=tuple(args.store_down), kafka_down=tuple(args.kafka_down),
                             pause=tuple(args.pause),
                             gap=tuple(args.gap)),
        kill_after_jump=not args.no_kill_after_jump,
    )  # fmt: skip
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
    results = []
    for number in range(args.rounds):
        seed = first + number
        print(f"=== round {number + 1}/{args.rounds}, seed {seed} "
              f"(replay: make chaos ARGS=\"{_replay(seed)}\")", flush=True)  # fmt: skip
        result = asyncio.run(run_round(seed, options, args.run_dir / f"round-{seed}", _ports(args)))
        print(result.report(), flush=True)
        results.append(result)
    print("\n=== summary")
    for result in results:
        verdict = (
            "PASS"
            if result.verdict.ok
            else "FAIL: "
            + ", ".join(rule for rule, examples in result.verdict.violations.items() if examples)
        )
        print(f"  seed {result.seed}: {verdict}")
    return 0 if all(result.verdict.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
