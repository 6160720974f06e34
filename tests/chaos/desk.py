"""The agent desk and the customers, driven by what the system publishes.

Seen a proposed offer: accept one of its options (sometimes), then resolve the case, or
resolve without accepting; an approval request: approve or reject; a survey sent: answer
it (a low score reopens the case); an opened case: now and then a customer reply through
the app. A few actions are sent twice with the same action_id on purpose. Every action
sent is in the ledger; the verdict checks each one had exactly its effect.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.chaos.outbound import Seen
from tests.chaos.traffic import DriverClock, Traffic

SendAction = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class CaseView:
    number: str
    offers: dict[str, dict[str, Any]] = field(default_factory=dict)
    resolved: bool = False
    resolve_after_accept: bool = False
    replied: bool = False


class Desk:
    def __init__(
        self, rng: random.Random, clock: DriverClock, traffic: Traffic, send: SendAction,
        tag: str, duplicate_share: float = 0.08,
    ) -> None:  # fmt: skip
        self.rng, self.clock, self.traffic, self.send, self.tag = rng, clock, traffic, send, tag
        self.duplicate_share = duplicate_share
        self.cases: dict[str, CaseView] = {}
        self.seen_ids: set[str] = set()
        self._queue: list[tuple[float, int, str, dict[str, Any]]] = []
        self._order = itertools.count()
        self._ids = itertools.count(1)
        self.initiating = True
        self.accepts_open = True
        # Accepts sent whose `accepted` event has not been seen yet: offer id -> action id.
        self.unconfirmed_accepts: dict[str, str] = {}
        self.sent: list[dict[str, Any]] = traffic.ledger.actions
        self.in_flight = 0

    # --- reacting to events -----------------------------------------------------------

    def on_record(self, seen: Seen) -> None:
        if seen.id in self.seen_ids:
            return  # a republished event (same id): at-least-once, already handled
        self.seen_ids.add(seen.id)
        handler = getattr(
            self, "_on_" + seen.type.replace("complaint.", "").replace(".", "_"), None
        )
        if handler is not None:
            handler(seen.data)

    def _case(self, number: str) -> CaseView:
        return self.cases.setdefault(number, CaseView(number))

    def _on_case_opened(self, data: dict[str, Any]) -> None:
        case = self._case(data["case_number"])
        self.traffic.opened[f"{data['channel']}:{data['source_ref']}"] = case.number
        if self.initiating and not case.replied and self.rng.random() < 0.05:
            case.replied = True
            self._later(1, 4, "customer_reply", case.number, text=f"any news? ({self.tag})")

    def _on_case_message_added(self, data: dict[str, Any]) -> None:
        self.traffic.opened[f"{data['channel']}:{data['source_ref']}"] = data["case_number"]

    def _on_compensation_proposed(self, data: dict[str, Any]) -> None:
        case = self._case(data["case_number"])
        offer = case.offers.setdefault(data["offer_id"], {})
        offer.update(status="proposed", options=data["options"],
                     expires_at=datetime.fromisoformat(data["expires_at"]))  # fmt: skip
        if not self.initiating or case.resolved:
            return
        roll = self.rng.random()
        acceptable = self.accepts_open and offer["expires_at"] - self.clock.now() > timedelta(
            hours=1
        )
        if roll < 0.55 and acceptable:
            option = self.rng.choice(data["options"])
            case.resolve_after_accept = self.rng.random() < 0.7
            self._later(0.5, 5, "accept_offer", case.number, offer_id=data["offer_id"],
                        option_id=option["option_id"])  # fmt: skip
        elif roll < 0.75:
            self._resolve_later(case)

    def _on_compensation_approval_requested(self, data: dict[str, Any]) -> None:
        case = self._case(data["case_number"])
        case.offers.setdefault(data["offer_id"], {})["status"] = "pending_approval"
        if not self.initiating or data.get("reminder") or data.get("escalated_from"):
            return  # a reminder or an escalation of a request the desk already answers
        roll = self.rng.random()
        if roll < 0.5:
            self._later(1, 5, "approve_compensation", case.number, offer_id=data["offer_id"],
                        note="ok")  # fmt: skip
        elif roll < 0.75:
            self._later(1, 5, "reject_compensation", case.number, offer_id=data["offer_id"],
                        note="too much")  # fmt: skip

    def _on_compensation_accepted(self, data: dict[str, Any]) -> None:
        case = self._case(data["case_number"])
        case.offers.setdefault(data["offer_id"], {})["status"] = "accepted"
        self.unconfirmed_accepts.pop(data["offer_id"], None)
        if case.resolve_after_accept and self.initiating:
            case.resolve_after_accept = False
            self._resolve_later(case)

    def _on_followup_sent(self, data: dict[str, Any]) -> None:
        if self.initiating and self.rng.random() < 0.85:
            self._later(0.5, 4, "survey_response", data["case_number"],
                        score=self.rng.randint(1, 5), comment=f"chaos {self.tag}")  # fmt: skip

    def _on_case_reopened(self, data: dict[str, Any]) -> None:
        self._case(data["case_number"]).resolved = False

    def _resolve_later(self, case: CaseView) -> None:
        if case.resolved:
            return
        case.resolved = True  # from the desk's point of view: one resolve per open period
        root = self.rng.choice(("systemic", "one_off", "unknown"))
        self._later(1, 8, "resolve", case.number,
                    resolution={"summary": f"handled by chaos desk {self.tag}", "root_cause": root})  # fmt: skip

    # --- sending ----------------------------------------------------------------------

    def _later(self, low: float, high: float, kind: str, case_number: str, **fields: Any) -> None:
        due = time.monotonic() + self.rng.uniform(low, high)
        action = {"action_id": f"act-{self.tag}-{next(self._ids):06d}", "case_number": case_number,
                  "type": kind, "actor": f"agent-{self.rng.randint(1, 9)}", **fields}  # fmt: skip
        heapq.heappush(self._queue, (due, next(self._order), kind, action))

    def close_accepts(self) -> None:
        """No more accepts (the clock is about to jump past every open offer's expiry)."""
        self.accepts_open = False
        self._queue = [item for item in self._queue if item[2] != "accept_offer"]
        heapq.heapify(self._queue)

    def stop_initiating(self) -> None:
        """The round is ending: nothing new is planned, nothing planned is sent."""
        self.initiating = False
        self._queue = []

    async def run(self) -> None:
        while True:
            if not self._queue or self._queue[0][0] > time.monotonic():
                await asyncio.sleep(0.05)  # pacing the desk's queue
                continue
            _, _, kind, action = heapq.heappop(self._queue)
            if kind == "accept_offer" and not self.accepts_open:
                continue
            action["at"] = self.clock.now().isoformat()
            if kind == "accept_offer":
                self.unconfirmed_accepts[action["offer_id"]] = action["action_id"]
            self.in_flight += 1
            try:
                await self.send(action)
                self.sent.append(action)
                if self.rng.random() < self.duplicate_share:
                    await self.send(action)  # the desk's double click: same action_id
                    self.sent.append(action)
            finally:
                self.in_flight -= 1


def encode_action(action: dict[str, Any]) -> bytes:
    return json.dumps(action, ensure_ascii=False).encode()
