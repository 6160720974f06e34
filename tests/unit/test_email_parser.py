from __future__ import annotations

from pathlib import Path

import pytest

from services.intake.email_parser import UnparseableEmail, parse_email, trim_quoted
from services.intake.language import detect_language


def test_big5_quoted_printable_multipart(samples: Path) -> None:
    parsed = parse_email((samples / "email-big5-cracked-teapot.eml").read_bytes())
    assert parsed.subject == "收到的茶壺壺嘴有裂痕"
    assert parsed.from_address == "chou.wenhao@example.net"
    assert parsed.from_name == "周文豪"
    assert parsed.message_id == "<20261123091247.4471@mail.example.net>"
    # A quoted-printable soft line break splits the order number: it comes back whole.
    assert "青瓷茶壺（訂單 O-20261120-88）今天收到了" in parsed.text
    assert "壺嘴有一道明顯的裂痕" in parsed.text
    assert "<b>" not in parsed.text
    assert parsed.auto_reply_reason is None


def test_utf8_base64_single_part(samples: Path) -> None:
    parsed = parse_email((samples / "email-utf8-double-charge.eml").read_bytes())
    assert parsed.subject == "信用卡同一筆訂單被扣了兩次"
    assert parsed.from_name == "李雅婷"
    assert "同一筆訂單被扣了兩次，一共 NT$8,560" in parsed.text


def test_gb2312_base64_simplified(samples: Path) -> None:
    parsed = parse_email((samples / "email-gb2312-hotline-unreachable.eml").read_bytes())
    assert parsed.subject == "客服电话一直打不通"
    assert parsed.from_name == "赵敏"
    assert "客服电话打了三天都打不通" in parsed.text
    assert detect_language(parsed.text) == "zh-Hans"


def test_latin1_quoted_printable_english(samples: Path) -> None:
    parsed = parse_email((samples / "email-latin1-legal-threat.eml").read_bytes())
    assert parsed.from_name == "Chloé Durand"
    assert "my lawyer will file a complaint" in parsed.text.replace("\n", " ")
    assert "Café Lumière" in parsed.text


def test_threaded_reply_names_its_thread_and_drops_the_quote(samples: Path) -> None:
    parsed = parse_email((samples / "email-utf8-double-charge-reply.eml").read_bytes())
    assert parsed.subject == "Re: 信用卡同一筆訂單被扣了兩次"
    assert "<CAF7x2k9.double-charge@mail.example.com>" in parsed.in_reply_to
    assert parsed.text == "補充一下：銀行說要由商家發起退款才能處理，請告訴我大概什麼時候會退回。"


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
