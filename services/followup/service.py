"""Follow-up and resolution handlers: close cases, schedule checks, act on answers."""

from __future__ import annotations

import contextlib
import json
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prometheus_client import Counter
from pydantic import TypeAdapter, ValidationError
from pymongo.errors import DuplicateKeyError

from schemas.inbound import CaseAction, FirstResponse, Resolve, SurveyResponse
from schemas.topics import (
    CASE_ACTIONS,
    CASES_COMPENSATION,
    CASES_OPENED,
    CASES_TRIAGED,
    CUSTOMER_PROFILES,
)
from services.followup.events import answered_messages, followup_id_for, resolved_messages
from services.followup.schedule import followup_due
from services.followup.scheduler import FollowupScheduler
from services.followup.settings import FollowupSettings
from services.policy.calendar import country_holidays
from services.runtime.batches import by_case_in_action
from services.runtime.customers import apply_profile_record
from services.runtime.documents import apply_once
from services.runtime.errors import InputRejected, RetryLater
from services.runtime.kit import ServiceKit
from services.runtime.outbox import add_to_outbox, flush_outbox
from services.runtime.records import InboundRecord, parse_cloudevent

_ACTION: TypeAdapter[CaseAction] = TypeAdapter(CaseAction)
KNOWN_ACTIONS = {
    "accept_offer", "approve_compensation", "reject_compensation", "resolve",
    "survey_response", "customer_reply", "first_response",
}  # fmt: skip


