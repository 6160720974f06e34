"""Malformed input found by `make chaos ARGS="--fuzz"`: it is bad input (a DLQ record with a
precise reason), never an internal error with a stack trace."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from services.intake.complaint import from_app, from_email, from_social
from services.runtime.errors import InputRejected

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize("parse", [from_app, from_social])
def test_json_nested_beyond_the_parser_is_invalid_json(parse: object) -> None:
    raw = b'{"submission_id": "x", "message": "m", "nest": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    with pytest.raises(InputRejected) as rejected:
        parse(raw, NOW)  # type: ignore[operator]
    assert rejected.value.code == "invalid_json"


@pytest.mark.parametrize("raw", [b"From: amy@", b"From: amy@\r\nSubject: x\r\n\r\nbody",
                                 b"Subject: hi\r\nFrom: <@>\r\n\r\nbody"])  # fmt: skip
def test_a_from_header_cut_short_is_undecodable_or_handled(raw: bytes) -> None:
    try:
        complaint = from_email(raw, NOW)
    except InputRejected as rejected:
        assert rejected.code == "undecodable_mime"
    else:
        assert complaint.source_ref


@pytest.mark.parametrize(
    ("parse", "payload"),
    [
        (from_app, {"submission_id": "s", "message": "m", "subject": "\ud800",
                    "submitted_at": NOW.isoformat()}),
        (from_app, {"submission_id": "s", "message": "m", "customer_id": "\udfff",
                    "submitted_at": NOW.isoformat()}),
        (from_social, {"platform": "x", "post_id": "p", "author": {"id": "\ud83d"}, "text": "t"}),
        (from_social, {"platform": "x", "post_id": "p", "author": {"id": "a"}, "text": "a\udc00"}),
    ],
)  # fmt: skip
def test_a_lone_surrogate_escape_is_invalid_json(parse: Any, payload: dict[str, Any]) -> None:
    raw = json.dumps(payload).encode()  # ASCII: the surrogate travels as \\udXXX
    with pytest.raises(InputRejected) as rejected:
        parse(raw, NOW).fingerprint()
    assert rejected.value.code == "invalid_json"


def test_escaped_text_that_is_text_stays_valid() -> None:
    raw = json.dumps({"platform": "x", "post_id": "p", "author": {"id": "a"},
                      "text": "😀 and a literal \\ud800"}).encode()  # fmt: skip
    complaint = from_social(raw, NOW)
    assert complaint.text == "😀 and a literal \\ud800"
    assert complaint.fingerprint()
