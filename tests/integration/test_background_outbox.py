"""A background pass that stored its events but could not publish them (the store or the
broker went away in between, or the process died) publishes them on a later pass. Found by
make chaos: after a store kill -9, a follow-up stayed `sent` with its survey in the outbox
(next step: seven days later), and SLA warnings stayed in a case's outbox for good.

Each test makes the first publish of its loop fail, as an outage would, then lets time go on."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from services.runtime import outbox
from tests.support.infra import Infra
from tests.support.isolated import Isolated
from tests.support.system import FakeClock

from .test_compensation_lifecycle import triaged
from .test_deadline_watch import T0, opened_event
from .test_repeated_actions import action, event


def fail_once(monkeypatch: pytest.MonkeyPatch, module: str) -> list[str]:
    """The module's next flush dies after the store has the events: an outage mid-pass."""
    failed: list[str] = []
    real = outbox.flush_outbox

    async def flaky(
        collection: Any, document_id: Any, publish: Callable[..., Awaitable[None]], **options: Any
    ) -> int:
        if not failed:
            failed.append(str(document_id))
            raise KafkaConnectionError("the broker went away mid-pass")
        return await real(collection, document_id, publish, **options)

    monkeypatch.setattr(f"{module}.flush_outbox", flaky)
    return failed


def of(case: str, kind: str) -> Any:
    return lambda s: s.type == kind and s.data.get("case_number") == case


async def time_goes_on(p: Isolated, clock: FakeClock, case: str, kind: str) -> None:
    """A minute at a time (a later pass may wait for a lease to run out), until it is out."""
    for _ in range(3):
        clock.advance(timedelta(minutes=1))
        try:
            await p.reader.wait_for(of(case, kind), timeout=10)
            return
        except AssertionError:
            continue
    await p.reader.wait_for(of(case, kind), timeout=1)


FAST = {"scheduler_lease_seconds": 2.0}


@pytest.mark.timeout(120)
async def test_a_follow_up_whose_survey_could_not_be_published_is_published_later(
    infra: Infra, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(T0)
    async with Isolated(infra, namespace, clock, ("followup",), **FAST) as p:
        case = f"CS20261123-8{uuid.uuid4().int % 1000:03d}"
        await p.send("cases.opened", event("complaint.case.opened", case, channel="app",
                     customer_id=None, language="en", received_at=T0.isoformat(),
                     subject="late", text="late", source_ref=case), key=case)  # fmt: skip
        await p.send("cases.triaged", event("complaint.case.triaged", case, category="delivery",
                     urgency="normal", revision=1), key=case)  # fmt: skip
        await p.send(
            "cases.actions", action(case, "resolve", T0, resolution={"summary": "ok"}), key=case
        )
        await p.reader.wait_for(of(case, "complaint.followup.scheduled"))
        failed = fail_once(monkeypatch, "services.followup.scheduler")
        clock.advance(timedelta(days=4))
        await time_goes_on(p, clock, case, "complaint.followup.sent")
        assert failed, "the first publish was made to fail"


@pytest.mark.timeout(120)
async def test_sla_warnings_that_could_not_be_published_are_published_later(
    infra: Infra, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(T0)
    async with Isolated(infra, namespace, clock, ("triage",), watch_poll_seconds=0.05,
                        watch_idle_seconds=0.2) as p:  # fmt: skip
        case = f"CS20261123-8{uuid.uuid4().int % 1000:03d}"
        await p.send("cases.opened", opened_event(case, "app", "包裹還沒到", T0), key=case)
        await p.reader.wait_for(of(case, "complaint.case.triaged"))
        failed = fail_once(monkeypatch, "services.triage.deadlines")
        clock.advance(timedelta(hours=30))  # past the first-response at-risk moment
        await time_goes_on(p, clock, case, "complaint.case.sla_at_risk")
        assert failed, "the first publish was made to fail"


@pytest.mark.timeout(120)
async def test_an_expiry_that_could_not_be_published_is_published_later(
    infra: Infra, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(T0)
    async with Isolated(infra, namespace, clock, ("compensation",), **FAST) as p:
        case = f"CS20261123-8{uuid.uuid4().int % 1000:03d}"
        await p.send("cases.triaged", triaged(case, f"C-{uuid.uuid4().hex[:6]}"), key=case)
        await p.reader.wait_for(of(case, "complaint.compensation.proposed"))
        failed = fail_once(monkeypatch, "services.compensation.service")
        clock.advance(timedelta(hours=73))
        await time_goes_on(p, clock, case, "complaint.compensation.expired")
        assert failed, "the first publish was made to fail"
