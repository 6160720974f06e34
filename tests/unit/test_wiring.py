"""Every subscriber of every service commits after the handler and belongs to a group."""

from __future__ import annotations

from pathlib import Path

import pytest
from faststream import AckPolicy

from tests.support.system import FACTORIES

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_every_subscriber_has_a_group_and_commits_after_processing(name: str) -> None:
    settings_class, factory = FACTORIES[name]
    app = factory(settings_class())
    subscribers = app.broker.subscribers
    assert subscribers, f"{name} subscribes to nothing"
    for subscriber in subscribers:
        assert subscriber.group_id, f"{name}: subscriber without group_id"
        assert subscriber.group_id == f"complaints.{name}"  # one consumer group per service
        assert subscriber.ack_policy is AckPolicy.NACK_ON_ERROR


def test_no_ack_first_anywhere_in_services() -> None:
    offenders = [
        str(path)
        for path in SERVICES_DIR.rglob("*.py")
        if "ACK_FIRST" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
