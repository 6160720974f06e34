"""The verdict, from the outside: the outbound topics read from the beginning after the
system settled, the stores' money documents, and what the driver sent.

Rules (each violation is listed with examples; any violation fails the round):
  submissions   every complaint has exactly one case number: a new one opened once, a
                reply joined its thread's case, a duplicate filed under the original's
                case without a case of its own, an auto-reply and a re-send made nothing
  cases         one `case.opened` id and one first triage per case
  offers        each triaged case got an offer; at most one outcome per offer; every
                accept, approval and rejection sent had its event
  resolutions   one `case.resolved` and one follow-up per resolve sent; every follow-up
                due was sent; one answer per survey response, a reopening per low score
  payloads      no event id published with two different payloads
  money         every budget and customer cap equals the sum of what the published
                offers charged
  dlq           nothing in the DLQ but the bad inputs sent on purpose (exact bytes)
  outbox        no event left behind in any document's outbox
"""

from __future__ import annotations

import base64
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from schemas.cloudevents import stable_event_id
from services.intake.complaint import source_key_for
from tests.chaos.outbound import Seen
from tests.chaos.traffic import Ledger

EXAMPLES = 5


@dataclass
class Verdict:
    rows: list[tuple[str, object]] = field(default_factory=list)
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def count(self, name: str, value: object) -> None:
        self.rows.append((name, value))

    def fail(self, rule: str, example: str) -> None:
        self.violations[rule].append(example)

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def report(self) -> str:
        width = max(len(name) for name, _ in self.rows) if self.rows else 10
        lines = [f"  {name:<{width}}  {value}" for name, value in self.rows]
        for rule, examples in self.violations.items():
            if examples:
                lines.append(f"  VIOLATION {rule}: {len(examples)}")
                lines.extend(f"      {example}" for example in examples[:EXAMPLES])
        lines.append("  verdict: " + ("PASS" if self.ok else "FAIL"))
        return "\n".join(lines)


def _coupon(option: dict[str, Any] | None) -> int:
    """Goodwill of an option in cents: store credit is goodwill, money back is not."""
    if not option or option.get("kind") != "coupon" or not option.get("value"):
        return 0
    return int(Decimal(option["value"]["amount"]) * 100)


@dataclass
class Outside:
    """Distinct events by type (first copy of each id), and every copy of every id."""

    seen: list[Seen]

    def __post_init__(self) -> None:
        self.by_type: dict[str, dict[str, Seen]] = defaultdict(dict)
        self.copies: dict[str, set[bytes]] = defaultdict(set)
        self.records = Counter[str]()
        for item in self.seen:
            self.copies[item.id].add(item.raw)
            self.records[item.id] += 1
            self.by_type[item.type].setdefault(item.id, item)

    def of(self, event_type: str) -> list[Seen]:
        return list(self.by_type.get(f"complaint.{event_type}", {}).values())


def judge(
    ledger: Ledger, seen: list[Seen], store: dict[str, Any], clock_now: datetime,
    problems: list[str],
) -> Verdict:  # fmt: skip
    verdict = Verdict()
    outside = Outside(seen)
    cases = _submissions(verdict, ledger, outside, store)
    _triage(verdict, outside, cases)
    charges = _offers(verdict, ledger, outside, cases)
    _resolutions(verdict, ledger, outside, clock_now)
    _payloads(verdict, outside)
    _money(verdict, outside, charges, store)
    _dlq(verdict, ledger, outside)
    _outbox(verdict, store)
    for problem in problems:
        verdict.fail("operations", problem)
    return verdict


