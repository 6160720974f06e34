"""The chaos verdict itself (tests/chaos/verdict.py): it passes a clean history and names
each kind of violation it is there to catch."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from tests.chaos.outbound import Seen
from tests.chaos.traffic import BadInput, Ledger, Submission
from tests.chaos.verdict import judge

NOW = datetime(2026, 11, 24, tzinfo=UTC)
CASE = "CS20261124-0001"


def seen(event_type: str, event_id: str, topic: str = "cases.opened", **data: Any) -> Seen:
    event = {"id": event_id, "type": f"complaint.{event_type}", "time": NOW.isoformat(),
             "data": {"case_number": CASE, **data}}  # fmt: skip
    return Seen(topic, 0, 0, CASE.encode(), json.dumps(event).encode(), event)


def history() -> tuple[Ledger, list[Seen], dict[str, Any]]:
    ledger = Ledger(submissions=[Submission("app", "complaints.inbound.app", "app-1", b"{}", "C-1", "new")],
                    bad_inputs=[BadInput("complaints.inbound.app", b"{bad", "invalid_json")])  # fmt: skip
    coupon = {"option_id": f"{CASE}-O1-1", "kind": "coupon", "value": {"amount": "200.00"}}
    events = [
        seen("case.opened", "e1", channel="app", source_ref="app-1"),
        seen("case.triaged", "e2", "cases.triaged", revision=1, customer_id="C-1"),
        seen(
            "compensation.proposed",
            "e3",
            "cases.compensation",
            offer_id=f"{CASE}-O1",
            options=[coupon],
        ),
        seen("input.rejected", "e4", "complaints.dlq", original=base64.b64encode(b"{bad").decode()),
    ]
    store = {"budgets": [{"_id": "delivery:2026-11", "spent_cents": 20000, "pending": []}],
             "budget_charges": [{"_id": f"{CASE}-O1", "budget": "delivery:2026-11",
                                 "cents": 20000, "done": [f"{CASE}-O1#0"]}],
             "goodwill": [{"_id": "C-1", "charges": [{"offer_id": f"{CASE}-O1", "cents": 20000}]}],
             "intake_sources": {}, "outboxes": []}  # fmt: skip
    return ledger, events, store


def test_a_clean_history_passes() -> None:
    verdict = judge(*history(), NOW, [])
    assert verdict.ok, verdict.report()


def test_each_violation_is_named() -> None:
    ledger, events, store = history()
    events.append(seen("case.opened", "e1", channel="app", source_ref="app-1", text="again"))
    events.append(
        seen("input.rejected", "e5", "complaints.dlq", original=base64.b64encode(b"ok").decode())
    )
    store["budget_charges"][0]["cents"] = 40000
    store["outboxes"].append(("triage.cases", CASE, 1))
    ledger.submissions.append(
        Submission("app", "complaints.inbound.app", "app-2", b"{}", "C-1", "new")
    )
    verdict = judge(ledger, events, store, NOW, ["an instance did not come back"])
    assert {rule for rule, examples in verdict.violations.items() if examples} == {
        "payloads", "dlq", "money", "outbox", "submissions", "operations",
    }  # fmt: skip
