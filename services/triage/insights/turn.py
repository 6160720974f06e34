"""One turn of the detector: every case the lanes brought in one go, planned together. Pure.

The handlers of a batch's lanes reach the detector at about the same moment; their
cases are counted together (services/triage/insights/detection.py gathers them), so the
store sees, per turn, ONE update per key touched ($inc of fixed-size hour and day
buckets, a bounded list of recent case numbers and samples, and per hour the marks of
the cases it counted: a customer digest and a case digest each, which make the hourly
counts counts of distinct customers and count a redelivered case nothing), one update per open
insight the turn's cases join (counts, and an ``updated`` event at most once per
``update_interval_minutes`` of case time) and one small document per case joining an
insight (``insight_cases``, ``_id`` insight|case: a redelivery writes the same one).
Nothing written grows with the size of a surge.

``plan_turn`` takes what the store holds for the turn's keys and their open
insights and returns what to write and what each case is told.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.policy.model import InsightsPolicy
from services.runtime.kafka import OutboundMessage
from services.runtime.outbox import add_to_outbox
from services.triage.insights.detector import (
    Verdict,
    day_key,
    evaluate,
    first_seen,
    hour_key,
    insight_id,
    kept_days_from,
    kept_hours_from,
    stale,
    suppressed_by,
    window_cases,
)
from services.triage.insights.keys import KINDS, CaseKey
from services.triage.insights.messages import insight_message, join_reason

Document = dict[str, Any]
# Marks (customer digest + case digest) a key keeps per hour: its distinct customers and
# the guard that counts a case once. A key's cases beyond these in one hour are told
# about its insight but not counted (far above any threshold by then, and a case without
# a mark could not be told from its redelivery): the document stays bounded.
SEEN_PER_HOUR = 256
# Hex digits of each digest in a mark: 32 bits, a collision in one key's 25 hours is rare
# (and costs one customer or one case of a count).
DIGEST_CHARS = 8


@dataclass(frozen=True)
class Observation:
    """One triaged case as the detector counts it."""

    case_number: str
    voice: str  # customer_of(): the customer, or the case itself
    at: datetime
    keys: tuple[CaseKey, ...]
    # Its redacted sample text, or how to make it: a key keeps only its last few, so
    # most cases' samples are never made (redaction is most of their cost).
    sample: str | Callable[[], str]

    def sample_text(self) -> str:
        return self.sample if isinstance(self.sample, str) else self.sample()


@dataclass
class Observed:
    """What the detector made of one case: reasons for its triage, insights it is in."""

    reasons: list[str] = field(default_factory=list)
    insights: list[str] = field(default_factory=list)
    # The keys it was counted in (its triage document keeps them: an erasure finds the
    # keys' marks of the case there).
    keys: list[str] = field(default_factory=list)


@dataclass
class Plan:
    observed: dict[str, Observed] = field(default_factory=dict)
    keys: dict[str, Document] = field(default_factory=dict)  # key id -> update
    created: list[Document] = field(default_factory=list)  # insight documents with outbox
    joined: dict[str, Document] = field(default_factory=dict)  # insight id -> update
    insight_cases: list[Document] = field(default_factory=list)
    flush: list[str] = field(default_factory=list)
    detected: list[tuple[str, str]] = field(default_factory=list)  # (kind, category)
    cases_counted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    check_at: list[datetime] = field(default_factory=list)
    # Keys about to open an insight that were loaded without their recent cases.
    needs_recent: list[str] = field(default_factory=list)


def voice_digest(voice: str) -> str:
    """A customer voice as a key's marks hold it: a short digest, so it names nobody."""
    return hashlib.sha256(voice.encode()).hexdigest()[:DIGEST_CHARS]


def case_digest(case_number: str) -> str:
    return hashlib.sha256(case_number.encode()).hexdigest()[:DIGEST_CHARS]


def case_mark(voice: str, case_number: str) -> str:
    """What a key keeps of a case it counted: its voice's digest, then the case's."""
    return voice_digest(voice) + case_digest(case_number)


