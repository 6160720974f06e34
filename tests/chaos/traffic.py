"""Inbound traffic: app, social and e-mail complaints from a set of customers, and a ledger
of everything sent, with what the system must make of it.

Expected outcomes, by submission kind:
  new         one new case (one `complaint.case.opened` with this source_ref)
  reply       joins the case of the message it answers (`message_added`, same case)
  resend      upstream sent the same bytes again: nothing new
  duplicate   the same words from the same sender under a new id, minutes later: no case
              of its own; intake files it under the original's case
  auto_reply  an out-of-office answer: nothing at all
and every deliberately bad input ends in the DLQ with its exact bytes. Each record carries
a unique token, so no two complaints are accidentally the same words.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from schemas.topics import (
    CASE_ACTIONS,
    CUSTOMER_PROFILES,
    INBOUND_APP,
    INBOUND_EMAIL,
    INBOUND_SOCIAL,
)

COMPLAINTS = (
    ("zh-Hant", "包裹延遲一週還沒到，物流也查不到", "delivery"),
    ("zh-Hant", "收到的馬克杯有裂痕，把手也破損了", "product_defect"),
    ("zh-Hant", "信用卡被重複扣款，扣了兩次", "billing"),
    ("zh-Hant", "孩子用了乳液之後起疹子，疑似過敏", None),
    ("zh-Hant", "客服態度很差，打不通也沒回應", None),
    ("zh-Hant", "APP 一直閃退，無法登入", None),
    ("en", "My parcel has not arrived and tracking shows nothing", "delivery"),
    ("en", "The kettle arrived cracked and it doesn't work", "product_defect"),
    ("en", "I was charged twice for one order, please fix this", "billing"),
    ("en", "Still no refund two weeks after the return", "refund"),
    ("en", "If this is not fixed I will talk to my lawyer", None),
    ("en", "Your website login is broken, I cannot log in", None),
)
SOCIAL_PLATFORMS = ("facebook", "instagram", "line", "dcard")
EMAIL_CHARSETS = (("utf-8", "base64"), ("utf-8", "quoted-printable"), ("big5", "base64"),
                  ("big5", "quoted-printable"), ("gb18030", "base64"))  # fmt: skip


class DriverClock:
    """The system's time as the services see it: real time plus the shared offset."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass(frozen=True)
class Customer:
    customer_id: str
    email: str
    platform: str
    social_id: str
    tier: str

    def profile(self) -> bytes:
        return json.dumps({
            "customer_id": self.customer_id, "tier": self.tier, "emails": [self.email],
            "social": {self.platform: self.social_id}, "locale": "zh-TW",
            "time_zone": "Asia/Taipei",
        }).encode()  # fmt: skip


@dataclass
class Submission:
    channel: str
    topic: str
    ref: str  # the source_ref intake will see (submission id, post id, Message-ID)
    raw: bytes
    sender: str
    kind: str  # new | reply | resend | duplicate | auto_reply
    of: str | None = None  # the ref answered, re-sent or duplicated
    sent_at: datetime | None = None
    epoch: int = 0  # which clock jump it was sent after

    @property
    def source_key(self) -> str:
        return f"{self.channel}:{self.ref}"


@dataclass
class BadInput:
    topic: str
    raw: bytes
    why: str


@dataclass
class Ledger:
    submissions: list[Submission] = field(default_factory=list)
    bad_inputs: list[BadInput] = field(default_factory=list)
    # Every action sent (duplicates included), as the dicts that went out.
    actions: list[dict[str, Any]] = field(default_factory=list)

    def by_ref(self) -> dict[str, Submission]:
        return {s.source_key: s for s in self.submissions if s.kind != "resend"}


Outgoing = tuple[str, bytes | None, bytes, dict[str, str]]  # topic, key, value, headers


