"""An agent's reply against the house rules (services/policy/POLICY.md, "Replies"). Pure.

Every reply: none of the banned phrases. A first reply also thanks the customer,
apologises, names the next step and says when. The words and patterns are the policy's
(`[replies]`). Advisory: a reply that breaks a rule is flagged for the team lead, never
blocked.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from services.policy.model import RepliesPolicy


@dataclass(frozen=True)
class ReplyProblem:
    code: str  # a short fixed vocabulary (a metric label): banned_phrase, no_thanks, …
    text: str  # what a team lead reads


def normalised(text: str) -> str:
    """Case-folded, full-width forms narrowed (１０：００ is 10:00), curly quotes straight."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return folded.replace("\u2019", "'").replace("\u2018", "'")


def _mentions(text: str, words: list[str]) -> list[str]:
    return [word for word in words if normalised(word) in text]


def check_reply(text: str, first: bool, rules: RepliesPolicy) -> list[ReplyProblem]:
    """The rules ``text`` breaks, in a stable order; empty when it follows them all."""
    said = normalised(text)
    problems = [
        ReplyProblem("banned_phrase", f"uses the banned phrase “{phrase}”")
        for phrase in _mentions(said, rules.banned_phrases)
    ]
    if not first:
        return problems
    needed = rules.first_reply
    if not _mentions(said, needed.thanks):
        problems.append(ReplyProblem("no_thanks", "a first reply thanks the customer"))
    if not _mentions(said, needed.apology):
        problems.append(ReplyProblem("no_apology", "a first reply apologises"))
    if not _mentions(said, needed.next_step):
        problems.append(ReplyProblem("no_next_step", "a first reply names the next step"))
    says_when = _mentions(said, needed.time_words) or any(
        re.search(pattern, said) for pattern in needed.time_patterns
    )
    if not says_when:
        problems.append(ReplyProblem("no_time", "a first reply says when the next step happens"))
    return problems