def _submissions(
    verdict: Verdict, ledger: Ledger, outside: Outside, store: dict[str, Any]
) -> set[str]:
    opened: dict[str, set[str]] = defaultdict(set)
    added: dict[str, set[str]] = defaultdict(set)
    case_of: dict[str, str] = {}
    ids_per_case: dict[str, set[str]] = defaultdict(set)
    for event in outside.of("case.opened"):
        key = f"{event.data.get('channel')}:{event.data.get('source_ref')}"
        opened[key].add(event.id)
        case_of[key] = str(event.case_number)
        ids_per_case[str(event.case_number)].add(event.id)
    for event in outside.of("case.message_added"):
        key = f"{event.data.get('channel')}:{event.data.get('source_ref')}"
        added[key].add(event.id)
        case_of.setdefault(key, str(event.case_number))
    kinds = Counter(s.kind for s in ledger.submissions)
    for kind in ("new", "reply", "resend", "duplicate", "auto_reply"):
        verdict.count(f"submissions: {kind}", kinds.get(kind, 0))
    verdict.count("cases opened (distinct)", len(ids_per_case))
    verdict.count("messages added (distinct)", sum(len(ids) for ids in added.values()))
    sources = store.get("intake_sources", {})
    expected_new: set[str] = set()
    for sub in ledger.submissions:
        key = sub.source_key
        if sub.kind == "new":
            expected_new.add(key)
            if len(opened.get(key, ())) != 1 or added.get(key):
                verdict.fail("submissions", f"{key}: {len(opened.get(key, ()))} case(s) opened, "
                                            f"{len(added.get(key, ()))} message(s) added; want 1 and 0")  # fmt: skip
        elif sub.kind == "reply":
            want = case_of.get(f"{sub.channel}:{sub.of}")
            got = {case_of.get(key)} if added.get(key) else set()
            if len(added.get(key, ())) != 1 or opened.get(key) or got != {want}:
                verdict.fail("submissions", f"reply {key} to {sub.of}: {len(added.get(key, ()))} message(s) "
                                            f"in {got}, {len(opened.get(key, ()))} case(s); want 1 in {want}")  # fmt: skip
        elif sub.kind in ("duplicate", "auto_reply"):
            if opened.get(key) or added.get(key):
                verdict.fail("submissions", f"{sub.kind} {key} made an event")
            if sub.kind == "duplicate":
                filed = (stored_source(sources, key) or {}).get("case_number")
                if filed is None or filed != case_of.get(f"{sub.channel}:{sub.of}"):
                    verdict.fail("submissions", f"duplicate {key} of {sub.of} filed under {filed}")
    for action in ledger.actions:
        if action["type"] == "customer_reply":
            key = f"app:action:{action['action_id']}"
            if len(added.get(key, ())) != 1 or case_of.get(key) != action["case_number"]:
                verdict.fail(
                    "submissions", f"customer reply {key}: {len(added.get(key, ()))} message(s)"
                )
    for key in opened:
        if key not in expected_new:
            verdict.fail("submissions", f"a case opened for {key}, which was not a new complaint")
    for case_number, ids in ids_per_case.items():
        if len(ids) != 1:
            verdict.fail("cases", f"{case_number} opened under {len(ids)} event ids")
    return set(ids_per_case)


def _triage(verdict: Verdict, outside: Outside, cases: set[str]) -> None:
    first: dict[str, set[str]] = defaultdict(set)
    for event in outside.of("case.triaged"):
        if int(event.data.get("revision", 1)) == 1:
            first[str(event.case_number)].add(event.id)
    verdict.count("first triage decisions", sum(len(ids) for ids in first.values()))
    verdict.count("triage decisions (all revisions)", len(outside.of("case.triaged")))
    for case_number in cases:
        if len(first.get(case_number, ())) != 1:
            verdict.fail(
                "cases", f"{case_number}: {len(first.get(case_number, ()))} first triage(s)"
            )
    for case_number in set(first) - cases:
        verdict.fail("cases", f"{case_number} triaged but never opened")


def _offers(
    verdict: Verdict, ledger: Ledger, outside: Outside, cases: set[str]
) -> dict[str, tuple[int, str | None]]:
    """Checks the offers; returns what each published offer charged (cents, customer)."""
    customer: dict[str, str | None] = {}
    triaged: set[str] = set()
    for event in outside.of("case.triaged"):
        triaged.add(str(event.case_number))
        customer.setdefault(str(event.case_number), event.data.get("customer_id"))
    steps: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    case_offers: dict[str, set[str]] = defaultdict(set)
    for step in ("proposed", "approval_requested", "accepted", "expired", "rejected"):
        for event in outside.of(f"compensation.{step}"):
            steps[event.data["offer_id"]][step] = event.data
            case_offers[str(event.case_number)].add(event.data["offer_id"])
    outcomes = Counter[str]()
    charges: dict[str, tuple[int, str | None]] = {}
    for offer_id, found in steps.items():
        ends = [step for step in ("accepted", "expired", "rejected") if step in found]
        outcomes.update(ends or ["open"])
        if len(ends) > 1:
            verdict.fail("offers", f"{offer_id} has {len(ends)} outcomes: {ends}")
        if "proposed" not in found and "approval_requested" not in found:
            verdict.fail("offers", f"{offer_id} has an outcome but was never made")
        options = {o["option_id"]: o for o in (found.get("proposed") or {}).get("options", [])}
        if "accepted" in found:
            cents = _coupon(options.get(found["accepted"]["option_id"]))
        elif "expired" in found:
            cents = _coupon(found["expired"].get("fallback"))
        elif "rejected" in found or "proposed" not in found:
            cents = 0
        else:
            cents = max((_coupon(o) for o in options.values()), default=0)
        case_number = offer_id.rsplit("-O", 1)[0]
        charges[offer_id] = (cents, customer.get(case_number))
    for step, count in sorted(outcomes.items()):
        verdict.count(f"offers: {step}", count)
    for case_number in triaged & cases:
        numbers = sorted(int(o.rsplit("-O", 1)[1]) for o in case_offers.get(case_number, ()))
        if not numbers or numbers != list(range(1, len(numbers) + 1)):
            verdict.fail("offers", f"{case_number} offers {numbers}")
    for action in {a["action_id"]: a for a in ledger.actions}.values():
        offer = steps.get(str(action.get("offer_id")), {})
        if (
            action["type"] == "accept_offer"
            and (offer.get("accepted") or {}).get("option_id") != action["option_id"]
        ):
            verdict.fail(
                "offers", f"accept {action['action_id']} of {action['offer_id']}: {sorted(offer)}"
            )
        if action["type"] == "approve_compensation" and "proposed" not in offer:
            verdict.fail(
                "offers", f"approval {action['action_id']} of {action['offer_id']}: {sorted(offer)}"
            )
        if action["type"] == "reject_compensation":
            alternative = (offer.get("rejected") or {}).get("alternative_offer_id")
            if alternative is None or "proposed" not in steps.get(alternative, {}):
                verdict.fail("offers", f"rejection {action['action_id']} of {action['offer_id']}: "
                                       f"{sorted(offer)}, alternative {alternative}")  # fmt: skip
    return charges


