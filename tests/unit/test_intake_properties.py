"""Whatever bytes arrive, the pure intake layer either makes a complaint or says why not."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.intake.cases import open_case
from services.intake.complaint import from_app, from_email, from_social
from services.policy import load_policy
from services.runtime.errors import InputRejected

POLICY = load_policy()
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
header_lines = st.lists(
    st.sampled_from(
        ["From: a@example.org", "From: =?utf-8?b?5byg?= <z@example.tw>", "Subject: =?big5?q?=A7A?=",
         "Content-Type: text/plain; charset=big5", "Content-Type: text/html; charset=gb2312",
         "Content-Transfer-Encoding: base64", "Content-Transfer-Encoding: quoted-printable",
         "Content-Type: multipart/mixed; boundary=b", "Message-ID: <m@x>", "In-Reply-To: <r@x>",
         "Auto-Submitted: no", "Subject: hello"]
    ),
    max_size=6,
)  # fmt: skip


def _must_be_complaint_or_rejection(make: object, raw: bytes) -> None:
    try:
        complaint = make(raw, NOW)  # type: ignore[operator]
    except InputRejected as rejected:
        assert rejected.code and rejected.reason
        return
    # A complaint must also make a publishable case (every event serialises to JSON).
    case = open_case(complaint, "CS20261123-0001", None, POLICY, NOW)
    for message in case["outbox"].values():
        json.loads(message["value"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_on_every_channel(raw: bytes) -> None:
    for make in (from_email, from_social, from_app):
        _must_be_complaint_or_rejection(make, raw)


@settings(max_examples=300)
@given(header_lines, st.binary(max_size=512))
def test_random_mime_shapes(headers: list[str], body: bytes) -> None:
    raw = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
    _must_be_complaint_or_rejection(from_email, raw)


@settings(max_examples=300)
@given(json_values)
def test_random_json_on_social_and_app(value: object) -> None:
    raw = json.dumps(value).encode()
    _must_be_complaint_or_rejection(from_social, raw)
    _must_be_complaint_or_rejection(from_app, raw)


@settings(max_examples=200)
@given(
    st.fixed_dictionaries(
        {"submission_id": st.text(min_size=1), "message": st.text(), "submitted_at": st.text()},
        optional={"order_value": json_values, "contact": json_values, "locale": json_values,
                  "customer_id": json_values, "subject": json_values},
    )
)  # fmt: skip
def test_almost_valid_app_forms(form: dict[str, object]) -> None:
    _must_be_complaint_or_rejection(from_app, json.dumps(form).encode())