@dataclass
class _Key:
    key: CaseKey
    document: Document
    live: dict[str, int]
    days: dict[str, int]
    live_inc: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    day_inc: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    recent: list[Document] = field(default_factory=list)
    samples: list[Observation] = field(default_factory=list)
    fresh: list[Observation] = field(default_factory=list)
    seen: list[Observation] = field(default_factory=list)  # counted before (redelivered)
    last_at: datetime | None = None
    since: datetime | None = None
    marks: set[str] = field(default_factory=set)  # every mark the key holds
    latest: dict[str, str] = field(default_factory=dict)  # voice digest -> its latest hour
    marked: dict[str, list[str]] = field(default_factory=dict)  # hour -> marks (touched)
    mark_push: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def of(cls, key: CaseKey, document: Document) -> _Key:
        entry = cls(key, document, dict(document.get("live") or {}),
                    dict(document.get("days") or {}))  # fmt: skip
        for hour, marks in sorted((document.get("seen") or {}).items()):
            for mark in marks or []:
                entry.marks.add(mark)
                entry.latest[mark[:DIGEST_CHARS]] = hour
        return entry


def plan_turn(
    observations: list[Observation],
    keys: dict[str, Document],
    insights: dict[str, Document],
    rules: InsightsPolicy,
    policy_version: str,
    now: datetime,
) -> Plan:
    plan = Plan()
    state: dict[str, _Key] = {}
    ordered = sorted(observations, key=lambda o: (o.at, o.case_number))
    for observation in ordered:
        _count(observation, keys, state, plan, rules)
    opened: list[tuple[str, str, list[str]]] = []  # (insight id, kind, cases) this turn
    for key_id in sorted(state, key=lambda k: (KINDS.index(state[k].key.kind), k)):
        _decide(state[key_id], insights, opened, plan, rules, policy_version, now)
    return plan


def _count(
    observation: Observation, keys: dict[str, Document], state: dict[str, _Key], plan: Plan,
    rules: InsightsPolicy,
) -> None:  # fmt: skip
    voice = voice_digest(observation.voice)
    mark = voice + case_digest(observation.case_number)
    hour, day = hour_key(observation.at), day_key(observation.at)
    observed = plan.observed.setdefault(observation.case_number, Observed())
    for key in observation.keys:
        if key.id not in state:
            state[key.id] = _Key.of(key, keys.get(key.id) or {})
        entry = state[key.id]
        if key.id not in observed.keys:
            observed.keys.append(key.id)
        marked = entry.marked.setdefault(
            hour, list((entry.document.get("seen") or {}).get(hour) or [])
        )
        if mark in entry.marks or len(marked) >= SEEN_PER_HOUR or _too_late(entry, hour, rules):
            # Counted before (its batch again), beyond what the key marks, or older than
            # any hour the key keeps marks of (its mark may be gone): told, not counted.
            entry.seen.append(observation)
            continue
        marked.append(mark)
        entry.marks.add(mark)
        entry.mark_push[hour].append(mark)
        entry.fresh.append(observation)
        previous = entry.latest.get(voice)
        if previous is None or previous < hour:
            if previous is not None and previous in entry.live:
                entry.live[previous] -= 1
                entry.live_inc[previous] -= 1
            entry.live[hour] = entry.live.get(hour, 0) + 1
            entry.live_inc[hour] += 1
            entry.latest[voice] = hour
        entry.days[day] = entry.days.get(day, 0) + 1
        entry.day_inc[day] += 1
        entry.recent.append({"c": observation.case_number, "t": observation.at})
        entry.samples.append(observation)
        entry.last_at = max(entry.last_at or observation.at, observation.at)
        entry.since = min(entry.since or observation.at, observation.at)


def _too_late(entry: _Key, hour: str, rules: InsightsPolicy) -> bool:
    """Older than the hours the key keeps marks of (a case delivered more than a window
    after the key's latest): it cannot be told from a redelivery whose mark is gone."""
    latest = [at for at in (entry.document.get("last_at"), entry.last_at) if at is not None]
    return bool(latest) and hour < kept_hours_from(max(latest), rules)


