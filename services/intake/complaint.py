"""Inbound records of every channel, normalised to one Complaint. Pure functions."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from schemas.common import Channel, Money
from schemas.inbound import AppSubmission, SocialPost
from services.intake.email_parser import ParsedEmail, UnparseableEmail, parse_email
from services.intake.language import detect_language, language_from_locale
from services.runtime.erasure import identity_digests
from services.runtime.errors import InputRejected

ModelT = TypeVar("ModelT", bound=BaseModel)

CASE_NUMBER_PATTERN = re.compile(r"\bCS\d{8}-\d{4,}\b")


@dataclass(frozen=True)
class Complaint:
    channel: Channel
    source_ref: str
    received_at: datetime
    subject: str
    text: str
    language: str
    # How to find the customer: ("email", addr) / ("phone", n) / ("social", "platform:id") / ("id", c)
    identities: list[tuple[str, str]]
    # The sender, for the acknowledgement: an address, a handle or a customer id.
    reply_to: str | None
    # Earlier source refs this one answers (email Message-IDs, social post ids).
    replies_to: list[str] = field(default_factory=list)
    mentioned_case: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    auto_reply_reason: str | None = None
    original_text: str | None = None

    @property
    def source_key(self) -> str:
        return source_key_for(self.channel.value, self.source_ref)

    def reply_keys(self) -> list[str]:
        return [source_key_for(self.channel.value, ref) for ref in self.replies_to]

    def identity_digests(self) -> list[str]:
        """How the sender's cases are found at erasure, without keeping the address."""
        return identity_digests((kind, value) for kind, value in self.identities if kind != "id")

    def fingerprint(self) -> str:
        """Same sender, same words: the same complaint sent twice under different ids."""
        sender = self.identities[0][1] if self.identities else ""
        words = re.sub(r"\s+", " ", f"{self.subject} {self.text}").strip().lower()
        digest = hashlib.sha256(f"{self.channel.value}|{sender}|{words}".encode()).hexdigest()
        return digest[:32]


def source_key_for(channel: str, source_ref: str) -> str:
    """The stored key of a complaint's id on its channel: a digest, because a Message-ID or
    a post id can name the sender, and these keys outlive an erasure (they keep a replay of
    an erased complaint from opening it again)."""
    return f"{channel}:{hashlib.sha256(source_ref.encode()).hexdigest()[:40]}"


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputRejected("invalid_utf8", f"payload is not valid UTF-8: {exc}") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputRejected("invalid_json", f"payload is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # nesting deeper than the parser's stack
        raise InputRejected("invalid_json", "payload is nested too deeply") from exc
    if not isinstance(value, dict):
        raise InputRejected(
            "invalid_json", f"payload is JSON {type(value).__name__}, not an object"
        )
    if "\\u" in text:
        # Escapes can spell lone surrogates: valid JSON syntax, but not text, so such a
        # payload could be neither hashed nor stored.
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputRejected("invalid_json", "payload has a lone surrogate escape") from exc
        except RecursionError as exc:
            raise InputRejected("invalid_json", "payload is nested too deeply") from exc
    return value


def _validation_reason(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or '(root)'}: {err['msg']}"
        for err in exc.errors()
    )


def validated(model: type[ModelT], raw: bytes) -> ModelT:
    payload = _json_object(raw)
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise InputRejected("schema_violation", _validation_reason(exc)) from exc


def _first_line(text: str, limit: int = 60) -> str:
    line = next((candidate.strip() for candidate in text.splitlines() if candidate.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def from_email(raw: bytes | None, received_at: datetime) -> Complaint:
    try:
        parsed: ParsedEmail = parse_email(raw or b"")
    except UnparseableEmail as exc:
        raise InputRejected("undecodable_mime", str(exc)) from exc
    if not parsed.from_address:
        raise InputRejected("undecodable_mime", "no sender address in From/Sender/Reply-To")
    source_ref = parsed.message_id or "sha256:" + hashlib.sha256(raw or b"").hexdigest()[:40]
    mentioned = CASE_NUMBER_PATTERN.search(parsed.subject)
    text = parsed.text
    return Complaint(
        channel=Channel.EMAIL,
        source_ref=source_ref,
        received_at=received_at,
        subject=parsed.subject or _first_line(text),
        text=text,
        language=detect_language(f"{parsed.subject}\n{text}"),
        identities=[("email", parsed.from_address)],
        reply_to=parsed.from_address,
        replies_to=parsed.in_reply_to,
        mentioned_case=mentioned.group(0) if mentioned else None,
        extra={
            "attachments": [
                {"filename": item.filename, "content_type": item.content_type, "size": item.size}
                for item in parsed.attachments
            ],
            "date_header": parsed.date_header,
        },
        auto_reply_reason=parsed.auto_reply_reason,
        original_text=parsed.full_text,
    )


def from_social(raw: bytes | None, received_at: datetime) -> Complaint:
    post = validated(SocialPost, raw or b"")
    if not post.text.strip():
        raise InputRejected("schema_violation", "text: must not be empty")
    return Complaint(
        channel=Channel.SOCIAL,
        source_ref=post.post_id,
        received_at=received_at,
        subject=_first_line(post.text),
        text=post.text.strip(),
        language=detect_language(post.text),
        identities=[("social", f"{post.platform.lower()}:{post.author.id}")],
        reply_to=post.author.handle or post.author.id,
        replies_to=[post.in_reply_to] if post.in_reply_to else [],
        extra={
            "platform": post.platform,
            "visibility": post.visibility,
            "followers": post.followers,
            "url": post.url,
            "created_at": post.created_at.isoformat() if post.created_at else None,
        },
    )


def from_app(raw: bytes | None, received_at: datetime) -> Complaint:
    form = validated(AppSubmission, raw or b"")
    identities: list[tuple[str, str]] = []
    if form.customer_id:
        identities.append(("id", form.customer_id))
    if form.contact and form.contact.email:
        identities.append(("email", form.contact.email.lower()))
    if form.contact and form.contact.phone:
        identities.append(("phone", form.contact.phone))
    language = language_from_locale(form.locale) or detect_language(
        f"{form.subject or ''}\n{form.message}"
    )
    order_value: Money | None = form.order_value
    return Complaint(
        channel=Channel.APP,
        source_ref=form.submission_id,
        received_at=received_at,
        subject=form.subject or _first_line(form.message),
        text=form.message.strip(),
        language=language,
        identities=identities,
        reply_to=(form.contact.email or form.contact.phone) if form.contact else form.customer_id,
        extra={
            "order_id": form.order_id,
            "order_value": order_value.model_dump(mode="json") if order_value else None,
            "category_hint": form.category_hint,
            "submitted_at": form.submitted_at.isoformat(),
            # The products the complaint is about (systemic-issue detection groups by SKU).
            "items": [item.model_dump(mode="json", exclude_none=True) for item in form.items or []],
        },
    )
