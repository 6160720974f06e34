"""Resolution and follow-up events. Pure."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from schemas.events import (
    CaseReopened,
    CaseResolved,
    FollowupAnswered,
    FollowupCancelled,
    FollowupScheduled,
    FollowupSent,
)
from schemas.topics import CASES_FOLLOWUPS, CASES_RESOLVED
from services.runtime.kafka import OutboundMessage, event_message, notification_message

SOURCE = "/complaints/followup"


def followup_id_for(case_number: str, resolve_action_id: str) -> str:
    return f"{case_number}-F{hashlib.sha256(resolve_action_id.encode()).hexdigest()[:8]}"


def _when(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def sla_met(case: dict[str, Any], resolved_at: datetime) -> bool:
    triage = case.get("triage") or {}
    resolution_due = _when(triage.get("resolution_due"))
    first_due = _when(triage.get("first_response_due"))
    # Without a recorded first response, the resolution itself was the first response.
    first_response_at = _when(case.get("first_response_at")) or resolved_at
    on_time_resolution = resolution_due is None or resolved_at <= resolution_due
    on_time_response = first_due is None or first_response_at <= first_due
    return on_time_resolution and on_time_response


def resolved_messages(
    case_number: str,
    case: dict[str, Any],
    action: dict[str, Any],
    followup_id: str,
    due_at: datetime,
    now: datetime,
    cancelled_because: str | None = None,
) -> list[OutboundMessage]:
    """The resolution's events: the check scheduled, the resolved record (revision 1), and
    the check's cancellation when it will not happen (the customer opted out)."""
    opened = case.get("opened") or {}
    triage = case.get("triage") or {}
    resolved_at = _when(action["at"])
    assert resolved_at is not None
    resolved = CaseResolved(
        case_number=case_number,
        customer_id=opened.get("customer_id"),
        channel=opened.get("channel"),
        category=triage.get("category"),
        urgency=triage.get("urgency"),
        opened_at=_when(opened.get("received_at")),
        resolved_at=resolved_at,
        first_response_due=_when(triage.get("first_response_due")),
        resolution_due=_when(triage.get("resolution_due")),
        sla_met=sla_met(case, resolved_at),
        compensation=case.get("compensation"),
        resolution=action["resolution"],
        followup_due_at=due_at,
        resolved_by=action.get("actor"),
        reopen_count=case.get("reopen_count", 0),
    )
    scheduled = FollowupScheduled(case_number=case_number, followup_id=followup_id, due_at=due_at)
    fact = (case_number, action["action_id"])
    messages = [
        event_message(CASES_FOLLOWUPS, "complaint.followup.scheduled", SOURCE, case_number,
                      scheduled, now, fact),
        event_message(CASES_RESOLVED, "complaint.case.resolved", SOURCE, case_number,
                      resolved, now, fact),
    ]  # fmt: skip
    if cancelled_because:
        messages.append(cancelled_message(case_number, followup_id, cancelled_because, now))
    return messages


def revised_resolved_message(
    record: dict[str, Any],
    resolve_action_id: str,
    revision: int,
    compensation: dict[str, Any] | None,
    now: datetime,
) -> OutboundMessage:
    """The resolved record again, with the compensation the case got after it went out.

    Same case and resolution, ``revision`` + 1, a new event id (one per revision)."""
    revised = CaseResolved.model_validate(
        {**record, "compensation": compensation, "revision": revision}
    )
    case_number = revised.case_number
    fact = (case_number, resolve_action_id, "revision", str(revision))
    return event_message(CASES_RESOLVED, "complaint.case.resolved", SOURCE, case_number,
                         revised, now, fact)  # fmt: skip


def cancelled_message(
    case_number: str, followup_id: str, reason: str, now: datetime
) -> OutboundMessage:
    """A scheduled check that will not happen: one event per check, whatever the reason."""
    data = FollowupCancelled(case_number=case_number, followup_id=followup_id, reason=reason)
    return event_message(CASES_FOLLOWUPS, "complaint.followup.cancelled", SOURCE, case_number,
                         data, now, (followup_id, "cancelled"))  # fmt: skip


_SURVEY = {
    "zh-Hant": "您好，關於案件 {case}，想請問我們的處理是否讓您滿意？請以 1 到 5 分告訴我們，謝謝您。",
    "zh-Hans": "您好，关于案件 {case}，想请问我们的处理是否让您满意？请以 1 到 5 分告诉我们，谢谢您。",
    "en": "Hello, about case {case}: did we make it right? Please rate us from 1 to 5. Thank you.",
}


def sent_messages(followup: dict[str, Any], now: datetime) -> list[OutboundMessage]:
    case_number = followup["case_number"]
    fact = (followup["_id"], "sent")
    sent = event_message(
        CASES_FOLLOWUPS,
        "complaint.followup.sent",
        SOURCE,
        case_number,
        FollowupSent(case_number=case_number, followup_id=followup["_id"]),
        now,
        fact,
    )
    return [
        sent,
        survey_notification(followup, "satisfaction_survey", _SURVEY, now, "survey_invitation"),
    ]


_REMINDER = {
    "zh-Hant": "您好，想再次請問案件 {case} 的處理是否讓您滿意？請以 1 到 5 分告訴我們，您的意見對我們很重要。",
    "zh-Hans": "您好，想再次请问案件 {case} 的处理是否让您满意？请以 1 到 5 分告诉我们，您的意见对我们很重要。",
    "en": "Hello again: did we make it right with case {case}? A rating from 1 to 5 helps us a lot.",
}


def reminder_messages(followup: dict[str, Any], now: datetime) -> list[OutboundMessage]:
    """The one reminder when a survey got no answer."""
    return [
        survey_notification(
            followup, "satisfaction_survey_reminder", _REMINDER, now, "survey_reminder"
        )
    ]


def survey_notification(
    followup: dict[str, Any], template: str, texts: dict[str, str], now: datetime, fact: str
) -> OutboundMessage:
    """The survey (or its reminder) in the customer's language, English when we have none."""
    case_number = followup["case_number"]
    language = followup.get("language") or "zh-Hant"
    chosen = language if language in texts else "en"
    return notification_message(
        SOURCE,
        case_number,
        followup.get("channel"),
        followup.get("customer_id"),
        f"{template}.{chosen}",
        chosen,
        texts[chosen].format(case=case_number),
        now,
        (followup["_id"], fact),
    )


def answered_messages(
    case_number: str, followup_id: str, score: int, reopen_reason: str | None, now: datetime
) -> list[OutboundMessage]:
    answered = event_message(
        CASES_FOLLOWUPS,
        "complaint.followup.answered",
        SOURCE,
        case_number,
        FollowupAnswered(case_number=case_number, followup_id=followup_id, score=score),
        now,
        (followup_id, "answered"),
    )
    messages = [answered]
    if reopen_reason:
        reopened = event_message(
            CASES_FOLLOWUPS,
            "complaint.case.reopened",
            SOURCE,
            case_number,
            CaseReopened(case_number=case_number, reason=reopen_reason),
            now,
            (followup_id, "reopened"),
        )
        messages.append(reopened)
    return messages
