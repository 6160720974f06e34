"""The insights as triage plugs them in: a few calls from its handlers, nothing more.

Triage is where every case passes with its category, its text and its order, so the
detector runs there, after the decision and before it is published: the decision's
reasons can say that the case is part of a systemic issue. Its own collections, loop and
metrics live here, beside the triage modules, so that changes to classification and to
detection stay apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from schemas.inbound import AcknowledgeInsight
from services.runtime.erasure import Erasure, ErasureLog
from services.runtime.errors import InputRejected
from services.runtime.kit import ServiceKit
from services.runtime.outbox import MASKED
from services.triage.insights.detection import Detector, InsightMetrics, Observed
from services.triage.insights.keys import warm_up
from services.triage.insights.store import InsightStore
from services.triage.insights.watch import InsightWatcher
from services.triage.rules import TriageDecision
from services.triage.settings import TriageSettings

Document = dict[str, Any]


class Insights:
    def __init__(self, kit: ServiceKit, cases: Any, settings: TriageSettings) -> None:
        self.kit = kit
        self.store = InsightStore(kit.db, cases)
        self.metrics = InsightMetrics(kit.registry)
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

    async def start(self) -> None:
        await self.store.ensure_indexes()
        # The dictionaries load in about a second: before records are taken, off the loop.
        await asyncio.to_thread(warm_up)
        # What is loaded by now (the dictionaries, the classifier, the libraries) lives
        # as long as the process: out of the collector's sight, a full collection no
        # longer walks it (about 0.1 s each on triage's heap, several per thousand cases).
        gc.freeze()

    async def observe(
        self, opened: Document, decision: TriageDecision, stored: Document | None, event_id: str
    ) -> tuple[TriageDecision, Observed]:
        """The decision with the case's insights among its reasons. A case stored before
        (a redelivery) is not counted again: it keeps what it was told then; an erased
        customer's case is not counted at all."""
        if stored is not None and event_id in (stored.get("applied") or []):
            observed = Observed(
                list(stored.get("insight_reasons") or []),
                list(stored.get("insights") or []),
                list(stored.get("insight_keys") or []),
            )
        elif stored is not None and stored.get(MASKED):
            # Erased before it reached triage: nothing of it may be kept, not even here.
            observed = Observed()
        else:
            observed = await self.detector.observe(opened, decision.category)
        return with_reasons(decision, observed.reasons), observed

    async def erase_traces(self, erasure: Erasure, log: ErasureLog) -> None:
        """An erasure step: the customer's cases' marks in keys and sample texts go."""
        await self.store.erase_cases(await _erased_cases(erasure, log))

    async def on_acknowledge(self, raw: Document) -> None:
        try:
            action = AcknowledgeInsight.model_validate(raw)
        except ValidationError:
            return  # the followup service dead-letters malformed actions
        if not await self.detector.acknowledge(
            action.insight_id, action.owner, action.action_id, action.at
        ):
            raise InputRejected("unknown_insight", f"no insight {action.insight_id}")

    async def on_resolved(
        self, case_number: str, action_id: str, at: datetime, raw: Document
    ) -> None:
        resolution = raw.get("resolution")
        if isinstance(resolution, dict):
            await self.detector.resolved(case_number, action_id, at, resolution)


async def _erased_cases(erasure: Erasure, log: ErasureLog) -> list[str]:
    """The case numbers the erasure's cases step noted (kept until the request is done)."""
    record = await log.records.find_one({"_id": erasure.erasure_id}) or {}
    return [str(case) for case in (record.get("erased") or {}).get("cases") or []]


def with_reasons(decision: TriageDecision, reasons: list[str]) -> TriageDecision:
    """``decision`` with ``reasons`` added to its own (each once)."""
    missing = [reason for reason in reasons if reason not in decision.reasons]
    if not missing:
        return decision
    return dataclasses.replace(decision, reasons=[*decision.reasons, *missing])
