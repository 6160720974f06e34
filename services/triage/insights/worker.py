"""The insights worker: counts triaged cases into their keys, opens, grows and closes
insights, and links what ops and agents do about them.

It is a process of its own, built from the triage package (it reads triage's cases for
their text) but consuming ``cases.triaged`` in its own consumer group, for three reasons:

- triage's hot path does not wait for it: in a surge the detector trails the decisions
  by seconds instead of slowing every one of them;
- trailing, it gets big batches, and a turn's store work is per key, not per case: the
  bigger the turn, the less it costs per case;
- it runs at a lower CPU priority (``insights_nice``): on a small machine, a burst's
  decisions come first and detection catches up when the burst is over.

``complaints_insight_lag_seconds`` tells ops how far behind the cases it counts.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from datetime import datetime
from typing import Any

from prometheus_client import Histogram
from pydantic import ValidationError

from schemas.inbound import AcknowledgeInsight
from schemas.topics import CASE_ACTIONS, CASES_TRIAGED
from services.runtime.batches import by_case_in_action
from services.runtime.errors import InputRejected, RetryLater
from services.runtime.kit import ServiceKit
from services.runtime.outbox import MASKED
from services.runtime.records import InboundRecord, json_object, parse_cloudevent
from services.triage.insights.detection import Detector, InsightMetrics
from services.triage.insights.keys import warm_up
from services.triage.insights.store import InsightStore
from services.triage.insights.watch import InsightWatcher
from services.triage.settings import TriageSettings

Document = dict[str, Any]
log = logging.getLogger(__name__)


class InsightsWorker:
    def __init__(self, kit: ServiceKit, settings: TriageSettings) -> None:
        self.kit = kit
        self.settings = settings
        self.cases = kit.db["cases"]  # triage's: read only, for a case's text and items
        self.store = InsightStore(kit.db, self.cases)
        self.metrics = InsightMetrics(kit.registry)
        self.lag = Histogram(
            "complaints_insight_lag_seconds",
            "From a case's receipt to its counting by the insights worker",
            registry=kit.registry,
            buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600),
        )
        self.watcher = InsightWatcher(
            kit, self.store, self.metrics,
            settings.insights_poll_seconds, settings.insights_lease_seconds,
        )  # fmt: skip
        self.detector = Detector(
            self.store, kit.policy.current, kit.clock, kit.publish, self.metrics,
            self.watcher.notify,
        )  # fmt: skip

    def register(self) -> None:
        self.kit.on_startup(self.start)
        self.kit.background(self.watcher.run)
        self.kit.subscribe(CASES_TRIAGED, self.on_triaged)
        self.kit.subscribe(CASE_ACTIONS, self.on_action, links=by_case_in_action)

    async def start(self) -> None:
        await self.store.ensure_indexes()
        # The dictionaries load in about a second: before records are taken, off the loop.
        await asyncio.to_thread(warm_up)
        gc.freeze()  # the dictionaries live as long as the process: out of the GC's walks

    async def on_triaged(self, record: InboundRecord) -> None:
        """A case's first decision is counted; later revisions change nothing here."""
        event = parse_cloudevent(record)
        data = event["data"]
        if event["type"] != "complaint.case.triaged" or int(data.get("revision") or 1) != 1:
            return
        case_number = str(data.get("case_number") or "")
        case = await self.cases.find_one({"_id": case_number}, {"opened": 1, MASKED: 1})
        if case is None:  # triage stores the case before it publishes its decision
            raise RetryLater(f"case {case_number} not stored by triage")
        opened = case.get("opened")
        if case.get(MASKED) or not isinstance(opened, dict):
            return  # erased: nothing of it may be kept, not even here
        await self.detector.observe(opened, str(data["category"]))
        received = datetime.fromisoformat(opened["received_at"])
        self.lag.observe(max(0.0, (self.kit.clock() - received).total_seconds()))

    async def on_action(self, record: InboundRecord) -> None:
        """Ops acknowledge an insight; a systemic resolution is linked to the case's."""
        action = json_object(record)
        if action is None:
            return  # the followup service dead-letters malformed actions
        if action.get("type") == "acknowledge_insight":
            await self.on_acknowledge(action)
        elif action.get("type") == "resolve" and isinstance(action.get("resolution"), dict):
            try:
                case_number, action_id = str(action["case_number"]), str(action["action_id"])
                at = datetime.fromisoformat(str(action["at"]))
            except (KeyError, ValueError):
                return  # malformed: dead-lettered by the followup service
            await self.detector.resolved(case_number, action_id, at, action["resolution"])

    async def on_acknowledge(self, raw: Document) -> None:
        try:
            action = AcknowledgeInsight.model_validate(raw)
        except ValidationError:
            return  # the followup service dead-letters malformed actions
        if not await self.detector.acknowledge(
            action.insight_id, action.owner, action.action_id, action.at
        ):
            raise InputRejected("unknown_insight", f"no insight {action.insight_id}")


def lower_priority(niceness: int) -> None:
    """The worker's process yields the CPU to the services on the hot path (``serve``
    calls it: in-process tests keep their priority)."""
    if niceness > 0:
        try:
            os.nice(niceness)
        except OSError as exc:  # some sandboxes refuse it: run at the usual priority
            log.warning("insights worker: cannot lower its priority: %s", exc)


def build(kit: ServiceKit, settings: TriageSettings) -> InsightsWorker:
    worker = InsightsWorker(kit, settings)
    worker.register()
    return worker