def _decide(
    entry: _Key, insights: dict[str, Document], opened: list[tuple[str, str, list[str]]],
    plan: Plan, rules: InsightsPolicy, policy_version: str, now: datetime,
) -> None:  # fmt: skip
    key, document = entry.key, entry.document
    stored_last = document.get("last_at")
    end = max(at for at in (stored_last, entry.last_at) if at is not None) \
        if (stored_last or entry.last_at) else now  # fmt: skip
    since = min(at for at in (document.get("since"), entry.since) if at is not None) \
        if (document.get("since") or entry.since) else None  # fmt: skip
    verdict = evaluate(entry.live, entry.days, key.kind, key.category, rules, end, since)
    recent = [*(document.get("recent") or []), *entry.recent][-rules.max_tracked_cases :]
    update = _key_update(entry, verdict, rules)
    if entry.fresh:  # a key only redelivered cases mention is not written
        plan.keys[key.id] = update
    open_id = document.get("open_insight")
    insight = insights.get(open_id) if open_id else None
    if open_id and insight is not None and insight.get("status") != "open":
        update["$set"]["open_insight"] = None  # subsided; the key was not told
        update["$setOnInsert"].pop("open_insight", None)
        plan.keys[key.id] = update
        open_id, insight = None, None
    if open_id and insight is not None:
        cases_now = _join(entry, insight, verdict, plan, rules, now)
        opened.append((insight["_id"], key.kind, cases_now))
        return
    if not entry.fresh or not verdict.opens:
        return
    if "recent" not in document and document:
        plan.needs_recent.append(key.id)  # loaded without: planned again with it
        return
    cases = window_cases(recent, verdict)
    first = first_seen(recent, verdict)
    if first is None or suppressed_by(key.kind, cases, opened, rules.overlap_share):
        return
    generation = int(document.get("generation") or 0)
    new_id = open_id or insight_id(key.id, first, generation)
    if not open_id:  # the key's one open insight, claimed by the key's own update
        update["$set"]["open_insight"] = new_id
        update.setdefault("$inc", {})["generation"] = 1
        update["$setOnInsert"].pop("open_insight", None)
        update["$setOnInsert"].pop("generation", None)
    samples = [*(document.get("samples") or []), *_samples(entry.samples, rules.sample_texts)]
    samples = samples[-rules.sample_texts :] if rules.sample_texts else []
    created = new_insight(new_id, key, verdict, cases, first, samples, now, policy_version,
                          rules.max_listed_cases)  # fmt: skip
    message = insight_message("detected", created, rules.window_hours, now, ("detected",))
    plan.created.append({**created, "__messages": [message]})
    plan.insight_cases.extend(_case_document(new_id, case) for case in cases)
    plan.flush.append(new_id)
    plan.detected.append((key.kind, key.category))
    plan.cases_counted[key.kind] += len(cases)
    if verdict.subside_at is not None:
        plan.check_at.append(verdict.subside_at)
    opened.append((new_id, key.kind, cases))
    for observation in [*entry.fresh, *entry.seen]:
        if observation.case_number in cases:
            _tell(plan, observation, created, key, verdict, rules)


def _key_update(entry: _Key, verdict: Verdict, rules: InsightsPolicy) -> Document:
    key = entry.key
    update: Document = {
        "$setOnInsert": {"kind": key.kind, "category": key.category, "value": key.value,
                         "generation": 0},
        "$set": {},
    }  # fmt: skip
    stale_hours = stale(entry.live, kept_hours_from(verdict.window_end, rules))
    stale_days = stale(entry.days, kept_days_from(verdict.window_end, rules))
    stale_marks = stale((entry.document.get("seen") or {}).keys() | entry.mark_push.keys(),
                        kept_hours_from(verdict.window_end, rules))  # fmt: skip
    inc = {f"live.{hour}": n for hour, n in entry.live_inc.items() if n and hour not in stale_hours}
    inc |= {f"days.{day}": n for day, n in entry.day_inc.items() if n and day not in stale_days}
    if inc:
        update["$inc"] = inc
    unset = {f"live.{hour}": "" for hour in stale_hours}
    unset |= {f"days.{day}": "" for day in stale_days}
    unset |= {f"seen.{hour}": "" for hour in stale_marks}
    if unset:
        update["$unset"] = unset
    update["$push"] = {f"seen.{hour}": {"$each": marks} for hour, marks in entry.mark_push.items()
                       if marks and hour not in stale_marks}  # fmt: skip
    if entry.recent:
        recent = entry.recent[-rules.max_tracked_cases :]
        update["$push"]["recent"] = {"$each": recent, "$slice": -rules.max_tracked_cases}
        samples = _samples(entry.samples, max(rules.sample_texts, 1))
        if samples:
            update["$push"]["samples"] = {"$each": samples, "$slice": -max(rules.sample_texts, 1)}
    if entry.last_at is not None:
        update["$max"] = {"last_at": entry.last_at}
        update["$min"] = {"since": entry.since}
    update["$setOnInsert"]["open_insight"] = None
    return update


def _samples(observations: list[Observation], count: int) -> list[Document]:
    """The last ``count`` non-empty samples of ``observations``, oldest first (only
    those are made)."""
    found: list[Document] = []
    for observation in reversed(observations):
        if len(found) == count:
            break
        text = observation.sample_text()
        if text:
            found.append({"c": observation.case_number, "s": text})
    return found[::-1]


