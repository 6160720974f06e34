"""Follow-up and resolution handlers: close cases, schedule checks, act on answers."""

from __future__ import annotations

import json
import logging
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prometheus_client import Counter
from pydantic import TypeAdapter, ValidationError
from pymongo.errors import DuplicateKeyError

from schemas.inbound import (
    AcceptOffer,
    CaseAction,
    EraseCustomer,
    FirstResponse,
    Reply,
    Resolve,
    SurveyResponse,
)
from schemas.topics import (
    CASE_ACTIONS,
    CASES_COMPENSATION,
    CASES_OPENED,
    CASES_TRIAGED,
    CUSTOMER_ERASURES,
    CUSTOMER_PROFILES,
)
from services.followup.events import (
    answered_messages,
    followup_id_for,
    resolved_messages,
    revised_resolved_message,
)
from services.followup.privacy import FollowupPrivacy
from services.followup.schedule import followup_due
from services.followup.scheduler import FollowupScheduler
from services.followup.settings import FollowupSettings
from services.followup.story import OUTCOMES, awaited_acceptances, given_by, same_compensation
from services.policy.calendar import country_holidays
from services.runtime.batches import by_case_in_action
from services.runtime.customers import apply_profile_record
from services.runtime.documents import apply_once
from services.runtime.erasure import erasure_found_by_intake
from services.runtime.errors import InputRejected, RetryLater
from services.runtime.kit import ServiceKit
from services.runtime.outbox import MASKED, add_to_outbox, flush_outbox
from services.runtime.records import InboundRecord, parse_cloudevent
from services.runtime.retention import RetentionLoop, note_reopened, note_resolved

log = logging.getLogger(__name__)
_ACTION: TypeAdapter[CaseAction] = TypeAdapter(CaseAction)
KNOWN_ACTIONS = {
    "accept_offer", "approve_compensation", "reject_compensation", "resolve",
    "survey_response", "customer_reply", "first_response", "reply", "erase_customer",
    "acknowledge_insight",
}  # fmt: skip


