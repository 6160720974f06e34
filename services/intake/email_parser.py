"""Raw RFC 5322 bytes to the parts of a complaint. Pure: no I/O, never trusts the input."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr

from services.intake.html_text import html_to_text

_AUTO_SUBJECT = re.compile(
    r"^(auto(matic)?[ -]?reply|out of (the )?office|自動回覆|自动回复|休假|undeliverable|"
    r"delivery status notification|mail delivery failed|returned mail)",
    re.IGNORECASE,
)
_QUOTE_HEADER = re.compile(
    r"^(On .{4,200}wrote:|.{0,60}(於|在).{2,100}(寫道|写道)[:：]?|-{2,} ?Original Message ?-{2,}|"
    r"-{2,} ?原始郵件 ?-{2,}|From: .+)$",
    re.IGNORECASE,
)
# Fallback charsets for parts whose declared charset is wrong or missing, in order.
_FALLBACK_CHARSETS = ("big5hkscs", "gb18030", "cp1252")
# Labels that mail clients use for what is really a superset: Big5 mail is often
# Big5-HKSCS/cp950, GB2312 is usually GBK/GB18030, ISO-8859-1 is usually Windows-1252.
_WIDER = {
    "big5": "big5hkscs", "cp950": "big5hkscs", "gb2312": "gb18030", "gbk": "gb18030",
    "iso-8859-1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252",
}  # fmt: skip


@dataclass(frozen=True)
class AttachmentInfo:
    filename: str | None
    content_type: str
    size: int


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str | None
    in_reply_to: list[str]
    subject: str
    from_address: str | None
    from_name: str | None
    text: str
    full_text: str
    attachments: list[AttachmentInfo] = field(default_factory=list)
    auto_reply_reason: str | None = None
    date_header: str | None = None


class UnparseableEmail(ValueError):
    pass


def _message_ids(value: str | None) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value or "")


def _decode_part(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    declared = part.get_content_charset()
    # Strict UTF-8 first: text in any other charset almost never validates as UTF-8,
    # and UTF-8 mislabelled as something else is the most common mislabelling.
    candidates = ("utf-8", *((declared,) if declared else ()), *_FALLBACK_CHARSETS)
    for charset in candidates:
        widened = _WIDER.get(charset.lower(), charset)
        try:
            return payload.decode(widened)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("utf-8", errors="replace")


def _body_text(message: EmailMessage) -> tuple[str, list[AttachmentInfo]]:
    plain: str | None = None
    html: str | None = None
    attachments: list[AttachmentInfo] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        if (
            disposition == "attachment"
            or (disposition == "inline" and part.get_filename())
            or not content_type.startswith("text/")
        ):
            payload = part.get_payload(decode=True)
            size = len(payload) if isinstance(payload, bytes) else 0
            attachments.append(AttachmentInfo(part.get_filename(), content_type, size))
            continue
        if content_type == "text/plain" and plain is None:
            plain = _decode_part(part)
        elif content_type == "text/html" and html is None:
            html = _decode_part(part)
    if plain and plain.strip():
        return plain.replace("\r\n", "\n").strip(), attachments
    if html:
        return html_to_text(html), attachments
    return "", attachments


def trim_quoted(text: str) -> str:
    """Drop quoted earlier messages and the signature; the original is kept elsewhere."""
    kept: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped in {"--", "-- "} or _QUOTE_HEADER.match(stripped):
            break
        if stripped.startswith(">"):
            continue
        kept.append(line.rstrip())
    trimmed = "\n".join(kept).strip()
    return trimmed or text.strip()


def _auto_reply_reason(message: EmailMessage, subject: str) -> str | None:
    # Headers through _header: the stdlib's lazy header parsing can raise on a cut-off value.
    auto_submitted = _header(message, "Auto-Submitted").lower()
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    if _header(message, "X-Autoreply") or _header(message, "X-Autorespond"):
        return "X-Autoreply header"
    precedence = _header(message, "Precedence").lower()
    if precedence in {"auto_reply", "bulk", "junk"}:
        return f"Precedence: {precedence}"
    if message.get_content_type() == "multipart/report":
        return "delivery status notification"
    sender = parseaddr(_header(message, "From"))[1].lower()
    if sender.startswith(("mailer-daemon@", "postmaster@")):
        return "bounce from mailer daemon"
    if _AUTO_SUBJECT.match(subject.strip()):
        return "auto-reply subject"
    return None


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = str(message.get(name) or "")
    except Exception:  # a malformed encoded-word must not sink the whole message
        return ""
    # Raw 8-bit header bytes arrive as surrogate escapes: recover UTF-8, else replace.
    if any("\udc80" <= char <= "\udcff" for char in value):
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value.strip()


def parse_email(raw: bytes) -> ParsedEmail:
    if not raw or not raw.strip():
        raise UnparseableEmail("empty message")
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception as exc:
        raise UnparseableEmail(f"MIME parse failed: {exc}") from exc
    if not isinstance(message, EmailMessage):
        raise UnparseableEmail("not an RFC 5322 message")
    if not message.keys():
        raise UnparseableEmail("no headers: not an RFC 5322 message")
    subject = _header(message, "Subject")
    from_name, from_address = parseaddr(_header(message, "From"))
    if not from_address:
        addresses = getaddresses([_header(message, "Sender"), _header(message, "Reply-To")])
        from_address = next((addr for _, addr in addresses if addr), "")
    try:
        full_text, attachments = _body_text(message)
    except Exception as exc:
        raise UnparseableEmail(f"cannot decode body: {exc}") from exc
    references = _message_ids(_header(message, "In-Reply-To")) + _message_ids(
        _header(message, "References")
    )
    ids = _message_ids(_header(message, "Message-ID"))
    return ParsedEmail(
        message_id=ids[0] if ids else None,
        in_reply_to=list(dict.fromkeys(references)),
        subject=subject,
        from_address=from_address.lower() or None,
        from_name=from_name or None,
        text=trim_quoted(full_text),
        full_text=full_text,
        attachments=attachments,
        auto_reply_reason=_auto_reply_reason(message, subject),
        date_header=_header(message, "Date") or None,
    )