def compact(update: Document) -> Document:
    """``update`` without empty operators (some servers refuse them)."""
    return {operator: fields for operator, fields in update.items() if fields}


def _join(
    entry: _Key, insight: Document, verdict: Verdict, plan: Plan, rules: InsightsPolicy,
    now: datetime,
) -> list[str]:  # fmt: skip
    """The turn's cases of the key's window join its open insight: counts, and an
    ``updated`` event unless one went out less than the interval ago. Returns the cases
    the insight is known to hold now (its listed ones and this turn's), which less
    specific groups of the turn are compared with."""
    insight_key = entry.key
    inside = [o for o in entry.fresh if o.at >= verdict.window_start]
    for observation in [*inside, *(o for o in entry.seen if o.at >= verdict.window_start)]:
        _tell(plan, observation, insight, insight_key, verdict, rules)
    listed = list(insight.get("case_numbers") or [])
    if not inside:
        return listed
    insight_id_ = insight["_id"]
    room = max(0, rules.max_listed_cases - len(listed))
    new_cases = list(dict.fromkeys(o.case_number for o in inside if o.case_number not in listed))
    total = int(insight.get("case_total") or len(listed)) + len(new_cases)
    latest = max(o.at for o in inside)
    check_at = verdict.subside_at or verdict.window_end
    state = {"count": verdict.count, "baseline": verdict.baseline,
             "threshold": verdict.threshold, "window_start": verdict.window_start,
             "window_end": verdict.window_end}  # fmt: skip
    update: Document = {"$inc": {"case_total": len(new_cases)}, "$max": {"peak": verdict.count},
                        "$set": dict(state)}  # fmt: skip
    if new_cases[:room]:
        update["$push"] = {"case_numbers": {"$each": new_cases[:room]}}
    grown = {**insight, **state, "case_numbers": [*listed, *new_cases[:room]], "case_total": total}
    published = insight.get("published_case_at")
    interval = timedelta(minutes=rules.update_interval_minutes)
    if published is None or latest - published >= interval:
        message = insight_message(
            "updated", grown, rules.window_hours, now, ("joined", str(total)),
            change=f"{len(new_cases)} case(s) joined ({total} in all)",
        )  # fmt: skip
        update["$set"] |= {"published_case_at": latest, "update_pending": False,
                           "check_at": check_at, **_outbox([message])}  # fmt: skip
        plan.flush.append(insight_id_)
    else:
        # Told within the interval: the watcher publishes what joined since, when due.
        update["$set"] |= {"update_pending": True,
                           "check_at": min(check_at, published + interval)}  # fmt: skip
    plan.joined[insight_id_] = update
    # A joining case's own triage document names its insights (Observed.insights): no
    # document per insight and case here, whatever the number of insights it joins.
    plan.cases_counted[insight_key.kind] += len(new_cases)
    plan.check_at.append(update["$set"]["check_at"])
    return [*listed, *new_cases]


def _outbox(messages: list[OutboundMessage]) -> Document:
    return add_to_outbox(messages)


def _tell(
    plan: Plan, observation: Observation, insight: Document, key: CaseKey, verdict: Verdict,
    rules: InsightsPolicy,
) -> None:  # fmt: skip
    observed = plan.observed.setdefault(observation.case_number, Observed())
    if insight["_id"] in observed.insights:
        return
    observed.insights.append(insight["_id"])
    observed.reasons.append(join_reason(insight, key, verdict.count, rules.window_hours))


def _case_document(insight: str, case_number: str) -> Document:
    return {"_id": f"{insight}|{case_number}", "insight_id": insight, "case_number": case_number}


def new_insight(
    new_id: str, key: CaseKey, verdict: Verdict, cases: list[str], first: datetime,
    samples: list[Any], detected_at: datetime, policy_version: str, listed: int,
) -> Document:  # fmt: skip
    """The document of a freshly detected insight (without its outbox)."""
    return {
        "_id": new_id, "key_id": key.id, "kind": key.kind, "category": key.category,
        "key": key.fields(), "status": "open", "acknowledged": None,
        "window_start": verdict.window_start, "window_end": verdict.window_end,
        "first_seen": first, "detected_at": detected_at, "count": verdict.count,
        "peak": verdict.count, "baseline": verdict.baseline, "threshold": verdict.threshold,
        "case_numbers": cases[:listed], "case_total": len(cases), "sample_texts": samples,
        "systemic": [], "policy_version": policy_version,
        "check_at": verdict.subside_at or verdict.window_end, "check_lease": None,
        "published_case_at": verdict.window_end, "update_pending": False,
    }  # fmt: skip