class FollowupService:
    def __init__(self, kit: ServiceKit, settings: FollowupSettings) -> None:
        self.kit = kit
        self.settings = settings
        self.cases = kit.db["cases"]
        self.followups = kit.db["followups"]
        self.customers = kit.db["customers"]
        self.scheduler = FollowupScheduler(kit, settings, self.followups)
        self.privacy = FollowupPrivacy(kit.db, kit.registry, kit.publish)
        self.retention = RetentionLoop(
            kit, self.cases, self.privacy.mask_case, settings.retention_poll_seconds
        )
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
        self.ignored = Counter(
            "complaints_actions_ignored_total",
            "Actions that changed nothing, e.g. a resolve for a case already resolved",
            ["type", "reason"],
            registry=kit.registry,
        )

    def register(self) -> None:
        self.kit.on_startup(self.scheduler.ensure_indexes)
        self.kit.subscribe(CASES_OPENED, self.on_opened)
        self.kit.subscribe(CASES_TRIAGED, self.on_triaged)
        self.kit.subscribe(CASES_COMPENSATION, self.on_compensation)
        self.kit.subscribe(CASE_ACTIONS, self.on_action, links=by_case_in_action)
        self.kit.subscribe(CUSTOMER_PROFILES, self.on_profile)
        self.kit.subscribe(CUSTOMER_ERASURES, self.on_erasure)
        self.kit.background(self.scheduler.run)
        self.kit.on_startup(self.retention.ensure_indexes)
        self.kit.background(self.retention.run)

    async def on_profile(self, record: InboundRecord) -> None:
        await apply_profile_record(self.customers, record)
        customer_id = (record.key or b"").decode("utf-8", "replace")
        profile = await self.customers.find_one({"_id": customer_id}) or {}
        if profile.get("followup_opt_out"):
            await self.scheduler.cancel({"customer_id": customer_id}, "customer opted out")

    async def on_erasure(self, record: InboundRecord) -> None:
        erasure = erasure_found_by_intake(parse_cloudevent(record))
        if erasure is not None:
            await self.privacy.erase(erasure, self.kit.clock(), self.kit.publish)

    async def flush(self, case_number: str) -> None:
        # A case erased before (a late event, a redelivery) is masked again after the write.
        await flush_outbox(self.cases, case_number, self.kit.publish, masked=self.privacy.mask_case)

    # --- the facts a resolved-case event needs ---------------------------------------

    async def on_opened(self, record: InboundRecord) -> None:
        event = parse_cloudevent(record)
        if event["type"] == "complaint.case.opened":
            data = event["data"]
            case_number = data["case_number"]
            try:
                # Not on a case erased before it arrived: that is a duplicate key here.
                await self.cases.update_one(
                    {"_id": case_number, MASKED: None}, {"$set": {"opened": data}}, upsert=True
                )
            except DuplicateKeyError:
                await self.cases.update_one({"_id": case_number}, {"$set": {"opened": data}})
                await self.privacy.remask(case_number)

    async def on_triaged(self, record: InboundRecord) -> None:
        event = parse_cloudevent(record)
        if event["type"] == "complaint.case.triaged":
            data = event["data"]
            revision = int(data.get("revision", 1))
            # Only a newer decision replaces the one we hold (redeliveries can be late): the
            # filter matches a case without one or with an older one, and creates a missing
            # case; a case holding this revision or a newer one is a duplicate key.
            newer = {"triage_revision": {"$not": {"$gte": revision}}}
            update = {"$set": {"triage": data, "triage_revision": revision}}
            try:
                await self.cases.update_one(
                    {"_id": data["case_number"], **newer, MASKED: None}, update, upsert=True
                )
            except DuplicateKeyError:
                # A newer revision is held (nothing to do), or the case was erased: then
                # the decision is kept, masked.
                result = await self.cases.update_one(
                    {"_id": data["case_number"], **newer, MASKED: {"$ne": None}}, update
                )
                if result.modified_count:
                    await self.privacy.remask(data["case_number"])

    async def on_compensation(self, record: InboundRecord) -> None:
        """An offer's outcome: the case's compensation, and a new revision of its resolved
        record when it is resolved and the outcome changes what it got (services/followup/
        story.py has the rule)."""
        event = parse_cloudevent(record)
        if event["type"] not in OUTCOMES:
            return
        data = event["data"]
        case_number = data["case_number"]
        case = await self.cases.find_one({"_id": case_number})
        if case is not None and event["id"] in case.get("applied", []):
            await self.flush(case_number)
            return
        given = given_by(event["type"], data)
        update: dict[str, Any] = {"$addToSet": {"ended_offers": data["offer_id"]}}
        revision = None
        if given is not None and not same_compensation(given, (case or {}).get("compensation")):
            changes: dict[str, Any] = {"compensation": given}
            update["$inc"] = {"compensation_version": 1}
            resolved = (case or {}).get("resolved_record")
            if case is not None and case.get("status") == "resolved" and resolved:
                revision = int(case.get("resolved_revision") or 1) + 1
                message = revised_resolved_message(
                    resolved, case["resolve_action_id"], revision, given, self.kit.clock()
                )
                changes |= {"resolved_record": json.loads(message["value"])["data"],
                            "resolved_revision": revision, **add_to_outbox([message])}  # fmt: skip
            update["$set"] = changes
        # A resolution stored meanwhile would miss this outcome: then decide again.
        expect = None if case is None else {
            "status": case.get("status"), "resolved_revision": case.get("resolved_revision"),
        }  # fmt: skip
        applied = await apply_once(self.cases, case_number, event["id"], update, expect=expect)
        if applied and revision is not None:
            log.info("resolved record revised to %d by %s", revision, event["type"],
                     extra={"case_number": case_number, "event_id": event["id"]})  # fmt: skip
        await self.flush(case_number)

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
        if isinstance(action, EraseCustomer):
            return  # intake finds the customer's cases; this service acts on its report
        if isinstance(action, Resolve):
            await self.resolve(action, record)
        elif isinstance(action, SurveyResponse):
            await self.answer(action)
        elif isinstance(action, AcceptOffer):
            # Noted in the order of cases.actions: a resolve behind it waits for its outcome.
            accepted = {"offer_id": action.offer_id, "option_id": action.option_id,
                        "action_id": action.action_id}  # fmt: skip
            await self.cases.update_one(
                {"_id": action.case_number},
                {"$addToSet": {"accept_actions": accepted}},
                upsert=True,
            )
        elif isinstance(action, (FirstResponse, Reply)):
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
        await self.flush(case["_id"])
        return True

    async def resolve(self, action: Resolve, record: InboundRecord) -> None:
        case_number = action.case_number
        case = await self.cases.find_one({"_id": case_number}) or {"_id": case_number}
        if await self.seen_before(case, action.action_id):
            return
        if not case.get("opened") or not case.get("triage"):
            # The CRM needs the whole story; those facts come on other topics and may lag.
            raise RetryLater(f"case {case_number}: opened/triaged facts not here yet")
        if case.get("status") == "resolved":
            # One resolution, one record: pressing "resolve" again changes nothing.
            await self.ignore(action, "already_resolved")
            return
        awaited = awaited_acceptances(case)
        if awaited:
            if self.kit.waited_seconds(record) < self.settings.acceptance_wait_seconds:
                raise RetryLater(f"case {case_number}: waiting for the outcome of {awaited}")
            log.warning("resolved before the outcome of accepted offer(s) %s arrived; a late "
                        "outcome revises the record", awaited,
                        extra={"case_number": case_number})  # fmt: skip
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
        opted_out = "customer opted out" if customer.get("followup_opt_out") else None
        messages = resolved_messages(case_number, case, raw_action, followup_id, due_at, now,
                                     cancelled_because=opted_out)  # fmt: skip
        resolved = json.loads(messages[1]["value"])["data"]
        # A case resolved again (after a reopening) gets a new check; an older one not yet
        # sent will not happen.
        await self.scheduler.cancel(
            {"case_number": case_number, "_id": {"$ne": followup_id}}, "case resolved again"
        )
        await self.scheduler.schedule(
            followup_id,
            case_number,
            due_at,
            reasons,
            cancelled_because=opted_out,
            channel=opened.get("channel"),
            customer_id=opened.get("customer_id"),
            language=opened.get("language"),
            category=(case.get("triage") or {}).get("category"),
            urgency=(case.get("triage") or {}).get("urgency"),
        )
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
                    "resolve_action_id": action.action_id,
                    "resolved_record": resolved,
                    "resolved_revision": 1,
                    **add_to_outbox(messages),
                },
                # Waited for once (an acceptance compensation refused never has an outcome):
                # a later resolution does not wait for it again; a late outcome still revises.
                **({"$addToSet": {"ended_offers": {"$each": awaited}}} if awaited else {}),
            },
            # An outcome or another resolution stored meanwhile: decide again with it.
            expect={"status": case.get("status"),
                    "compensation_version": case.get("compensation_version")},
        )  # fmt: skip
        await note_resolved(self.cases, case_number, action.at)  # retention counts from now
        if applied:
            self.resolved.labels(str(resolved["sla_met"]).lower()).inc()
        await self.flush(case_number)

    async def ignore(self, action: CaseAction, reason: str) -> None:
        """Record that ``action`` changed nothing (once: a redelivery is not counted again)."""
        counted = await apply_once(
            self.cases, action.case_number, action.action_id,
            {"$set": {"last_ignored_action": action.action_id}},
        )  # fmt: skip
        if counted:
            self.ignored.labels(action.type, reason).inc()
            log.info("%s %s ignored: %s", action.type, action.action_id, reason,
                     extra={"case_number": action.case_number, "reason": reason})  # fmt: skip

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
        # The answered check is answered, even before it was sent; any other check of the
        # case not yet sent will not happen once it reopens.
        await self.scheduler.mark_answered(followup_id, action.score)
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
        if reopen:
            await note_reopened(self.cases, action.case_number, self.kit.clock())
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
        await self.flush(action.case_number)


def build(kit: ServiceKit, settings: FollowupSettings) -> FollowupService:
    service = FollowupService(kit, settings)
    service.register()
    return service
