"""Builds the intake corpus: raw inputs under tests/corpus/inputs/ and manifest.json.

    python -m tests.corpus.build

Every input is written as the exact bytes upstream would publish. Expectations:
  opened          a new case (with checks on its fields)
  message_added   joins the case opened by another corpus entry (`of`)
  dlq             a complaint.input.rejected with this reason code
  ignored         nothing comes out (auto-replies, duplicates)
Placeholders {{case:NAME}} are replaced at run time by the case number NAME opened.
"""

from __future__ import annotations

import base64
import json
import quopri
from email.header import Header
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
INPUTS = HERE / "inputs"
SAMPLES = HERE.parents[1] / "deploy" / "local" / "samples"
EMAIL, SOCIAL, APP, ACTIONS = (
    "complaints.inbound.email", "complaints.inbound.social", "complaints.inbound.app", "cases.actions",
)  # fmt: skip

entries: list[dict[str, Any]] = []


def add(name: str, topic: str, raw: bytes, expect: dict[str, Any], phase: int = 1) -> None:
    extension = {EMAIL: "eml", SOCIAL: "json", APP: "json", ACTIONS: "json"}[topic]
    path = INPUTS / f"{len(entries) + 1:02d}-{name}.{extension}"
    path.write_bytes(raw)
    entries.append(
        {"name": name, "file": path.name, "topic": topic, "phase": phase, "expect": expect}
    )


def mail(
    headers: dict[str, str], body: bytes, content_type: str = "text/plain; charset=utf-8",
    encoding: str = "8bit",
) -> bytes:  # fmt: skip
    lines = [f"{name}: {value}" for name, value in headers.items()]
    lines += ["MIME-Version: 1.0", f"Content-Type: {content_type}"]
    if encoding:
        lines.append(f"Content-Transfer-Encoding: {encoding}")
    # Raw UTF-8 in headers is allowed (RFC 6532) and sent by some clients.
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def enc(text: str, charset: str) -> str:
    return Header(text, charset).encode()


def h(sender: str, subject: str, message_id: str, **extra: str) -> dict[str, str]:
    return {"From": sender, "To": "service@shop.example", "Subject": subject,
            "Date": "Mon, 23 Nov 2026 09:15:00 +0800", "Message-ID": f"<{message_id}>", **extra}  # fmt: skip


