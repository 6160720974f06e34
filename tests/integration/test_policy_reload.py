"""Ops edit the policy file; the running service decides by the new rules, no deploy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.test_deadline_watch import T0, Isolated, opened_event
from tests.support.infra import Infra
from tests.support.policy_files import copy_policy
from tests.support.system import FakeClock


@pytest.mark.timeout(120)
async def test_editing_the_policy_file_changes_decisions(
    infra: Infra, namespace: str, tmp_path: Path
) -> None:
    policy = copy_policy(tmp_path)
    examples = tmp_path / "triage" / "examples.jsonl"
    text = policy.read_text(encoding="utf-8")
    setup = Isolated(infra, namespace, FakeClock(T0), policy_file=policy)
    await setup.__aenter__()

    async def triage(case: str) -> dict[str, object]:
        await setup.send(
            "cases.opened", opened_event(case, "email", "包裹已經延遲五天了", T0), case
        )
        (found,) = await setup.reader.wait_for(
            lambda s: s.type == "complaint.case.triaged" and s.data["case_number"] == case
        )
        return found.data

    try:
        before = await triage("CS20261123-9101")
        assert before["urgency"] == "normal"
        assert str(before["policy_version"]).startswith("2026.11-2+model.")

        # Delivery problems become high urgency, under a new version.
        edited = text.replace('version = "2026.11-2"', 'version = "2026.11-3"').replace(
            'name = "delivery"\nurgency = "normal"', 'name = "delivery"\nurgency = "high"'
        )
        assert edited.count('urgency = "high"') > text.count('urgency = "high"')
        policy.write_text(edited, encoding="utf-8")
        os.utime(policy, (T0.timestamp() + 1, T0.timestamp() + 1))
        after = await triage("CS20261123-9102")
        assert after["urgency"] == "high"
        assert str(after["policy_version"]).startswith("2026.11-3+model.")

        # A broken edit is refused: the service keeps deciding by the last good file.
        policy.write_text(edited.replace("respond_within_hours = 4", "respond_within_hours = -1"))
        os.utime(policy, (T0.timestamp() + 2, T0.timestamp() + 2))
        kept = await triage("CS20261123-9103")
        assert (kept["urgency"], kept["policy_version"]) == ("high", after["policy_version"])

        # New labeled examples are a new model: retrained on the next decision, no restart.
        policy.write_text(edited, encoding="utf-8")
        os.utime(policy, (T0.timestamp() + 3, T0.timestamp() + 3))
        good = examples.read_text(encoding="utf-8")
        examples.write_text(
            good + '{"id": "ops-1", "text": "物流卡了一週都沒動", "category": "delivery", '
            '"urgency": "normal"}\n',
            encoding="utf-8",
        )
        os.utime(examples, (T0.timestamp() + 3, T0.timestamp() + 3))
        retrained = await triage("CS20261123-9104")
        assert str(retrained["policy_version"]).startswith("2026.11-3+model.")
        assert retrained["policy_version"] != after["policy_version"]

        # A broken examples file is refused too: the last good model keeps deciding.
        examples.write_text(good + "{not json\n", encoding="utf-8")
        os.utime(examples, (T0.timestamp() + 4, T0.timestamp() + 4))
        still = await triage("CS20261123-9105")
        assert still["policy_version"] == retrained["policy_version"]
    finally:
        await setup.__aexit__()