class Traffic:
    """Seeded generator of inbound records; the desk tells it which cases exist."""

    def __init__(
        self, rng: random.Random, clock: DriverClock, tag: str, customers: int = 40
    ) -> None:
        self.rng, self.clock, self.tag = rng, clock, tag
        self.ledger = Ledger()
        self.count = 0
        self.epoch = 0
        self.customers = [
            Customer(f"C-{tag}-{n:03d}", f"cust{n}.{tag}@example.com",
                     SOCIAL_PLATFORMS[n % len(SOCIAL_PLATFORMS)], f"u-{tag}-{n}",
                     "vip" if n % 9 == 0 else "standard")
            for n in range(customers)
        ]  # fmt: skip
        # Submissions whose case the system has opened (the desk saw it), by source key.
        self.opened: dict[str, str] = {}

    def profiles(self) -> list[Outgoing]:
        return [
            (CUSTOMER_PROFILES, c.customer_id.encode(), c.profile(), {}) for c in self.customers
        ]

    def _token(self) -> str:
        self.count += 1
        return f"{self.tag}-{self.count:06d}"

    def _headers(self) -> dict[str, str]:
        return {"received-at": self.clock.now().isoformat()}

    def _record(self, submission: Submission) -> Outgoing:
        submission.sent_at = self.clock.now()
        submission.epoch = self.epoch
        self.ledger.submissions.append(submission)
        return (submission.topic, None, submission.raw, self._headers())

    # --- good complaints --------------------------------------------------------------

    def _words(self, token: str) -> tuple[str, str, str | None]:
        language, text, hint = self.rng.choice(COMPLAINTS)
        return language, f"{text}（#{token}）" if language != "en" else f"{text} (#{token})", hint

    def app(self, customer: Customer) -> Outgoing:
        token = self._token()
        language, text, hint = self._words(token)
        form = {
            "submission_id": f"app-{token}", "customer_id": customer.customer_id,
            "order_id": f"O-{token}",
            "order_value": {"amount": f"{self.rng.randint(2, 400) * 10}.00", "currency": "TWD"},
            "message": text, "category_hint": hint, "locale": "en" if language == "en" else "zh-TW",
            "contact": {"email": customer.email}, "submitted_at": self.clock.now().isoformat(),
        }  # fmt: skip
        raw = json.dumps(form, ensure_ascii=False).encode()
        return self._record(Submission("app", INBOUND_APP, form["submission_id"], raw,
                                       customer.customer_id, "new"))  # fmt: skip

    def social(self, customer: Customer, answering: Submission | None = None) -> Outgoing:
        token = self._token()
        _, text, _ = self._words(token)
        post = {
            "platform": customer.platform, "post_id": f"post-{token}",
            "in_reply_to": answering.ref if answering else None,
            "author": {"id": customer.social_id, "handle": f"h{customer.social_id}"},
            "visibility": self.rng.choice(("public", "private")), "text": text,
            "followers": self.rng.choice((None, 120, 4000, 25000)),
            "created_at": self.clock.now().isoformat(),
        }  # fmt: skip
        raw = json.dumps(post, ensure_ascii=False).encode()
        kind = "reply" if answering else "new"
        return self._record(Submission("social", INBOUND_SOCIAL, post["post_id"], raw,
                                       customer.social_id, kind, answering.ref if answering else None))  # fmt: skip

    def email(
        self, customer: Customer, answering: Submission | None = None, auto_reply: bool = False
    ) -> Outgoing:
        token = self._token()
        language, text, _ = self._words(token)
        charset, encoding = self.rng.choice(EMAIL_CHARSETS)
        if language == "en" or auto_reply:
            charset = "utf-8"
        message = EmailMessage()
        message["From"] = f"Customer <{customer.email}>"
        message["To"] = "service@shop.example"
        subject = "Out of office" if auto_reply else text.split("，")[0][:30]
        message["Subject"] = f"Re: {subject}" if answering else subject
        message["Date"] = format_datetime(self.clock.now())
        message_id = f"<mail-{token}@chaos.example>"
        message["Message-ID"] = message_id
        if answering:
            message["In-Reply-To"] = answering.ref
            message["References"] = answering.ref
        if auto_reply:
            message["Auto-Submitted"] = "auto-replied"
        message.set_content(
            f"{text}\n\n-- \n{customer.customer_id}\n", charset=charset, cte=encoding
        )
        kind = "auto_reply" if auto_reply else "reply" if answering else "new"
        return self._record(Submission("email", INBOUND_EMAIL, message_id, bytes(message),
                                       customer.email, kind, answering.ref if answering else None))  # fmt: skip

    # --- what upstream does on purpose or by accident ----------------------------------

    def resend(self, original: Submission) -> Outgoing:
        """The adapter retried: the very same bytes again."""
        return self._record(Submission(original.channel, original.topic, original.ref, original.raw,
                                       original.sender, "resend", original.ref))  # fmt: skip

    def duplicate(self, original: Submission) -> Outgoing:
        """The customer submitted the same form twice: same words, new submission id."""
        form = json.loads(original.raw)
        form["submission_id"] = f"app-{self._token()}"
        raw = json.dumps(form, ensure_ascii=False).encode()
        return self._record(Submission("app", INBOUND_APP, form["submission_id"], raw,
                                       original.sender, "duplicate", original.ref))  # fmt: skip

    def bad_input(self) -> Outgoing:
        token = self._token()
        now = self.clock.now().isoformat()
        choices: list[tuple[str, bytes, str]] = [
            (INBOUND_APP, f'{{"submission_id": "bad-{token}", "message": "trunc'.encode(), "invalid_json"),
            (INBOUND_APP, json.dumps({"submission_id": f"bad-{token}", "submitted_at": now}).encode(),
             "schema_violation"),
            (INBOUND_SOCIAL, b"\xff\xfe\xfa" + token.encode(), "invalid_utf8"),
            (INBOUND_SOCIAL, json.dumps({"platform": "x", "post_id": f"bad-{token}", "text": "?"}).encode(),
             "schema_violation"),
            (INBOUND_EMAIL, f"Subject: no sender {token}\r\n\r\nnobody wrote this\r\n".encode(),
             "undecodable_mime"),
            (INBOUND_EMAIL, b"\x00\x01\x02garbage " + token.encode() + b"\x00", "undecodable_mime"),
            (CASE_ACTIONS, f'{{"action_id": "bad-{token}", "type": "resolve", '.encode(), "invalid_json"),
            (CASE_ACTIONS, json.dumps({"action_id": f"bad-{token}", "case_number": "CS20260101-0001",
                                       "type": "teleport", "actor": "x", "at": now}).encode(),
             "unknown_action"),
        ]  # fmt: skip
        topic, raw, why = self.rng.choice(choices)
        self.ledger.bad_inputs.append(BadInput(topic, raw, why))
        return (topic, None, raw, self._headers())

    # --- the mix ----------------------------------------------------------------------

    def next(self) -> Outgoing:
        """One inbound record, drawn by the seeded mix."""
        roll = self.rng.random()
        customer = self.rng.choice(self.customers)
        recent = [
            s for s in self.ledger.submissions[-200:]
            if s.kind in ("new", "reply") and s.source_key in self.opened and s.epoch == self.epoch
            and s.sent_at is not None and self.clock.now() - s.sent_at < timedelta(minutes=5)
        ]  # fmt: skip
        if roll < 0.03:
            return self.bad_input()
        if roll < 0.06 and recent:
            return self.resend(self.rng.choice(recent))
        apps = [s for s in recent if s.channel == "app" and s.kind == "new"]
        if roll < 0.09 and apps:
            return self.duplicate(self.rng.choice(apps))
        if roll < 0.11:
            return self.email(customer, auto_reply=True)
        threads = [s for s in recent if s.channel in ("social", "email")]
        if roll < 0.20 and threads:
            parent = self.rng.choice(threads)
            author = next(c for c in self.customers if parent.sender in (c.email, c.social_id))
            if parent.channel == "social":
                return self.social(author, answering=parent)
            return self.email(author, answering=parent)
        if roll < 0.60:
            return self.app(customer)
        if roll < 0.80:
            return self.social(customer)
        return self.email(customer)
