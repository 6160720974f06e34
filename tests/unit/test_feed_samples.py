"""The `make run` feeder's view of the bundled samples: every channel, fresh ids per run,
and a reply that still names (the run's id of) the message it answers."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from services.intake.email_parser import parse_email

FEEDER = Path(__file__).resolve().parents[2] / "deploy" / "local" / "feed_samples.py"


def _feeder() -> Any:
    spec = importlib.util.spec_from_file_location("feed_samples", FEEDER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


feed = _feeder()


def test_the_samples_cover_every_channel_and_a_threaded_reply() -> None:
    samples = feed.tagged_samples(feed.SAMPLES, "r1")
    assert {s.topic for s in samples} == {
        "complaints.inbound.email", "complaints.inbound.social", "complaints.inbound.app",
    }  # fmt: skip
    replies = [s for s in samples if s.replies_to is not None]
    assert [s.file for s in replies] == ["email-utf8-double-charge-reply.eml"]
    (original,) = [s for s in samples if s.ref == replies[0].replies_to]
    assert original.file == "email-utf8-double-charge.eml"
    parsed = parse_email(replies[0].value)
    assert parsed.in_reply_to == [original.ref]
    assert parse_email(original.value).message_id == original.ref


def test_each_run_has_its_own_ids_and_nothing_else_changes() -> None:
    first = feed.tagged_samples(feed.SAMPLES, "r1")
    second = feed.tagged_samples(feed.SAMPLES, "r2")
    assert len(first) == len(second) >= 8
    assert not {s.ref for s in first} & {s.ref for s in second}
    for one, two in zip(first, second, strict=True):
        assert one.ref.replace("r1", "r2") == two.ref
        if one.topic == "complaints.inbound.email":
            assert parse_email(one.value).text == parse_email(two.value).text
        else:
            payload = json.loads(one.value)
            assert payload["message" if "message" in payload else "text"] in two.value.decode()


def test_profiles_are_keyed_by_customer_id() -> None:
    (profile,) = feed.profiles(feed.SAMPLES)
    key, value = profile
    assert key == b"C-2001"
    assert json.loads(value)["tier"] == "vip"
