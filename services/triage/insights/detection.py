"""The detector on triage's hot path: count a triaged case in its keys, open or join
insights, and link what people do about them (acknowledgements, systemic resolutions).

Per case: one read of the product words it uses, one update per key (its hour bucket,
its sightings), one read of those keys; insight documents are read and written only for
keys that have an open insight or just crossed their threshold. Decisions are the pure
functions of ``detector``; this module only orders the reads and writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.policy import Policy
from services.runtime.clock import Clock
from services.triage.insights.detector import (
    Sighting,
    Verdict,
    customer_of,
    evaluate,
    insight_id,
    stale_hours,
    suppressed_by,
    trim_before,
)
from services.triage.insights.keys import (
    CaseKey,
    case_keys,
    folded_terms,
    infer_products,
    item_terms,
    skus_of,
    text_features,
)
from services.triage.insights.messages import (
    insight_message,
    join_reason,
    new_insight,
)
from services.triage.insights.redact import redact, sample_text
from services.triage.insights.store import InsightStore, Publish, sightings

Document = dict[str, Any]


class InsightMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.open = Gauge(
            "complaints_insights_open",
            "Open systemic-issue insights, by kind of shared cause, category and whether "
            "ops acknowledged them",
            ["kind", "category", "acknowledged"],
            registry=registry,
        )
        self.cases = Counter(
            "complaints_insight_cases_total",
            "Cases counted into an insight (at detection and as they join)",
            ["kind"],
            registry=registry,
        )
        self.detected = Counter(
            "complaints_insights_detected_total",
            "Insights detected, by kind of shared cause and category",
            ["kind", "category"],
            registry=registry,
        )


@dataclass
class Observed:
    """What the detector made of one case: reasons for its triage, insights it is in."""

    reasons: list[str] = field(default_factory=list)
    insights: list[str] = field(default_factory=list)


@dataclass
class _Joined:
    insight_id: str
    kind: str
    cases: list[str]


class Detector:
    def __init__(
        self,
        store: InsightStore,
        policy: Callable[[], Policy],
        clock: Clock,
        publish: Publish,
        metrics: InsightMetrics,
        notify: Callable[[datetime | None], None] = lambda _: None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self.publish = publish
        self.metrics = metrics
        self.notify = notify

    # --- a triaged case -------------------------------------------------------------------

    async def keys_of(self, opened: Document, category: str) -> list[CaseKey]:
        rules = self.policy().insights
        ignore = folded_terms(rules.ignore_terms)
        text = f"{opened.get('subject') or ''}\n{opened.get('text') or ''}"
        features = text_features(
            text, rules.couriers, rules.cities, rules.keywords_per_script, ignore
        )
        items = [item for item in opened.get("items") or [] if isinstance(item, dict)]
        products = skus_of(items)
        learned = item_terms(items, rules.keywords_per_script, ignore)
        known = await self.store.skus_by_term([*features.phrases, *(term for term, _ in learned)])
        await self.store.learn_terms(learned, known)
        if not products:
            products = infer_products(features.phrases, known, rules.max_inferred_products)
        return case_keys(category, products, features.couriers, features.cities, features.phrases)

    async def observe(self, opened: Document, category: str) -> Observed:
        """Count the case in its keys; the insights it opens or joins, with reasons."""
        rules = self.policy().insights
        case_number = opened["case_number"]
        sighting = Sighting(
            case_number,
            customer_of(opened.get("customer_id"), case_number),
            datetime.fromisoformat(opened["received_at"]),
        )
        keys = await self.keys_of(opened, category)
        sample = sample_text(opened.get("subject") or "", opened.get("text") or "",
                             rules.sample_chars)  # fmt: skip
        counted = await asyncio.gather(*(
            self.store.count(key, sighting, sample, rules.max_tracked_cases, rules.sample_texts)
            for key in keys
        ))  # fmt: skip
        fresh = {key.id for key, new in zip(keys, counted, strict=True) if new}
        documents = await self.store.key_documents(key.id for key in keys)
        verdicts = {key.id: evaluate(sightings(documents[key.id]),
                                     documents[key.id].get("hours") or {},
                                     key.kind, key.category, rules)
                    for key in keys if key.id in documents}  # fmt: skip
        # What no window will read again goes, all keys at once (one round of the lanes).
        await asyncio.gather(*(
            self.store.trim(key_id, stale_hours(documents[key_id].get("hours") or {},
                                                verdict.window_end, rules),
                            trim_before(sightings(documents[key_id]), verdict.window_end, rules))
            for key_id, verdict in verdicts.items()
        ))  # fmt: skip
        observed, joined = Observed(), list[_Joined]()
        for key in keys:  # most specific first: they may hold the less specific ones' cases
            if key.id not in verdicts:
                continue
            document, verdict = documents[key.id], verdicts[key.id]
            insight = await self._insight_for(
                key, document, verdict, case_number, joined, key.id in fresh
            )
            if insight is not None:
                observed.insights.append(insight["_id"])
                observed.reasons.append(
                    join_reason(insight, key, verdict.count, rules.window_hours)
                )
                joined.append(_Joined(insight["_id"], key.kind, list(insight["case_numbers"])))
        return observed

    async def _insight_for(
        self, key: CaseKey, document: Document, verdict: Verdict, case_number: str,
        joined: list[_Joined], fresh: bool = True,
    ) -> Document | None:  # fmt: skip
        """The open insight this case is part of through ``key``, opened now if due.
        A case the key counted before (``fresh`` False: a redelivery) opens nothing: it
        may join the open insight of its window, never start a new one."""
        open_id = document.get("open_insight")
        if open_id:
            insight = await self.store.insight(open_id)
            if insight is None:  # claimed by a handler that stopped before storing it
                return await self._create(key, document, verdict, open_id, case_number)
            if insight.get("status") == "open":
                return await self._join(insight, key, verdict, case_number)
            await self.store.release(key.id, open_id)  # subsided; the key was not told
        if not fresh or not verdict.above or verdict.first_seen is None:
            return None
        rules = self.policy().insights
        overlap = [(j.insight_id, j.kind, j.cases) for j in joined]
        if suppressed_by(key.kind, verdict.cases, overlap, rules.overlap_share):
            return None
        generation = int(document.get("generation") or 0)
        wanted = insight_id(key.id, verdict.first_seen, generation)
        holder = await self.store.claim(key.id, wanted, generation)
        if holder is None:  # another handler opened one and it closed already
            return None
        if holder != wanted:  # another handler opened one first
            other = await self.store.insight(holder)
            return await self._join(other, key, verdict, case_number) if other else None
        return await self._create(key, document, verdict, wanted, case_number)

    async def _create(
        self, key: CaseKey, document: Document, verdict: Verdict, new_id: str, case_number: str
    ) -> Document | None:
        policy = self.policy()
        rules = policy.insights
        now = self.clock()
        insight = new_insight(
            new_id, key, verdict, list(document.get("samples") or [])[-rules.sample_texts :],
            now, policy.version, rules.max_listed_cases,
        )  # fmt: skip
        insight["systemic"] = [
            {"case_number": case} for case in await self.store.resolved_as_systemic(verdict.cases)
        ]
        message = insight_message("detected", insight, rules.window_hours, now, ("detected",))
        if await self.store.create(insight, [message]):
            self.metrics.detected.labels(key.kind, key.category).inc()
            self.metrics.cases.labels(key.kind).inc(len(verdict.cases))
            self.notify(insight["check_at"])
        await self.store.flush(new_id, self.publish)
        stored = await self.store.insight(new_id) or insight
        # Stored before by another handler, from a window without this case: join it.
        return await self._join(stored, key, verdict, case_number)

    async def _join(
        self, insight: Document, key: CaseKey, verdict: Verdict, case_number: str
    ) -> Document | None:
        if case_number in insight["case_numbers"]:
            return insight
        if case_number not in verdict.cases:
            # Older than the key's window (a late or long-redelivered case): it is not
            # part of this surge, whatever it was part of before.
            return None
        rules = self.policy().insights
        now = self.clock()
        listed = [*insight["case_numbers"], case_number][: rules.max_listed_cases]
        grown = {**insight, "count": verdict.count, "baseline": verdict.baseline,
                 "threshold": verdict.threshold, "window_start": verdict.window_start,
                 "window_end": verdict.window_end, "case_numbers": listed}  # fmt: skip
        message = insight_message(
            "updated", grown, rules.window_hours, now, ("joined", case_number),
            change=f"case {case_number} joined",
        )  # fmt: skip
        # Under threshold already (the background check has not run yet): check now.
        check_at = verdict.subside_at or verdict.window_end
        if await self.store.join(insight["_id"], case_number, verdict,
                                 rules.max_listed_cases, check_at, message):  # fmt: skip
            self.metrics.cases.labels(key.kind).inc()
            self.notify(check_at)
        await self.store.flush(insight["_id"], self.publish)
        return grown

    # --- what people do about insights --------------------------------------------------

    async def acknowledge(self, insight_id: str, owner: str, action_id: str, at: datetime) -> bool:
        """Ops own the insight: it stops alerting. False when there is no such insight."""
        insight = await self.store.insight(insight_id)
        if insight is None:
            return False
        if not insight.get("acknowledged"):
            rules = self.policy().insights
            acknowledged = {"owner": owner, "at": at, "action_id": action_id}
            message = insight_message(
                "updated", {**insight, "acknowledged": acknowledged}, rules.window_hours,
                self.clock(), ("acknowledged",), change=f"acknowledged by {owner}",
            )  # fmt: skip
            await self.store.acknowledge(insight_id, acknowledged, message)
        await self.store.flush(insight_id, self.publish)
        return True

    async def resolved(
        self, case_number: str, action_id: str, at: datetime, resolution: Document
    ) -> None:
        """A resolution with root cause ``systemic`` is linked to the case's insights."""
        if resolution.get("root_cause") != "systemic":
            return
        rules = self.policy().insights
        summary = redact(str(resolution.get("summary") or ""))[: rules.sample_chars]
        link = {"case_number": case_number, "action_id": action_id, "at": at, "summary": summary}
        for insight in await self.store.insights_of_case(case_number):
            if any(s.get("case_number") == case_number for s in insight.get("systemic") or []):
                continue
            linked = {**insight, "systemic": [*(insight.get("systemic") or []), link]}
            message = insight_message(
                "updated", linked, rules.window_hours, self.clock(), ("systemic", case_number),
                change=f"case {case_number} resolved as systemic",
            )  # fmt: skip
            await self.store.link_systemic(insight["_id"], link, message)
            await self.store.flush(insight["_id"], self.publish)
