"""The detector in the insights worker: count triaged cases in their keys, open or join
insights, and link what people do about them (acknowledgements, systemic resolutions).

A case's keys are worked out by its own handler (CPU only, plus a coalesced read of the
product words it uses); then the case waits for its TURN: every case the lanes bring
while the previous turn is being stored is counted together, by the pure
``turn.plan_turn``, from one read of their keys and open insights, and stored with one
update per key and per insight joined (one bulkWrite).
Turns run one after the other, so a busy moment makes the next turn bigger, not the
store's work per case.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.policy import Policy
from services.policy.model import InsightsPolicy
from services.runtime.clock import Clock
from services.triage.insights.detector import customer_of
from services.triage.insights.keys import (
    CaseKey,
    case_keys,
    folded_terms,
    infer_products,
    item_terms,
    skus_of,
    text_features,
    text_terms,
)
from services.triage.insights.messages import insight_message
from services.triage.insights.redact import redact, sample_text
from services.triage.insights.store import InsightStore, Publish
from services.triage.insights.turn import Observation, Observed, plan_turn

Document = dict[str, Any]
__all__ = ["Detector", "InsightMetrics", "Observed", "keys_of"]


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
        self.turns = Counter(
            "complaints_insight_turns_total",
            "Turns of the detector (cases counted together, one store write per key)",
            registry=registry,
        )


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
        self._waiting: list[tuple[Observation, asyncio.Future[Observed]]] = []
        self._worker: asyncio.Task[None] | None = None

    # --- a triaged case -------------------------------------------------------------------

    async def observe(self, opened: Document, category: str) -> Observed:
        """Count the case in its keys (with the other cases of its turn); the insights
        it opens or joins, with reasons."""
        rules = self.policy().insights
        case_number = opened["case_number"]
        keys = await keys_of(self.store, rules, opened, category, learn=True)
        sample = functools.partial(sample_text, opened.get("subject") or "",
                                   opened.get("text") or "", rules.sample_chars)  # fmt: skip
        observation = Observation(
            case_number,
            customer_of(opened.get("customer_id"), case_number),
            datetime.fromisoformat(opened["received_at"]),
            tuple(keys),
            sample,
        )
        future: asyncio.Future[Observed] = asyncio.get_running_loop().create_future()
        self._waiting.append((observation, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._turns())
        return await future

    async def _turns(self) -> None:
        """Turn after turn until nobody waits: what arrived meanwhile is the next turn."""
        while self._waiting:
            # Yield once: every lane resumed in this loop iteration adds its case first.
            await asyncio.sleep(0)
            waiting, self._waiting = self._waiting, []
            try:
                observed = await self.count_turn([o for o, _ in waiting])
            except BaseException as exc:  # every case of the turn fails (and is redelivered)
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for observation, future in waiting:
                if not future.done():
                    future.set_result(observed.get(observation.case_number, Observed()))

    async def count_turn(self, observations: list[Observation]) -> dict[str, Observed]:
        """Count a turn's cases: one read, the pure plan, one write, then the events."""
        policy = self.policy()
        keys, insights = await self.store.load([key.id for o in observations for key in o.keys])
        now = self.clock()
        plan = plan_turn(observations, keys, insights, policy.insights,
                         policy.version, now)  # fmt: skip
        if plan.needs_recent:  # an insight opens: the turn again, with those keys' cases
            keys |= await self.store.keys_in_full(plan.needs_recent)
            for key_id in plan.needs_recent:  # read in full now, whatever it holds
                keys.get(key_id, {}).setdefault("recent", [])
            plan = plan_turn(observations, keys, insights, policy.insights,
                             policy.version, now)  # fmt: skip
        if plan.created:
            await self._resolved_before(plan.created)
        await self.store.apply(plan)
        self.metrics.turns.inc()
        for kind, category in plan.detected:
            self.metrics.detected.labels(kind, category).inc()
        for kind, count in plan.cases_counted.items():
            self.metrics.cases.labels(kind).inc(count)
        for moment in plan.check_at:
            self.notify(moment)
        flushing = dict.fromkeys(plan.flush)
        await asyncio.gather(*(self.store.flush(insight, self.publish) for insight in flushing))
        return plan.observed

    async def _resolved_before(self, created: list[Document]) -> None:
        """A new insight's cases already resolved as systemic are linked at once."""
        window_hours = self.policy().insights.window_hours
        for insight in created:
            resolved = await self.store.resolved_as_systemic(insight["case_numbers"])
            if resolved:
                insight["systemic"] = [{"case_number": case} for case in resolved]
                document = {k: v for k, v in insight.items() if k != "__messages"}
                insight["__messages"] = [insight_message(
                    "detected", document, window_hours, insight["detected_at"], ("detected",)
                )]  # fmt: skip

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


async def keys_of(
    store: InsightStore, rules: InsightsPolicy, opened: Document, category: str, learn: bool
) -> list[CaseKey]:
    """The keys a case is counted in. ``learn``: remember the product words its app form
    teaches (the worker, which counts; triage only asks)."""
    ignore = folded_terms(rules.ignore_terms)
    text = f"{opened.get('subject') or ''}\n{opened.get('text') or ''}"
    features = text_features(text, rules.couriers, rules.cities, rules.keywords_per_script, ignore)
    items = [item for item in opened.get("items") or [] if isinstance(item, dict)]
    products = skus_of(items)
    learned = [*item_terms(items, rules.keywords_per_script, ignore),
               *text_terms(products, features.phrases)]  # fmt: skip
    known = await store.skus_by_term([*features.phrases, *(term for term, _ in learned)])
    if learn:
        await store.learn_terms(learned, known)
    if not products:
        products = infer_products(features.phrases, known, rules.max_inferred_products)
    # A case with a named cause (product, courier, city) is counted there; phrases, the
    # weakest evidence, only for a case without one (and a few: one update each).
    named = bool(products or features.couriers or features.cities)
    phrases = [] if named else features.phrases[: rules.phrases_per_case]
    return case_keys(category, products, features.couriers, features.cities, phrases)
