"""Triage handlers: every opened case and every new message gets a decision with reasons."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter, Histogram
from pydantic import TypeAdapter, ValidationError

from schemas.inbound import Reply
from schemas.topics import (
    CASE_ACTIONS,
    CASES_FOLLOWUPS,
    CASES_OPENED,
    CUSTOMER_ERASURES,
    CUSTOMER_PROFILES,
)
from services.policy import Policy
from services.runtime.batches import by_case_and_customer, by_case_in_action
from services.runtime.customers import apply_profile_record
from services.runtime.documents import apply_once
from services.runtime.erasure import erasure_found_by_intake
from services.runtime.errors import RetryLater
from services.runtime.kit import ServiceKit
from services.runtime.outbox import MASKED, add_to_outbox, flush_outbox
from services.runtime.per_turn import PerTurn
from services.runtime.records import InboundRecord, json_object, parse_cloudevent
from services.runtime.retention import RetentionLoop, note_reopened, note_resolved
from services.triage.classifier import ensure_trained
from services.triage.deadlines import DeadlineWatcher
from services.triage.events import (
    decision_document,
    decision_from_document,
    facts_from_opened,
    flagged_message,
    triaged_message,
)
from services.triage.insights.hook import Insights, with_reasons
from services.triage.privacy import TriagePrivacy
from services.triage.replies import check_reply
from services.triage.rules import decide, retriage
from services.triage.settings import TriageSettings
from services.triage.watch import DEADLINES, next_alarm_at, plan_alarms, stop

_REPLY: TypeAdapter[Reply] = TypeAdapter(Reply)
# The clocks each action stops.
STOPS = {"first_response": ("first_response",), "reply": ("first_response",),
         "resolve": DEADLINES}  # fmt: skip


class TriageService:
    def __init__(self, kit: ServiceKit, settings: TriageSettings) -> None:
        self.kit = kit
        self.settings = settings
        self.cases = kit.db["cases"]
        self.customers = kit.db["customers"]
        self.decisions = Counter(
            "complaints_triaged_total",
            "Triage decisions by category and urgency",
            ["category", "urgency"],
            registry=kit.registry,
        )
        self.receipt_to_triage = Histogram(
            "complaints_receipt_to_triage_seconds",
            "Time from a complaint's receipt to its first triage decision",
            ["channel"],
            registry=kit.registry,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
        )
        self.escalations = Counter(
            "complaints_escalations_total", "Escalated triage decisions", registry=kit.registry
        )
        self.flagged = Counter(
            "complaints_replies_flagged_total",
            "Agents' replies that break a house rule, by problem (advisory)",
            ["problem"],
            registry=kit.registry,
        )
        self._previous = PerTurn(self._count_previous)
        self.watcher = DeadlineWatcher(
            kit, self.cases, settings.watch_poll_seconds, settings.watch_idle_seconds
        )
        self.insights = Insights(kit, self.cases, settings.insights_open_refresh_seconds)
        self.privacy = TriagePrivacy(kit.db, kit.registry, [self.insights.erase_traces])
        self.retention = RetentionLoop(
            kit, self.cases, self.mask_case, settings.retention_poll_seconds
        )

    async def mask_case(self, case_number: str, masked: dict[str, Any]) -> None:
        """Retention: the case's personal data, and what the insights kept of it."""
        await self.privacy.mask_case(case_number, masked)
        await self.insights.store.erase_cases([case_number])

    def register(self) -> None:
        self.kit.on_startup(self.ensure_indexes)
        self.kit.on_startup(self.train_model)
        self.kit.on_startup(self.watcher.ensure_indexes)
        self.kit.background(self.watcher.run)
        self.insights.register()
        self.kit.subscribe(CASE_ACTIONS, self.on_action, links=by_case_in_action)
        self.kit.subscribe(CASES_OPENED, self.on_case_event, links=by_case_and_customer)
        self.kit.subscribe(CUSTOMER_PROFILES, self.on_profile)
        self.kit.subscribe(CASES_FOLLOWUPS, self.on_followup_event)
        self.kit.subscribe(CUSTOMER_ERASURES, self.on_erasure)
        self.kit.on_startup(self.retention.ensure_indexes)
        self.kit.background(self.retention.run)

    async def current_policy(self) -> Policy:
        """The policy in force, its model trained (off the event loop when it is new)."""
        policy = self.kit.policy.current()
        await ensure_trained(policy)
        return policy

    async def train_model(self) -> None:
        # Before the first record is taken: the first complaints should not wait for it.
        await ensure_trained(self.kit.policy.current())

    async def ensure_indexes(self) -> None:
        await self.cases.create_index([("customer_id", 1), ("received_at", 1)])

    async def on_erasure(self, record: InboundRecord) -> None:
        erasure = erasure_found_by_intake(parse_cloudevent(record))
        if erasure is not None:
            await self.privacy.erase(erasure, self.kit.clock(), self.kit.publish)

    async def flush(self, case_number: str) -> None:
        # A case erased before (a late event, a redelivery) is masked again after the write.
        await flush_outbox(self.cases, case_number, self.kit.publish, masked=self.privacy.mask_case)

    async def on_profile(self, record: InboundRecord) -> None:
        await apply_profile_record(self.customers, record)

    async def on_case_event(self, record: InboundRecord) -> None:
        event = parse_cloudevent(record)
        if event["type"] == "complaint.case.opened":
            await self.on_opened(event)
        elif event["type"] == "complaint.case.message_added":
            await self.on_message(event)

    async def on_followup_event(self, record: InboundRecord) -> None:
        event = parse_cloudevent(record)
        if event["type"] == "complaint.case.reopened":
            await self.on_reopened(event)
            at = datetime.fromisoformat(str(event["time"]))
            await note_reopened(self.cases, str(event["data"]["case_number"]), at)

    async def previous_cases(self, customer_id: str | None, case_number: str, at: datetime) -> int:
        """The customer's other cases received in the repeat window before ``at``."""
        if not customer_id:
            return 0
        return await self._previous((customer_id, case_number, at))

    async def _count_previous(self, asked: list[tuple[str, str, datetime]]) -> list[int]:
        """All of one turn's questions from one range of the (customer_id, received_at)
        index. One customer's cases share a lane, so earlier ones are stored already."""
        window = timedelta(days=self.kit.policy.current().triage.escalation.repeat_window_days)
        received = await self.cases.find(
            {"customer_id": {"$in": list({customer for customer, _, _ in asked})},
             "received_at": {"$gte": min(at for _, _, at in asked) - window,
                             "$lt": max(at for _, _, at in asked)}},
            {"customer_id": 1, "received_at": 1},
        ).to_list(None)  # fmt: skip
        return [
            sum(1 for case in received
                if case["customer_id"] == customer and case["_id"] != number
                and at - window <= case["received_at"] < at)
            for customer, number, at in asked
        ]  # fmt: skip

    async def on_opened(self, event: dict[str, Any]) -> None:
        data = event["data"]
        case_number = data["case_number"]
        received_at = datetime.fromisoformat(data["received_at"])
        customer_id = data.get("customer_id")
        customer = await self.customers.find_one({"_id": customer_id}) if customer_id else None
        previous = await self.previous_cases(customer_id, case_number, received_at)
        policy = await self.current_policy()
        decision = decide(facts_from_opened(data, customer, previous), policy)
        stored = await self.cases.find_one(
            {"_id": case_number},
            {"applied": 1, "insights": 1, "insight_reasons": 1, MASKED: 1},
        )
        decision, observed = await self.insights.observe(data, decision, stored, event["id"])
        case = {"opened": data, "customer": customer}
        message = triaged_message(case, decision, 1, self.kit.clock())
        alarms = plan_alarms(
            received_at,
            decision.first_response_due,
            decision.resolution_due,
            policy.triage.at_risk_share,
        )
        applied = await apply_once(
            self.cases,
            case_number,
            event["id"],
            {
                "$set": {
                    "opened": data,
                    "customer": customer,
                    "customer_id": customer_id,
                    "received_at": received_at,
                    "previous_cases": previous,
                    "messages": [],
                    "decision": decision_document(decision),
                    "revision": 1,
                    "alarms": alarms,
                    "next_alarm_at": next_alarm_at(alarms),
                    "alarm_version": 0,
                    "insights": observed.insights,
                    "insight_reasons": observed.reasons,
                    **add_to_outbox([message]),
                }
            },
        )
        if applied:
            self.count(decision.category, decision.urgency, decision.escalated)
            # Receipt by the channel to the triage decision: the whole intake+triage path.
            waited = (self.kit.clock() - received_at).total_seconds()
            self.receipt_to_triage.labels(data.get("channel", "unknown")).observe(max(0.0, waited))
            self.watcher.notify(next_alarm_at(alarms))
        await self.flush(case_number)

    async def redecide(self, case_number: str, cause_id: str, change: dict[str, Any]) -> None:
        """Re-run triage on a stored case with ``change`` applied to its facts."""
        case = await self.cases.find_one({"_id": case_number})
        if case is None or "decision" not in case:
            raise RetryLater(f"case {case_number} not triaged yet")
        customer = case.get("customer")
        previous = await self.previous_cases(
            case.get("customer_id"), case_number, case["received_at"]
        )
        messages = [*case.get("messages", []), *change.get("messages", [])]
        facts = dataclasses.replace(
            facts_from_opened(case["opened"], customer, previous),
            received_at=change.get("restart_clock_at") or case["received_at"],
            later_messages=tuple(messages),
            minimum_urgency=change.get("minimum_urgency", case.get("minimum_urgency")),
            minimum_urgency_reason=change.get(
                "minimum_urgency_reason", case.get("minimum_urgency_reason")
            ),
        )
        policy = await self.current_policy()
        previous_decision = decision_from_document(case["decision"])
        decision = with_reasons(
            decide(facts, policy)
            if "restart_clock_at" in change
            else retriage(previous_decision, facts, policy),
            list(case.get("insight_reasons") or []),
        )
        revision = int(case["revision"])
        update: dict[str, Any] = {
            "messages": messages,
            "minimum_urgency": facts.minimum_urgency,
            "minimum_urgency_reason": facts.minimum_urgency_reason,
        }
        changed = (
            decision.urgency != previous_decision.urgency
            or decision.first_response_due != previous_decision.first_response_due
            or decision.category != previous_decision.category
            or change.get("force_publish", False)
        )
        increments: dict[str, int] = {}
        if changed:
            message = triaged_message(case, decision, revision + 1, self.kit.clock())
            restarted = "restart_clock_at" in change
            alarms = plan_alarms(
                facts.received_at,
                decision.first_response_due,
                decision.resolution_due,
                policy.triage.at_risk_share,
                previous=None if restarted else case.get("alarms"),
            )
            update |= {
                "decision": decision_document(decision),
                "revision": revision + 1,
                "alarms": alarms,
                "next_alarm_at": next_alarm_at(alarms),
                **add_to_outbox([message]),
            }
            increments = {"alarm_version": 1}
        applied = await apply_once(
            self.cases,
            case_number,
            cause_id,
            {"$set": update, **({"$inc": increments} if increments else {})},
            expect={"revision": revision, "alarm_version": case.get("alarm_version", 0)},
        )
        if applied and changed:
            self.count(decision.category, decision.urgency, decision.escalated)
            self.watcher.notify(update["next_alarm_at"])
        await self.flush(case_number)

    async def on_message(self, event: dict[str, Any]) -> None:
        data = event["data"]
        await self.redecide(data["case_number"], event["id"], {"messages": [data.get("text", "")]})

    async def on_reopened(self, event: dict[str, Any]) -> None:
        data = event["data"]
        policy = await self.current_policy()
        await self.redecide(
            data["case_number"],
            event["id"],
            {
                "minimum_urgency": policy.followup.reopen_urgency,
                "minimum_urgency_reason": f"reopened: {data.get('reason', 'customer unhappy')}",
                "force_publish": True,
                # A reopened case is a fresh promise: its deadlines count from now.
                "restart_clock_at": datetime.fromisoformat(event["time"]),
            },
        )

    async def on_action(self, record: InboundRecord) -> None:
        """A first response, an agent's reply or a resolution stops the matching clocks; a
        reply is also checked against the house rules."""
        action = json_object(record)
        if action is None:
            return  # the followup service owns rejecting malformed actions
        stops = STOPS.get(str(action.get("type")))
        if not stops:
            return
        try:
            case_number, action_id = str(action["case_number"]), str(action["action_id"])
            at = datetime.fromisoformat(str(action["at"]))
            reply = _REPLY.validate_python(action) if action["type"] == "reply" else None
        except (KeyError, ValueError, ValidationError):
            return  # malformed: dead-lettered by the followup service
        case = await self.cases.find_one({"_id": case_number})
        if case is None or "decision" not in case:
            raise RetryLater(f"case {case_number} not triaged yet")
        if action.get("type") == "resolve":
            await note_resolved(self.cases, case_number, at)
        alarms = case.get("alarms") or {}
        messages, problems, first = [], [], False
        if reply is not None and action_id not in case.get("applied", []):
            # The case's first reply: marked so by the desk, or no first response yet.
            first = reply.first or (alarms.get("first_response") or {}).get("stopped_at") is None
            problems = check_reply(reply.text, first, self.kit.policy.current().replies)
            if problems:
                messages = [flagged_message(case_number, action_id, problems, first,
                                            self.kit.clock())]  # fmt: skip
        stopped = stop(alarms, stops, at)
        resolution = action.get("resolution") if action.get("type") == "resolve" else None
        applied = await apply_once(
            self.cases,
            case_number,
            action_id,
            {
                "$set": {
                    **{f"alarms.{name}.stopped_at": stopped[name]["stopped_at"]
                       for name in stops if name in stopped},
                    "next_alarm_at": next_alarm_at(stopped),
                    **({"resolution_root_cause": resolution.get("root_cause", "unknown")}
                       if isinstance(resolution, dict) else {}),
                    **add_to_outbox(messages),
                },
                "$inc": {"alarm_version": 1},
            },
        )  # fmt: skip
        if applied:
            for problem in problems:
                self.flagged.labels(problem.code).inc()
        if reply is not None:  # only a reply has events to publish
            await self.flush(case_number)

    def count(self, category: str, urgency: str, escalated: bool) -> None:
        self.decisions.labels(category, urgency).inc()
        if escalated:
            self.escalations.inc()


def build(kit: ServiceKit, settings: TriageSettings) -> TriageService:
    service = TriageService(kit, settings)
    service.register()
    return service
