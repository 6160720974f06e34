"""Deadline watch on the real broker and store, with an injected clock.

An isolated triage instance (its own topic prefix and namespace) is fed `opened`
events and actions; its clock is moved by hand, days in milliseconds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.policy.model import DEFAULT_POLICY_FILE
from tests.support.infra import Infra
from tests.support.isolated import Isolated as IsolatedPipeline
from tests.support.system import FakeClock
from tests.support.wait import eventually

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Taipei


def opened_event(case_number: str, channel: str, text: str, received_at: datetime) -> bytes:
    return json.dumps({
        "specversion": "1.0", "id": f"opened-{case_number}", "source": "/tests", "type":
        "complaint.case.opened", "time": received_at.isoformat(), "subject": case_number,
        "datacontenttype": "application/json",
        "data": {"case_number": case_number, "channel": channel, "customer_id": None,
                 "language": "zh-Hant", "received_at": received_at.isoformat(), "subject": "",
                 "text": text, "source_ref": case_number},
    }).encode()  # fmt: skip


def action(case_number: str, kind: str, at: datetime, **extra: Any) -> bytes:
    return json.dumps({"action_id": uuid.uuid4().hex, "case_number": case_number, "type": kind,
                       "actor": "agent-1", "at": at.isoformat(), **extra}).encode()  # fmt: skip


class Isolated(IsolatedPipeline):
    """The triage-only pipeline, with helpers for reading its warnings."""

    def warnings(self, case_number: str) -> list[tuple[str, str]]:
        return [(s.data["deadline"], s.type.removeprefix("complaint.case.sla_"))
                for s in self.reader.of_case(case_number)
                if s.type.startswith("complaint.case.sla_")]  # fmt: skip

    async def clock_stopped(self, case_number: str, deadline: str) -> None:
        """Until triage has stored that ``deadline``'s clock stopped for the case."""
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.infra.mongodb_uri)
        cases = client[f"{self.namespace}_triage"]["cases"]

        async def stopped() -> bool:
            case = await cases.find_one({"_id": case_number}) or {}
            return bool(((case.get("alarms") or {}).get(deadline) or {}).get("stopped_at"))

        try:
            await eventually(stopped, 20, f"{deadline} clock of {case_number} stopped")
        finally:
            await client.close()

    async def wait_warning(self, case_number: str, deadline: str, kind: str) -> Any:
        (found,) = await self.reader.wait_for(
            lambda s: s.data.get("case_number") == case_number
            and s.type == f"complaint.case.sla_{kind}" and s.data.get("deadline") == deadline,
            timeout=20,
        )  # fmt: skip
        return found


@pytest.fixture
async def isolated(infra: Infra, namespace: str) -> AsyncIterator[Isolated]:
    setup = Isolated(infra, namespace, FakeClock(T0))
    async with setup:
        yield setup


@pytest.mark.timeout(120)
async def test_at_risk_then_breach_each_once_and_stop_the_clock(isolated: Isolated) -> None:
    watched, answered = "CS20261123-9001", "CS20261123-9002"
    for case in (watched, answered):
        await isolated.send("cases.opened", opened_event(case, "app", "包裹延遲", T0), case)
        await isolated.reader.wait_for(lambda s, c=case: s.type == "complaint.case.triaged"
                                       and s.data["case_number"] == c)  # fmt: skip
    # Normal delivery case from the app: first response due T0+15 min (at risk at 75 %).
    await isolated.send(
        "cases.actions", action(answered, "first_response", T0 + timedelta(minutes=5)), answered
    )
    await isolated.clock_stopped(answered, "first_response")  # nothing to see on a topic

    isolated.clock.advance(timedelta(minutes=12))
    at_risk = await isolated.wait_warning(watched, "first_response", "at_risk")
    assert datetime.fromisoformat(at_risk.data["due"]) == T0 + timedelta(minutes=15)
    assert ("first_response", "breached") not in isolated.warnings(watched)

    isolated.clock.advance(timedelta(minutes=4))
    await isolated.wait_warning(watched, "first_response", "breached")

    # Resolution: due T0+72 h, at risk from T0+54 h. Resolving `answered` stops its clock.
    await isolated.send("cases.actions", action(answered, "resolve", T0 + timedelta(hours=50),
                        resolution={"summary": "sent", "root_cause": "one_off"}), answered)  # fmt: skip
    isolated.clock.advance(timedelta(hours=73))
    await isolated.wait_warning(watched, "resolution", "breached")
    # The at-risk warning was published before the breach (same key, same partition).
    await isolated.wait_warning(watched, "resolution", "at_risk")
    assert isolated.warnings(watched) == [
        ("first_response", "at_risk"), ("first_response", "breached"),
        ("resolution", "at_risk"), ("resolution", "breached"),
    ]  # fmt: skip
    assert isolated.warnings(answered) == []


@pytest.mark.timeout(120)
async def test_restart_between_warnings_loses_nothing_and_repeats_nothing(
    isolated: Isolated,
) -> None:
    case = "CS20261123-9003"
    await isolated.send("cases.opened", opened_event(case, "social", "服務態度很差", T0), case)
    await isolated.reader.wait_for(lambda s: s.type == "complaint.case.triaged"
                                   and s.data["case_number"] == case)  # fmt: skip
    isolated.clock.advance(timedelta(minutes=50))  # social: 60 min, at risk after 45
    await isolated.wait_warning(case, "first_response", "at_risk")

    await isolated.stop()
    isolated.clock.advance(timedelta(minutes=20))  # the breach falls due while it is down
    await isolated.start()
    await isolated.wait_warning(case, "first_response", "breached")
    isolated.clock.advance(timedelta(hours=80))
    await isolated.wait_warning(case, "resolution", "breached")
    assert isolated.warnings(case).count(("first_response", "at_risk")) == 1
    assert isolated.warnings(case).count(("first_response", "breached")) == 1
    ids = [
        s.event["id"]
        for s in isolated.reader.of_case(case)
        if s.type.startswith("complaint.case.sla_")
    ]
    assert len(ids) == len(set(ids))


@pytest.mark.timeout(120)
async def test_breach_arrives_within_two_seconds_of_its_due_time(
    infra: Infra, namespace: str, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        DEFAULT_POLICY_FILE.read_text(encoding="utf-8").replace("app = 15\n", "app = 0.1\n"),
        encoding="utf-8",
    )
    # Production watcher settings: the handler wakes the watcher, which sleeps till due.
    setup = Isolated(
        infra,
        namespace,
        lambda: datetime.now(UTC),
        policy_file=policy,
        watch_poll_seconds=0.5,
        watch_idle_seconds=5.0,
    )
    async with setup:
        case = "CS20261123-9004"
        received = datetime.now(UTC)
        await setup.send("cases.opened", opened_event(case, "app", "包裹延遲", received), case)
        breach = await setup.wait_warning(case, "first_response", "breached")
        due = datetime.fromisoformat(breach.data["due"])
        # The store keeps milliseconds.
        assert abs(due - (received + timedelta(seconds=6))) < timedelta(milliseconds=1)
        lateness = breach.timestamp_ms / 1000 - due.timestamp()
        assert 0 <= lateness <= 2.0, f"breach published {lateness:.3f}s after due"
        print(f"breach published {lateness:.3f}s after its due time")