class FollowupService:
    def __init__(self, kit: ServiceKit, settings: FollowupSettings) -> None:
        self.kit = kit
        self.settings = settings
        self.cases = kit.db["cases"]
        self.followups = kit.db["followups"]
        self.customers = kit.db["customers"]
        self.scheduler = FollowupScheduler(kit, settings, self.followups)
        self.resolved = Counter(
            "complaints_resolved_total",
            "Resolved cases by SLA outcome",
            ["sla_met"],
            registry=kit.registry,
        )
        self.answers = Counter(
            "complaints_survey_answers_total",
            "Satisfaction answers by score and by what the case was",
            ["category", "channel", "urgency", "score"],
            registry=kit.registry,
        )
        self.reopened = Counter(
            "complaints_reopened_total",
            "Cases reopened after an unhappy answer",
            registry=kit.registry,
        )

    def register(self) -> None:
        self.kit.on_startup(self.scheduler.ensure_indexes)
        self.kit.subscribe(CASES_OPENED, self.on_opened)
        self.kit.subscribe(CASES_TRIAGED, self.on_triaged)
        self.kit.subscribe(CASES_COMPENSATION, self.on_compensation)
        self.kit.subscribe(CASE_ACTIONS, self.on_action, links=by_case_in_action)
        self.kit.subscribe(CUSTOMER_PROFILES, self.on_profile)
        self.kit.background(self.scheduler.run)

    async def on_profile(self, record: InboundRecord) -> None:
        await apply_profile_record(self.customers, record)
        customer_id = (record.key or b"").decode("utf-8", "replace")
        profile = await self.customers.find_one({"_id": customer_id}) or {}
        if profile.get("followup_opt_out"):
            await self.scheduler.cancel({"customer_id": customer_id}, "customer opted out")

    # --- the facts a resolved-case event needs ---------------------------------------

    async def on_opened(self, record: InboundRecord) -> None:
        event = parse_cloudevent(record)
        if event["type"] == "complaint.case.opened":
            data = event["data"]
            await self.cases.update_one(
                {"_id": data["case_number"]}, {"$set": {"opened": data}}, upsert=True
            )

    async def on_triaged(self, record: InboundRecord) -> None:
        event = parse_cloudevent(record)
        if event["type"] == "complaint.case.triaged":
            data = event["data"]
            revision = int(data.get("revision", 1))
            # Only a newer decision replaces the one we hold (redeliveries can be late): the
            # filter matches a case without one or with an older one, and creates a missing
            # case; a case holding this revision or a newer one is a duplicate key.
            with contextlib.suppress(DuplicateKeyError):
                await self.cases.update_one(
                    {"_id": data["case_number"], "triage_revision": {"$not": {"$gte": revision}}},
                    {"$set": {"triage": data, "triage_revision": revision}},
                    upsert=True,
                )

    async def on_compensation(self, record: InboundRecord) -> None:
        event = parse_cloudevent(record)
        data = event["data"]
        given = None
        if event["type"] == "complaint.compensation.accepted":
            given = data
        elif event["type"] == "complaint.compensation.expired" and data.get("fallback"):
            # What the customer got without choosing counts as the case's compensation.
            given = {"case_number": data["case_number"], "offer_id": data["offer_id"],
                     **data["fallback"], "granted_on_expiry": True}  # fmt: skip
        if given is not None:
            await self.cases.update_one(
                {"_id": data["case_number"]}, {"$set": {"compensation": given}}, upsert=True
            )

    # --- actions ---------------------------------------------------------------------

    async def on_action(self, record: InboundRecord) -> None:
        # This service is the one that dead-letters malformed actions; the others skip them.
        try:
            raw = json.loads((record.value or b"").decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InputRejected("invalid_json", f"action is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise InputRejected("invalid_json", "action is not a JSON object")
        if raw.get("type") not in KNOWN_ACTIONS:
            raise InputRejected("unknown_action", f"unknown action type {raw.get('type')!r}")
        try:
            action = _ACTION.validate_python(raw)
        except ValidationError as exc:
            raise InputRejected("schema_violation", str(exc)) from exc
        if isinstance(action, Resolve):
            await self.resolve(action)
        elif isinstance(action, SurveyResponse):
            await self.answer(action)
        elif isinstance(action, FirstResponse):
            await self.cases.update_one(
                {"_id": action.case_number, "first_response_at": None},
                {"$set": {"first_response_at": action.at}},
                upsert=False,
            )

    def zone_for(self, customer: dict[str, Any]) -> ZoneInfo:
        policy = self.kit.policy.current()
        try:
            return ZoneInfo(customer.get("time_zone") or policy.business_time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            return policy.zone

    async def seen_before(self, case: dict[str, Any] | None, action_id: str) -> bool:
        """An action applied before changes nothing again, whatever the case went through
        since (a reopening, a newer resolve); only what a crash left unpublished goes out."""
        if action_id not in (case or {}).get("applied", []):
            return False
        assert case is not None
        await flush_outbox(self.cases, case["_id"], self.kit.publish)
        return True

    async def resolve(self, action: Resolve) -> None:
        case_number = action.case_number
        case = await self.cases.find_one({"_id": case_number}) or {"_id": case_number}
        if await self.seen_before(case, action.action_id):
            return
        if not case.get("opened") or not case.get("triage"):
            # The CRM needs the whole story; those facts come on other topics and may lag.
            raise RetryLater(f"case {case_number}: opened/triaged facts not here yet")
        policy = self.kit.policy.current()
        opened = case.get("opened") or {}
        customer_id = opened.get("customer_id")
        customer = (
            await self.customers.find_one({"_id": customer_id}) if customer_id else None
        ) or {}
        zone = self.zone_for(customer)
        refund = (case.get("compensation") or {}).get("kind") == "refund"
        due_at, reasons = followup_due(
            action.at,
            zone,
            refund,
            policy.followup,
            country_holidays(policy.followup.holiday_country),
        )
        followup_id = followup_id_for(case_number, action.action_id)
        now = self.kit.clock()
        raw_action = action.model_dump(mode="json")
        messages = resolved_messages(case_number, case, raw_action, followup_id, due_at, now)
        # A case resolved again gets a new check; an older one not yet sent is obsolete.
        await self.scheduler.cancel(
            {"case_number": case_number, "_id": {"$ne": followup_id}}, "case resolved again"
        )
        await self.scheduler.schedule(
            followup_id,
            case_number,
            due_at,
            reasons,
            channel=opened.get("channel"),
            customer_id=opened.get("customer_id"),
            language=opened.get("language"),
            category=(case.get("triage") or {}).get("category"),
            urgency=(case.get("triage") or {}).get("urgency"),
        )
        if customer.get("followup_opt_out"):
            await self.scheduler.cancel({"_id": followup_id}, "customer opted out")
        applied = await apply_once(
            self.cases,
            case_number,
            action.action_id,
            {
                "$set": {
                    "status": "resolved",
                    "resolved_at": action.at,
                    "resolution": raw_action["resolution"],
                    "current_followup": followup_id,
                    **add_to_outbox(messages),
                }
            },
        )
        if applied:
            resolved = json.loads(messages[1]["value"])["data"]
            self.resolved.labels(str(resolved["sla_met"]).lower()).inc()
        await flush_outbox(self.cases, case_number, self.kit.publish)

    async def answer(self, action: SurveyResponse) -> None:
        case = await self.cases.find_one({"_id": action.case_number})
        if await self.seen_before(case, action.action_id):
            return
        followup_id = (case or {}).get("current_followup")
        if not followup_id:
            raise InputRejected(
                "unknown_followup", f"no satisfaction check for {action.case_number}"
            )
        rules = self.kit.policy.current().followup
        reopen = action.score <= rules.reopen_max_score
        reason = f"satisfaction score {action.score}" + (
            f": {action.comment}" if action.comment else ""
        )
        messages = answered_messages(
            action.case_number,
            followup_id,
            action.score,
            reason if reopen else None,
            self.kit.clock(),
        )
        update: dict[str, Any] = {"last_score": action.score, **add_to_outbox(messages)}
        if reopen:
            update |= {"status": "reopened", "current_followup": None}
            await self.scheduler.cancel({"case_number": action.case_number}, "case reopened")
        # Before the answer is stored: a redelivery after that finds it seen and stops.
        await self.scheduler.mark_answered(followup_id, action.score)
        applied = await apply_once(
            self.cases,
            action.case_number,
            action.action_id,
            {"$set": update, **({"$inc": {"reopen_count": 1}} if reopen else {})},
        )
        if applied:
            opened, triage = (case or {}).get("opened") or {}, (case or {}).get("triage") or {}
            self.answers.labels(
                triage.get("category") or "unknown",
                opened.get("channel") or "unknown",
                triage.get("urgency") or "unknown",
                str(action.score),
            ).inc()
            if reopen:
                self.reopened.inc()
        await flush_outbox(self.cases, action.case_number, self.kit.publish)


def build(kit: ServiceKit, settings: FollowupSettings) -> FollowupService:
    service = FollowupService(kit, settings)
    service.register()
    return service
