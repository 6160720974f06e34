"""The fuzz verdict's bookkeeping (tests/chaos/fuzz.py): an accepted record is matched to
its case event by the id the events carry and to intake's claim by the id's digest (found
when every accepted record of a fuzz run was reported as lost after the claims became
digests)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from schemas.topics import INBOUND_APP
from services.intake.complaint import from_app, source_key_for
from tests.chaos.fuzz import Sent, account, expectation

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "local" / "samples"
AT_MS = 1_795_000_000_000


def _opened(channel: str, source_ref: str) -> Any:
    return SimpleNamespace(
        type="complaint.case.opened",
        case_number="CS20261124-0001",
        data={"channel": channel, "source_ref": source_ref},
    )


def test_an_accepted_app_form_is_one_case_opened_under_its_digested_claim() -> None:
    raw = (SAMPLE / "app-late-delivery.json").read_bytes()
    source_ref = from_app(raw, datetime.fromtimestamp(AT_MS / 1000, UTC)).source_ref
    expect = expectation(INBOUND_APP, raw, AT_MS)
    sent = [Sent(INBOUND_APP, 0, 0, b"digest", expect)]
    sources = {source_key_for("app", source_ref): {"kind": "opened"}}
    problems: list[str] = []

    counts = account(sent, [_opened("app", source_ref)], sources, problems)

    assert problems == []
    assert counts["cases opened"] == 1


def test_an_accepted_record_without_a_case_event_is_a_violation() -> None:
    raw = (SAMPLE / "app-late-delivery.json").read_bytes()
    expect = expectation(INBOUND_APP, raw, AT_MS)
    sent = [Sent(INBOUND_APP, 0, 0, b"digest", expect)]
    problems: list[str] = []

    account(sent, [], {}, problems)

    assert len(problems) == 1
