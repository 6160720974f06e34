"""One truthful story per case: the compensation a resolved record tells. Pure.

The rule (docs/contract.md, "Follow-up"):
- An offer accepted before the `resolve` action, in the order this service reads
  `cases.actions`, is the resolved record's `compensation`. The `accept_offer` action is
  recorded as it is read; the option's details and the confirmation that compensation
  took the acceptance come with `complaint.compensation.accepted` on another topic, so
  the resolution waits for that event (a bounded time: the case is never held hostage
  by a service that is down or by an acceptance that was refused).
- Any compensation outcome that reaches the case after its record went out (an
  acceptance that came later or after the wait, an expiry's fallback, an approval that
  expired at the top) and changes what the case got is published as a new revision of
  the same record: `revision` + 1, a new event id, the rest unchanged.
"""

from __future__ import annotations

from typing import Any

ACCEPTED = "complaint.compensation.accepted"
EXPIRED = "complaint.compensation.expired"
# The events that end an offer: after one of them the offer has nothing more to tell.
OUTCOMES = (ACCEPTED, EXPIRED)

Document = dict[str, Any]


def given_by(event_type: str, data: Document) -> Document | None:
    """What an outcome gives the customer, as the resolved record's `compensation`."""
    if event_type == ACCEPTED:
        return data
    if event_type == EXPIRED and data.get("fallback"):
        # What the customer got without choosing counts as the case's compensation.
        return {"case_number": data["case_number"], "offer_id": data["offer_id"],
                **data["fallback"], "granted_on_expiry": True}  # fmt: skip
    return None


def awaited_acceptances(case: Document) -> list[str]:
    """Offers accepted on `cases.actions` whose outcome has not reached this service (and
    that no resolution has already given up waiting for: `ended_offers` holds both)."""
    ended = set(case.get("ended_offers") or [])
    return sorted({accepted["offer_id"] for accepted in case.get("accept_actions") or []} - ended)


def same_compensation(one: Document | None, other: Document | None) -> bool:
    """The same option of the same offer (how it was described may differ)."""
    if one is None or other is None:
        return one is other
    return (one.get("offer_id"), one.get("option_id")) == (
        other.get("offer_id"),
        other.get("option_id"),
    )