def stored_source(sources: dict[str, Any], key: str) -> Any:
    """Intake's claim of ``channel:source_ref``: it keeps the id's digest, not the id."""
    channel, _, ref = key.partition(":")
    return sources.get(source_key_for(channel, ref))


def _resolutions(verdict: Verdict, ledger: Ledger, outside: Outside, clock_now: datetime) -> None:
    # A resolution's record, then its revisions when a later compensation outcome changed
    # what the case got (one story per case: same case, revision + 1, a new event id).
    records = outside.of("case.resolved")
    resolved = {e.id for e in records if int(e.data.get("revision") or 1) == 1}
    first_cases = {str(e.case_number) for e in records if e.id in resolved}
    for revision in (e for e in records if int(e.data.get("revision") or 1) > 1):
        if str(revision.case_number) not in first_cases:
            verdict.fail("resolutions", f"case.resolved revision {revision.id} of "
                                        f"{revision.case_number} revises no resolution")  # fmt: skip
    scheduled = {e.id: e for e in outside.of("followup.scheduled")}
    sent = {str(e.data.get("followup_id")) for e in outside.of("followup.sent")}
    actions = {a["action_id"]: a for a in ledger.actions}.values()
    resolves = [a for a in actions if a["type"] == "resolve"]
    expected = set()
    for action in resolves:
        fact = (action["case_number"], action["action_id"])
        expected.add(stable_event_id("complaint.case.resolved", *fact))
        if stable_event_id("complaint.case.resolved", *fact) not in resolved:
            verdict.fail(
                "resolutions", f"resolve {action['action_id']} of {fact[0]}: no case.resolved"
            )
        if stable_event_id("complaint.followup.scheduled", *fact) not in scheduled:
            verdict.fail("resolutions", f"resolve {action['action_id']} of {fact[0]}: no follow-up")
    for extra in resolved - expected:
        verdict.fail("resolutions", f"case.resolved {extra} answers no resolve action")
    for event in scheduled.values():
        due = datetime.fromisoformat(event.data["due_at"])
        if due < clock_now and event.data["followup_id"] not in sent:
            verdict.fail(
                "resolutions", f"follow-up {event.data['followup_id']} due {due} never sent"
            )
    answers: dict[str, Counter[int]] = defaultdict(Counter)
    for event in outside.of("followup.answered"):
        answers[str(event.case_number)][int(event.data["score"])] += 1
    surveys: dict[str, Counter[int]] = defaultdict(Counter)
    for action in actions:
        if action["type"] == "survey_response":
            surveys[action["case_number"]][int(action["score"])] += 1
    for case_number in set(answers) | set(surveys):
        if answers.get(case_number) != surveys.get(case_number):
            verdict.fail("resolutions", f"{case_number}: answers {dict(answers.get(case_number, {}))}, "
                                        f"surveys sent {dict(surveys.get(case_number, {}))}")  # fmt: skip
    low = sum(n for scores in surveys.values() for score, n in scores.items() if score <= 2)
    reopened = len(outside.of("case.reopened"))
    if reopened != low:
        verdict.fail("resolutions", f"{reopened} reopenings for {low} low scores")
    verdict.count("resolve actions (distinct)", len(resolves))
    verdict.count("cases resolved (distinct)", len(resolved))
    verdict.count("follow-ups scheduled / sent", f"{len(scheduled)} / {len(sent)}")
    verdict.count(
        "surveys answered / reopened",
        f"{sum(map(sum, (c.values() for c in answers.values())))} / {reopened}",
    )