def js(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def build_email() -> None:
    add(
        "big5-qp-multipart-sample",
        EMAIL,
        (SAMPLES / "email-big5-cracked-teapot.eml").read_bytes(),
        {
            "kind": "opened",
            "channel": "email",
            "language": "zh-Hant",
            "subject": "收到的茶壺壺嘴有裂痕",
            "text_contains": "壺嘴有一道明顯的裂痕",
            "text_excludes": ["<b>", "<p>"],
        },
    )
    add(
        "utf8-base64-sample",
        EMAIL,
        (SAMPLES / "email-utf8-double-charge.eml").read_bytes(),
        {
            "kind": "opened",
            "language": "zh-Hant",
            "subject": "信用卡同一筆訂單被扣了兩次",
            "text_contains": "同一筆訂單被扣了兩次",
        },
    )
    text = "您好，我的订单已经一个星期了还没有发货，请尽快处理。\n王先生"
    add(
        "gb2312-base64-simplified",
        EMAIL,
        mail(
            h(
                f"{enc('王先生', 'gb2312')} <wang@example.cn>",
                enc("订单还没有发货", "gb2312"),
                "c-gb2312@x.cn",
            ),
            base64.encodebytes(text.encode("gb2312")),
            "text/plain; charset=gb2312",
            "base64",
        ),
        {
            "kind": "opened",
            "language": "zh-Hans",
            "subject": "订单还没有发货",
            "text_contains": "还没有发货",
        },
    )
    add(
        "gbk-labelled-gb2312",
        EMAIL,
        mail(
            h(
                "zhu@example.cn",
                "=?gb2312?B?" + base64.b64encode("商品质量".encode("gbk")).decode() + "?=",
                "c-gbk@x.cn",
            ),
            "朱镕基牌电水壶坏了，我要换货。".encode("gbk"),
            "text/plain; charset=gb2312",
        ),
        {"kind": "opened", "language": "zh-Hans", "text_contains": "朱镕基牌电水壶坏了"},
    )
    add(
        "latin1-qp-english",
        EMAIL,
        mail(
            h(
                f"{enc('Zoë Martin', 'iso-8859-1')} <zoe@example.fr>",
                enc("Crème brûlée arrived melted", "iso-8859-1"),
                "c-latin1@x.fr",
            ),
            quopri.encodestring(
                "The crème brûlée I ordered arrived completely melted.\n".encode("latin-1")
            ),
            "text/plain; charset=iso-8859-1",
            "quoted-printable",
        ),
        {"kind": "opened", "language": "en", "text_contains": "crème brûlée"},
    )
    add(
        "cp1252-smart-quotes-labelled-latin1",
        EMAIL,
        mail(
            h("bob@example.com", "Wrong item", "c-cp1252@x.com"),
            "You sent the \u201cblue\u201d mug \u2013 I ordered the red one.".encode("cp1252"),
            "text/plain; charset=iso-8859-1",
        ),
        {"kind": "opened", "language": "en", "text_contains": "\u201cblue\u201d mug \u2013 I"},
    )
    add(
        "utf8-mislabelled-big5",
        EMAIL,
        mail(
            h(
                "lin@example.tw",
                "=?utf-8?B?" + base64.b64encode("退貨問題".encode()).decode() + "?=",
                "c-mislabel@x.tw",
            ),
            "我要退貨，商品有瑕疵。".encode(),
            "text/plain; charset=big5",
        ),
        {
            "kind": "opened",
            "language": "zh-Hant",
            "subject": "退貨問題",
            "text_contains": "商品有瑕疵",
        },
    )
    add(
        "no-charset-8bit-utf8",
        EMAIL,
        mail(
            h("ko@example.tw", "App crash", "c-nocharset@x.tw"),
            "App 一直閃退，無法登入。".encode(),
            "text/plain",
        ),
        {"kind": "opened", "language": "zh-Hant", "text_contains": "閃退"},
    )
    add(
        "q-encoded-subject",
        EMAIL,
        mail(
            h(
                "q@example.tw",
                "=?UTF-8?Q?=E5=8C=85=E8=A3=B9=E9=81=BA=E5=A4=B1?=",
                "c-qsubject@x.tw",
            ),
            "包裹在物流中心遺失了".encode(),
        ),
        {"kind": "opened", "subject": "包裹遺失", "language": "zh-Hant"},
    )
    html = (
        "<html><head><style>.x{color:red}</style><script>track()</script></head><body>"
        "<p>您好：</p><p>收到的<b>吹風機</b>插電後冒煙，非常危險！</p><div>張小姐</div></body></html>"
    )
    add(
        "html-only-big5-base64",
        EMAIL,
        mail(
            h("zhang@example.tw", enc("吹風機冒煙", "big5"), "c-htmlonly@x.tw"),
            base64.encodebytes(html.encode("big5")),
            "text/html; charset=big5",
            "base64",
        ),
        {
            "kind": "opened",
            "language": "zh-Hant",
            "text_contains": "插電後冒煙",
            "text_excludes": ["track()", "color:red", "<b>"],
        },
    )
    boundary = "mix_9f"
    pdf = b"%PDF-1.4\n" + b"0" * 2048
    body = (
        (
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "The invoice attached shows I was charged twice.\r\n"
            f"--{boundary}\r\nContent-Type: application/pdf; name=invoice.pdf\r\n"
            "Content-Disposition: attachment; filename=invoice.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + base64.encodebytes(pdf)
        + (
            f"--{boundary}\r\nContent-Type: image/jpeg\r\n"
            "Content-Disposition: attachment; filename*=UTF-8''%E7%85%A7%E7%89%87.jpg\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + base64.encodebytes(b"\xff\xd8\xff" + b"1" * 500)
        + (f"--{boundary}--\r\n").encode()
    )
    add(
        "multipart-mixed-attachments",
        EMAIL,
        mail(
            h("carol@example.com", "Charged twice", "c-attach@x.com"),
            body,
            f'multipart/mixed; boundary="{boundary}"',
            "",
        ),
        {
            "kind": "opened",
            "language": "en",
            "attachments": [
                ["invoice.pdf", "application/pdf", len(pdf)],
                ["照片.jpg", "image/jpeg", 503],
            ],
        },
    )
    add(
        "reply-in-reply-to",
        EMAIL,
        mail(
            h(
                "lee.yating@example.com",
                "Re: 信用卡同一筆訂單被扣了兩次",
                "c-reply1@x.com",
                **{"In-Reply-To": "<CAF7x2k9.double-charge@mail.example.com>"},
            ),
            "請問退款進度如何？\n\n李雅婷 於 2026/11/23 寫道：\n> 同一筆訂單被扣了兩次\n".encode(),
        ),
        {"kind": "message_added", "of": "utf8-base64-sample", "text": "請問退款進度如何？"},
    )
    add(
        "reply-references-chain",
        EMAIL,
        mail(
            h(
                "lee.yating@example.com",
                "Re: Re: 信用卡同一筆訂單被扣了兩次",
                "c-reply2@x.com",
                References="<CAF7x2k9.double-charge@mail.example.com> <c-reply1@x.com>",
            ),
            "已經三天了還沒收到。\n-- \n李雅婷\n0922-118-877\n".encode(),
        ),
        {"kind": "message_added", "of": "utf8-base64-sample", "text": "已經三天了還沒收到。"},
    )
    add(
        "reply-case-number-in-subject",
        EMAIL,
        mail(
            h("lin@example.tw", "Re: [{{case:utf8-mislabelled-big5}}] 退貨問題", "c-reply3@x.tw"),
            "補充：瑕疵在杯口。".encode(),
        ),
        {"kind": "message_added", "of": "utf8-mislabelled-big5", "text": "補充：瑕疵在杯口。"},
        phase=2,
    )
    add(
        "duplicate-same-bytes",
        EMAIL,
        (INPUTS / "05-latin1-qp-english.eml").read_bytes(),
        {"kind": "ignored"},
    )
    add(
        "duplicate-same-text-new-id",
        EMAIL,
        mail(
            h("ko@example.tw", "App crash", "c-nocharset-resent@x.tw"),
            "App 一直閃退，無法登入。".encode(),
            "text/plain",
        ),
        {"kind": "ignored"},
    )
    add(
        "auto-submitted",
        EMAIL,
        mail(
            h(
                "away@example.com",
                "Re: your case",
                "c-auto1@x.com",
                **{"Auto-Submitted": "auto-replied"},
            ),
            b"I am out of the office until Monday.",
        ),
        {"kind": "ignored"},
    )
    add(
        "out-of-office-subject-zh",
        EMAIL,
        mail(
            h("away2@example.tw", enc("自動回覆：休假中", "utf-8"), "c-auto2@x.tw"),
            "我休假到下週一。".encode(),
        ),
        {"kind": "ignored"},
    )
    dsn = (
        b"--dsn1\r\nContent-Type: text/plain\r\n\r\nDelivery to the following recipient failed.\r\n"
        b"--dsn1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n"
        b"Action: failed\r\n--dsn1--\r\n"
    )
    add(
        "bounce-dsn",
        EMAIL,
        mail(
            h("MAILER-DAEMON@mx.example.com", "Undelivered Mail Returned to Sender", "c-dsn@mx"),
            dsn,
            'multipart/report; report-type=delivery-status; boundary="dsn1"',
            "",
        ),
        {"kind": "ignored"},
    )
    add(
        "bulk-precedence",
        EMAIL,
        mail(
            h("news@shop-partner.example", "Weekly deals", "c-bulk@x", Precedence="bulk"), b"Deals!"
        ),
        {"kind": "ignored"},
    )
    add(
        "no-sender",
        EMAIL,
        mail({"Subject": "hello", "Message-ID": "<c-nosender@x>"}, b"where is my order"),
        {"kind": "dlq", "reason_code": "undecodable_mime"},
    )
    add("empty", EMAIL, b"", {"kind": "dlq", "reason_code": "undecodable_mime"})
    add(
        "binary-garbage",
        EMAIL,
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        {"kind": "dlq", "reason_code": "undecodable_mime"},
    )
    add(
        "signature-trimmed",
        EMAIL,
        mail(
            h("chen@example.tw", "門市人員態度很差", "c-sig@x.tw"),
            "今天到門市，店員態度非常差，不理人。\n\n-- \n陳先生\n0912-345-678\nchen@example.tw\n".encode(),
        ),
        {"kind": "opened", "text": "今天到門市，店員態度非常差，不理人。"},
    )
    add(
        "mixed-language",
        EMAIL,
        mail(
            h("amy@example.com", "Refund 還沒收到", "c-mixed@x.com"),
            "我上週申請 refund，到現在還沒收到退款，order O-20261101-5。".encode(),
        ),
        {"kind": "opened", "language": "zh-Hant"},
    )
    add(
        "raw-utf8-headers",
        EMAIL,
        mail(
            h("吳小姐 <wu@example.tw>", "發票金額錯誤", "c-rawutf8@x.tw"),
            "發票金額多收了 200 元。".encode(),
        ),
        {"kind": "opened", "subject": "發票金額錯誤", "language": "zh-Hant"},
    )
    add(
        "english-legal-threat",
        EMAIL,
        mail(
            h("dave@example.com", "Final notice before legal action", "c-legal@x.com"),
            b"If this is not fixed by Friday my lawyer will file a lawsuit.",
        ),
        {"kind": "opened", "language": "en"},
    )


def build_social() -> None:
    sample = json.loads((SAMPLES / "social-public-heater-smoke.json").read_text(encoding="utf-8"))
    add(
        "social-sample-heater-smoke",
        SOCIAL,
        js(sample),
        {"kind": "opened", "channel": "social", "language": "zh-Hant", "followers": 15800},
    )
    add(
        "social-thread-reply",
        SOCIAL,
        js(
            {
                **sample,
                "post_id": "fb-5120772",
                "in_reply_to": "fb-5120771",
                "text": "到現在都沒有人回覆我！",
            }
        ),
        {
            "kind": "message_added",
            "of": "social-sample-heater-smoke",
            "text": "到現在都沒有人回覆我！",
        },
    )
    add(
        "social-private-english",
        SOCIAL,
        js(
            {
                "platform": "instagram",
                "post_id": "ig-5501",
                "author": {"id": "ig-u-3", "handle": "tom"},
                "visibility": "private",
                "text": "My package was delivered to the wrong address.",
                "created_at": "2026-11-23T11:00:00+08:00",
            }
        ),
        {"kind": "opened", "language": "en"},
    )
    add(
        "social-simplified-weibo",
        SOCIAL,
        js(
            {
                "platform": "weibo",
                "post_id": "wb-1",
                "author": {"id": "wb-u-1"},
                "visibility": "public",
                "text": "你们的客服电话一直打不通，太失望了",
                "followers": 800,
            }
        ),
        {"kind": "opened", "language": "zh-Hans"},
    )
    add(
        "social-influencer",
        SOCIAL,
        js(
            {
                "platform": "x",
                "post_id": "x-777",
                "author": {"id": "x-u-9", "handle": "bigvoice"},
                "visibility": "public",
                "text": "Ordered a phone case, got a broken one. Not impressed.",
                "followers": 25000,
                "url": "https://x.example/777",
            }
        ),
        {"kind": "opened", "language": "en", "followers": 25000},
    )
    add(
        "social-missing-author",
        SOCIAL,
        js({"platform": "dcard", "post_id": "dc-1", "text": "退款呢？"}),
        {"kind": "dlq", "reason_code": "schema_violation", "reason_contains": "author"},
    )
    add(
        "social-invalid-utf8",
        SOCIAL,
        b'{"platform": "ptt", "post_id": "ptt-1", "text": "\xa7\xda\xaa\xba"}',
        {"kind": "dlq", "reason_code": "invalid_utf8"},
    )
    add(
        "social-followers-wrong-type",
        SOCIAL,
        js(
            {
                "platform": "threads",
                "post_id": "th-1",
                "author": {"id": "u"},
                "text": "late",
                "followers": "many",
            }
        ),
        {"kind": "dlq", "reason_code": "schema_violation", "reason_contains": "followers"},
    )
    add(
        "social-duplicate-post", SOCIAL, js({**sample, "text": sample["text"]}), {"kind": "ignored"}
    )
    add(
        "social-json-array",
        SOCIAL,
        b'[{"post_id": "x"}]',
        {"kind": "dlq", "reason_code": "invalid_json"},
    )


def build_app() -> None:
    sample = json.loads((SAMPLES / "app-late-delivery.json").read_text(encoding="utf-8"))
    add(
        "app-sample-late-delivery",
        APP,
        js(sample),
        {
            "kind": "opened",
            "channel": "app",
            "language": "zh-Hant",
            "customer_id": "C-1088",
            "order_value": {"amount": "1290.00", "currency": "TWD"},
        },
    )
    add(
        "app-minimal",
        APP,
        js(
            {
                "submission_id": "app-min-1",
                "message": "我的優惠券不能用",
                "submitted_at": "2026-11-23T10:00:00+08:00",
            }
        ),
        {"kind": "opened", "customer_id": None, "language": "zh-Hant"},
    )
    add(
        "app-english-hint",
        APP,
        js(
            {
                "submission_id": "app-en-1",
                "message": "The blender stopped working after two days.",
                "category_hint": "product_defect",
                "locale": "en-US",
                "submitted_at": "2026-11-23T10:00:00+08:00",
            }
        ),
        {"kind": "opened", "language": "en"},
    )
    add(
        "app-money-float",
        APP,
        js(
            {
                "submission_id": "app-f-1",
                "message": "x",
                "order_value": {"amount": 12.5, "currency": "TWD"},
                "submitted_at": "2026-11-23T10:00:00+08:00",
            }
        ),
        {"kind": "dlq", "reason_code": "schema_violation", "reason_contains": "decimal"},
    )
    add(
        "app-missing-message",
        APP,
        js({"submission_id": "app-m-1", "submitted_at": "2026-11-23T10:00:00+08:00"}),
        {"kind": "dlq", "reason_code": "schema_violation", "reason_contains": "message"},
    )
    add(
        "app-bad-timestamp",
        APP,
        js({"submission_id": "app-t-1", "message": "hi", "submitted_at": "yesterday"}),
        {"kind": "dlq", "reason_code": "schema_violation", "reason_contains": "submitted_at"},
    )
    add(
        "app-extra-fields",
        APP,
        js(
            {
                "submission_id": "app-x-1",
                "message": "Where is my refund?",
                "submitted_at": "2026-11-23T10:00:00+08:00",
                "device": {"os": "iOS 19"},
                "experiment": "B",
            }
        ),
        {"kind": "opened", "language": "en"},
    )
    add(
        "app-locale-zh-cn",
        APP,
        js(
            {
                "submission_id": "app-cn-1",
                "message": "包裹还没到",
                "locale": "zh-CN",
                "submitted_at": "2026-11-23T10:00:00+08:00",
            }
        ),
        {"kind": "opened", "language": "zh-Hans"},
    )
    add(
        "action-customer-reply",
        ACTIONS,
        js(
            {
                "action_id": "act-reply-1",
                "case_number": "{{case:app-sample-late-delivery}}",
                "type": "customer_reply",
                "actor": "customer",
                "at": "2026-11-23T12:00:00+08:00",
                "text": "請問今天會送到嗎？",
            }
        ),
        {"kind": "message_added", "of": "app-sample-late-delivery", "text": "請問今天會送到嗎？"},
        phase=2,
    )


def main() -> None:
    INPUTS.mkdir(exist_ok=True)
    for old in INPUTS.iterdir():
        old.unlink()
    build_email()
    build_social()
    build_app()
    (HERE / "manifest.json").write_text(
        json.dumps(entries, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    print(f"{len(entries)} corpus inputs written")


if __name__ == "__main__":
    main()
