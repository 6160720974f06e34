"""The short chaos round (`make chaos` runs five long ones): its own Kafka, store and six
service instances on private ports, a few hundred complaints and desk actions, each fault
once (kill -9 of a service, of the store, a broker restart, a SIGSTOP zombie), a jump of the
shared clock, then the verdict from the outside (tests/chaos/verdict.py)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.chaos.cluster import LAYOUT, Ports
from tests.chaos.driver import RoundOptions, run_round
from tests.support.ports import free_port_block


def _ports() -> Ports:
    """CHAOS_KAFKA_PORT / CHAOS_STORE_PORT / CHAOS_HTTP_PORT, or free ones."""
    if "CHAOS_KAFKA_PORT" in os.environ:
        kafka = int(os.environ["CHAOS_KAFKA_PORT"])
        return Ports(kafka, kafka + 1, int(os.environ.get("CHAOS_STORE_PORT", "47017")),
                     int(os.environ.get("CHAOS_HTTP_PORT", "8501")))  # fmt: skip
    base = free_port_block(3 + sum(LAYOUT.values()))
    return Ports(base, base + 1, base + 2, base + 3)


@pytest.mark.timeout(1500)
async def test_a_short_chaos_round_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("CHAOS_SEED", random.SystemRandom().randrange(1, 1_000_000)))
    print(f'chaos seed {seed} (replay: make chaos ARGS="--short --rounds 1 --seed {seed}")')
    result = await run_round(seed, RoundOptions.short(), tmp_path / "chaos", _ports())
    print(result.report())
    assert result.verdict.ok, result.report()
    kinds = {fault.kind for fault in result.faults}
    assert kinds == {"kill_service", "kill_store", "restart_kafka", "pause_service"}