def _payloads(verdict: Verdict, outside: Outside) -> None:
    copies = sum(outside.records.values())
    verdict.count("outbound records / distinct event ids", f"{copies} / {len(outside.records)}")
    for event_id, payloads in outside.copies.items():
        if len(payloads) > 1:
            sample = sorted(payloads)[:2]
            verdict.fail("payloads", f"{event_id} published with {len(payloads)} payloads: "
                                     f"{sample[0][:160]!r} vs {sample[1][:160]!r}")  # fmt: skip


def _money(verdict: Verdict, outside: Outside, charges: dict[str, tuple[int, str | None]],
           store: dict[str, Any]) -> None:  # fmt: skip
    # A month's total must be the sum of its offers' charge documents, and nothing may be
    # left pending (an operation a crash interrupted is finished by the next try).
    month_cents: dict[str, int] = {}
    budget_cents: dict[str, int] = {}
    for charge in store.get("budget_charges", []):
        month_cents[charge["budget"]] = month_cents.get(charge["budget"], 0) + charge["cents"]
        budget_cents[charge["_id"]] = budget_cents.get(charge["_id"], 0) + charge["cents"]
    for doc in store.get("budgets", []):
        if doc.get("spent_cents", 0) != month_cents.get(doc["_id"], 0):
            verdict.fail("money", f"budget {doc['_id']} spent {doc.get('spent_cents')} != "
                                  f"sum of its offers {month_cents.get(doc['_id'], 0)}")  # fmt: skip
        if doc.get("pending"):
            verdict.fail("money", f"budget {doc['_id']} left pending {doc['pending']}")
    for month in set(month_cents) - {doc["_id"] for doc in store.get("budgets", [])}:
        if month_cents[month]:
            verdict.fail("money", f"charges of {month_cents[month]} to a missing budget {month}")
    customer_cents: dict[tuple[str, str], int] = {}
    for doc in store.get("goodwill", []):
        for charge in doc.get("charges", []):
            where = (str(doc["_id"]), charge["offer_id"])
            customer_cents[where] = customer_cents.get(where, 0) + int(charge["cents"])
    for offer_id, (cents, customer) in charges.items():
        if budget_cents.get(offer_id, 0) != cents:
            verdict.fail("money", f"{offer_id} published {cents} cents, budgets hold "
                                  f"{budget_cents.get(offer_id, 0)}")  # fmt: skip
        if customer and customer_cents.get((customer, offer_id), 0) != cents:
            verdict.fail("money", f"{offer_id} published {cents} cents, {customer}'s cap holds "
                                  f"{customer_cents.get((customer, offer_id), 0)}")  # fmt: skip
    for offer_id in set(budget_cents) - set(charges):
        if budget_cents[offer_id]:
            verdict.fail(
                "money", f"{offer_id} charged {budget_cents[offer_id]} but never published"
            )
    for (customer, offer_id), cents in customer_cents.items():
        if cents and offer_id not in charges:
            verdict.fail("money", f"{customer} charged {cents} for unpublished {offer_id}")
    verdict.count("goodwill published / in budgets / in caps (cents)",
                  f"{sum(c for c, _ in charges.values())} / {sum(budget_cents.values())} / "
                  f"{sum(customer_cents.values())}")  # fmt: skip


def _dlq(verdict: Verdict, ledger: Ledger, outside: Outside) -> None:
    bad = {item.raw: item for item in ledger.bad_inputs}
    found: set[bytes] = set()
    reasons = Counter[str]()
    for event in outside.of("input.rejected"):
        original = base64.b64decode(event.data.get("original", ""))
        reasons[str(event.data.get("reason_code"))] += 1
        if original in bad:
            found.add(original)
        else:
            verdict.fail("dlq", f"{event.data.get('service')} dead-lettered {event.data.get('topic')} "
                                f"({event.data.get('reason_code')}: {str(event.data.get('reason'))[:120]}): "
                                f"{original[:120]!r}")  # fmt: skip
    for raw, item in bad.items():
        if raw not in found:
            verdict.fail(
                "dlq", f"bad input on {item.topic} ({item.why}) not in the DLQ: {raw[:80]!r}"
            )
    verdict.count("bad inputs sent / in the DLQ", f"{len(bad)} / {len(found)}")
    verdict.count("DLQ records by reason", dict(sorted(reasons.items())))


def _outbox(verdict: Verdict, store: dict[str, Any]) -> None:
    stranded = store.get("outboxes", [])
    for where, document_id, count in stranded:
        verdict.fail("outbox", f"{where} {document_id}: {count} event(s) never published")
    verdict.count("documents with unpublished events", len(stranded))
