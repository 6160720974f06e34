"""Insights as stored documents and as `cases.insights` events. Pure.

Every event of an insight is keyed by the insight id (one insight's events in order on
one partition); its CloudEvent id is derived from the fact it reports: detection, a case
joining, an acknowledgement, a systemic resolution, subsiding.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.events import InsightEvent, InsightKey, InsightWindow
from schemas.topics import CASES_INSIGHTS
from services.runtime.kafka import OutboundMessage, event_message
from services.triage.insights.keys import CaseKey

SOURCE = "/complaints/triage"
Document = dict[str, Any]


def sample_strings(samples: list[Any]) -> list[str]:
    """The texts of stored samples ({"c": case number, "s": text}; plain strings before)."""
    return [str(sample["s"]) if isinstance(sample, dict) else str(sample) for sample in samples]


def status_of(insight: Document) -> str:
    if insight.get("status") == "subsided":
        return "subsided"
    return "acknowledged" if insight.get("acknowledged") else "open"


def insight_data(insight: Document, window_hours: int) -> InsightEvent:
    acknowledged = insight.get("acknowledged") or {}
    return InsightEvent(
        insight_id=insight["_id"],
        kind=insight["kind"],
        key=InsightKey.model_validate(insight["key"]),
        window=InsightWindow(
            start=insight["window_start"], end=insight["window_end"], hours=window_hours
        ),
        count=int(insight["count"]),
        baseline=float(insight["baseline"]),
        case_numbers=list(insight["case_numbers"]),
        case_total=int(insight.get("case_total") or len(insight["case_numbers"])),
        first_seen=insight.get("first_seen"),
        sample_texts=sample_strings(insight.get("sample_texts") or []),
        threshold=insight.get("threshold"),
        status=status_of(insight),
        detected_at=insight.get("detected_at"),
        owner=acknowledged.get("owner"),
        systemic_resolutions=len(insight.get("systemic") or []),
        policy_version=insight.get("policy_version"),
    )


def insight_message(
    event_type: str,
    insight: Document,
    window_hours: int,
    now: datetime,
    fact: tuple[str, ...],
    change: str | None = None,
) -> OutboundMessage:
    """``complaint.insight.<event_type>`` for the insight as ``insight`` describes it."""
    data = insight_data(insight, window_hours)
    data.change = change
    return event_message(
        CASES_INSIGHTS,
        f"complaint.insight.{event_type}",
        SOURCE,
        insight["_id"],
        data,
        now,
        (insight["_id"], *fact),
    )


def join_reason(insight: Document, key: CaseKey, count: int, window_hours: int) -> str:
    """What the case's triage reasons say about the systemic issue it is part of."""
    return (
        f"part of systemic issue {insight['_id']}: {count} customers in {window_hours} h "
        f"about {key.describe()}"
    )
