"""What triage itself does about insights: tell a case the open insights it joins.

Counting cases into keys and opening insights is the insights worker's job
(services/triage/insights/worker.py), a process of its own that trails triage on
``cases.triaged``. Triage only reads the open insights (an equality range of the status
index, at most once per ``insights_open_refresh_seconds``: whatever their number, the
hot path does not read them per case) and, when one is open in the case's category,
works out the case's keys to say so in its reasons. A case that opens
an insight is listed in the insight's case list, not in its own reasons: it was triaged
before the insight existed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

from services.runtime.erasure import Erasure, ErasureLog
from services.runtime.kit import ServiceKit
from services.runtime.outbox import MASKED
from services.runtime.per_turn import PerTurn
from services.triage.insights.detection import keys_of
from services.triage.insights.keys import warm_up
from services.triage.insights.messages import join_reason
from services.triage.insights.store import InsightStore
from services.triage.insights.turn import Observed
from services.triage.rules import TriageDecision

Document = dict[str, Any]


class Insights:
    def __init__(self, kit: ServiceKit, cases: Any, refresh_seconds: float) -> None:
        self.kit = kit
        self.store = InsightStore(kit.db, cases)
        self.open_insights = OpenInsights(self.store.open_insights, refresh_seconds)
        self._open = PerTurn(self._open_insights)

    def register(self) -> None:
        self.kit.on_startup(self.start)

    async def start(self) -> None:
        # The dictionaries load in about a second: before records are taken, off the loop.
        await asyncio.to_thread(warm_up)
        # What is loaded by now (the dictionaries, the classifier, the libraries) lives
        # as long as the process: out of the collector's sight, a full collection no
        # longer walks it (about 0.1 s each on triage's heap, several per thousand cases).
        gc.freeze()

    async def _open_insights(self, asked: list[None]) -> list[dict[str, list[Document]]]:
        by_category = await self.open_insights.by_category()
        return [by_category] * len(asked)

    async def observe(
        self, opened: Document, decision: TriageDecision, stored: Document | None, event_id: str
    ) -> tuple[TriageDecision, Observed]:
        """The decision with the open insights the case joins among its reasons. A
        redelivered case keeps what it was told then; an erased one is told nothing."""
        if stored is not None and event_id in (stored.get("applied") or []):
            observed = Observed(
                list(stored.get("insight_reasons") or []), list(stored.get("insights") or [])
            )
        elif stored is not None and stored.get(MASKED):
            observed = Observed()
        else:
            observed = await self._joined(opened, decision.category)
        return with_reasons(decision, observed.reasons), observed

    async def _joined(self, opened: Document, category: str) -> Observed:
        candidates = (await self._open(None)).get(category) or []
        if not candidates:
            return Observed()  # the usual case: no key work at all
        rules = self.kit.policy.current().insights
        by_key = {str(i.get("key_id")): i for i in candidates}
        observed = Observed()
        for key in await keys_of(self.store, rules, opened, category, learn=False):
            insight = by_key.get(key.id)
            if insight is not None and insight["_id"] not in observed.insights:
                observed.insights.append(insight["_id"])
                count = int(insight.get("count") or 0)
                observed.reasons.append(join_reason(insight, key, count, rules.window_hours))
        return observed

    async def erase_traces(self, erasure: Erasure, log: ErasureLog) -> None:
        """An erasure step: the customer's cases' marks in keys and sample texts go."""
        await self.store.erase_cases(await _erased_cases(erasure, log))


class OpenInsights:
    """The open insights by category, read again when older than ``refresh_seconds``
    (0: at every call, for tests that want a new insight seen at once)."""

    def __init__(
        self,
        read: Callable[[], Awaitable[list[Document]]],
        refresh_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read, self.refresh_seconds, self.monotonic = read, refresh_seconds, monotonic
        self._by_category: dict[str, list[Document]] = {}
        self._read_at = float("-inf")

    async def by_category(self) -> dict[str, list[Document]]:
        if self.monotonic() - self._read_at >= self.refresh_seconds:
            by_category: dict[str, list[Document]] = {}
            for insight in await self.read():
                by_category.setdefault(str(insight.get("category")), []).append(insight)
            self._by_category, self._read_at = by_category, self.monotonic()
        return self._by_category


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
