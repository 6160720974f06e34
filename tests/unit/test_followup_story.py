"""What a resolved record says about compensation, and its revisions (services/followup/
story.py and events.py): pure, no broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.followup.events import resolved_messages, revised_resolved_message
from services.followup.story import (
    ACCEPTED,
    EXPIRED,
    awaited_acceptances,
    given_by,
    same_compensation,
)

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CASE = "CS20261123-0042"
REFUND = {"case_number": CASE, "offer_id": f"{CASE}-O1", "option_id": f"{CASE}-O1-1",
          "kind": "refund", "value": {"amount": "1290.00", "currency": "TWD"},
          "description": "Refund of TWD 1,290"}  # fmt: skip
COUPON = {"option_id": f"{CASE}-O1-2", "kind": "coupon",
          "value": {"amount": "100.00", "currency": "TWD"}, "description": "Store credit"}  # fmt: skip


def case(**extra: Any) -> dict[str, Any]:
    opened = {"customer_id": "C-1", "channel": "app", "received_at": T0.isoformat()}
    triage = {"category": "refund", "urgency": "high",
              "first_response_due": (T0 + timedelta(hours=4)).isoformat(),
              "resolution_due": (T0 + timedelta(hours=48)).isoformat()}  # fmt: skip
    return {"opened": opened, "triage": triage, **extra}


def data(message: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(message["value"])["data"])


def test_what_an_outcome_gives() -> None:
    assert given_by(ACCEPTED, REFUND) == REFUND
    expired = {"case_number": CASE, "offer_id": f"{CASE}-O1", "fallback": COUPON}
    assert given_by(EXPIRED, expired) == {"case_number": CASE, "offer_id": f"{CASE}-O1",
                                          **COUPON, "granted_on_expiry": True}  # fmt: skip
    assert given_by(EXPIRED, {**expired, "fallback": None}) is None


@pytest.mark.parametrize(
    ("stored", "awaited"),
    [
        ({}, []),
        ({"accept_actions": [{"offer_id": "O1", "option_id": "O1-1"}]}, ["O1"]),
        ({"accept_actions": [{"offer_id": "O1", "option_id": "O1-1"}], "ended_offers": ["O1"]}, []),
        # Accepted twice (a second accept on an offer already taken, refused): one wait.
        ({"accept_actions": [{"offer_id": "O1", "option_id": "O1-1"},
                             {"offer_id": "O1", "option_id": "O1-2"}]}, ["O1"]),
        ({"accept_actions": [{"offer_id": "O2", "option_id": "O2-1"}], "ended_offers": ["O1"]},
         ["O2"]),
    ],
)  # fmt: skip
def test_a_resolve_waits_only_for_acceptances_without_an_outcome(
    stored: dict[str, Any], awaited: list[str]
) -> None:
    assert awaited_acceptances(stored) == awaited


def test_the_same_compensation_is_the_same_option_of_the_same_offer() -> None:
    assert same_compensation(REFUND, {**REFUND, "description": "退還訂單金額"})
    assert not same_compensation(REFUND, {**REFUND, "option_id": f"{CASE}-O1-2"})
    assert not same_compensation(REFUND, None) and same_compensation(None, None)


def test_the_resolved_record_carries_what_was_accepted_and_its_revision() -> None:
    action = {"action_id": "desk-1", "at": (T0 + timedelta(hours=1)).isoformat(),
              "actor": "agent-7", "resolution": {"summary": "refunded", "root_cause": "one_off"}}  # fmt: skip
    scheduled, resolved = resolved_messages(CASE, case(compensation=REFUND), action, "F1",
                                            T0 + timedelta(days=7), T0)  # fmt: skip
    assert scheduled["type"] == "complaint.followup.scheduled"
    record = data(resolved)
    assert record["compensation"] == REFUND and record["revision"] == 1

    later = revised_resolved_message(record, "desk-1", 2, None, T0 + timedelta(hours=2))
    revised = data(later)
    assert later["id"] != resolved["id"] and later["key"] == CASE
    assert revised["revision"] == 2 and revised["compensation"] is None
    unchanged = {k: v for k, v in record.items() if k not in {"revision", "compensation"}}
    assert {k: revised[k] for k in unchanged} == unchanged
    # A repeated revision (a redelivery) is the same event.
    assert revised_resolved_message(record, "desk-1", 2, None, T0)["id"] == later["id"]


def test_a_check_that_will_not_happen_is_announced_with_the_resolution() -> None:
    action = {"action_id": "desk-2", "at": T0.isoformat(), "actor": "agent-7",
              "resolution": {"summary": "fixed", "root_cause": "unknown"}}  # fmt: skip
    messages = resolved_messages(CASE, case(), action, "F2", T0 + timedelta(days=3), T0,
                                 cancelled_because="customer opted out")  # fmt: skip
    assert [m["type"] for m in messages] == [
        "complaint.followup.scheduled", "complaint.case.resolved", "complaint.followup.cancelled"
    ]  # fmt: skip
    assert data(messages[2]) == {"case_number": CASE, "followup_id": "F2",
                                 "reason": "customer opted out"}  # fmt: skip
