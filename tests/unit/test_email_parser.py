from __future__ import annotations

from pathlib import Path

import pytest

from services.intake.email_parser import UnparseableEmail, parse_email, trim_quoted
from services.intake.language import detect_language


def test_big5_quoted_printable_multipart(samples: Path) -> None:
    parsed = parse_email((samples / "email-big5-cracked-mug.eml").read_bytes())
    assert parsed.subject == "收到的杯子有裂痕"
    assert parsed.from_address == "chen.mei@example.net"
    assert parsed.from_name == "陳小姐"
    assert parsed.message_id == "<sample-002@mail.example.net>"
    assert "今天收到的馬克杯有一條裂痕" in parsed.text
    assert parsed.auto_reply_reason is None


def test_utf8_base64_single_part(samples: Path) -> None:
    parsed = parse_email((samples / "email-double-charge.eml").read_bytes())
    assert parsed.subject == "信用卡被重複扣款"
    assert "扣了兩次 NT$1,580" in parsed.text


def test_html_only_mail_becomes_readable_text_without_scripts() -> None:
    raw = (
        b"From: x@example.org\r\nSubject: hi\r\nMessage-ID: <h1@x>\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>p{}</style><script>alert(1)</script></head>"
        b"<body><p>My order&nbsp;is <b>late</b></p><p>Please help</p></body></html>"
    )
    parsed = parse_email(raw)
    assert parsed.text == "My order is late\n\nPlease help"


def test_auto_reply_is_recognised() -> None:
    raw = (
        b"From: x@example.org\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n"
        b"Message-ID: <a1@x>\r\n\r\nI am away."
    )
    assert parse_email(raw).auto_reply_reason == "Auto-Submitted: auto-replied"


def test_quoted_reply_is_trimmed_but_kept_in_full_text() -> None:
    body = "Still broken.\n\nOn Mon, 23 Nov 2026 someone wrote:\n> old text\n"
    assert trim_quoted(body) == "Still broken."


@pytest.mark.parametrize("raw", [b"", b"   ", b"\x00\x01garbage without headers"])
def test_not_a_message_is_refused(raw: bytes) -> None:
    with pytest.raises(UnparseableEmail):
        parse_email(raw)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("我的包裹已經延遲五天了", "zh-Hant"),
        ("我的包裹已经延迟五天了，没有人回复", "zh-Hans"),
        ("My parcel is five days late", "en"),
        ("訂單 O-123 的 refund 還沒收到", "zh-Hant"),
    ],
)
def test_language(text: str, language: str) -> None:
    assert detect_language(text) == language
