"""Finding policy terms in complaint text, ignoring negated mentions ("沒有受傷", "not injured")."""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.policy.model import Negation

_CLAUSE_BREAK = re.compile(r"[，。！？；,.!?;\n]")


@dataclass(frozen=True)
class Mention:
    term: str
    start: int
    negated: bool


def _is_ascii_term(term: str) -> bool:
    return term.isascii()


def _pattern(term: str) -> re.Pattern[str]:
    escaped = re.escape(term.lower())
    if _is_ascii_term(term):
        return re.compile(rf"(?<![a-z0-9]){escaped}(?![a-z0-9])")
    return re.compile(escaped)


def _negated(text: str, start: int, negation: Negation) -> bool:
    clause_start = 0
    for match in _CLAUSE_BREAK.finditer(text, 0, start):
        clause_start = match.end()
    before = text[clause_start:start]
    if not before:
        return False
    words = before.split()
    # English: any negation among the last `window` words of the clause.
    recent_words = {word.strip("'\"()").lower() for word in words[-negation.window :]}
    # Chinese: a negation ending at most `window` characters before the term.
    for term in negation.terms:
        if term.isascii():
            if term in recent_words:
                return True
        else:
            position = before.rfind(term)
            if position != -1 and len(before) - (position + len(term)) <= negation.window:
                return True
    return False


def find_mentions(text: str, terms: list[str], negation: Negation) -> list[Mention]:
    """Every place a term occurs; a term inside a longer matched term counts once."""
    lowered = text.lower()
    found: list[Mention] = []
    covered: list[tuple[int, int]] = []
    for term in sorted(set(terms), key=len, reverse=True):
        for match in _pattern(term).finditer(lowered):
            span = (match.start(), match.end())
            if any(start <= span[0] and span[1] <= end for start, end in covered):
                continue
            covered.append(span)
            found.append(Mention(term, span[0], _negated(lowered, span[0], negation)))
    return sorted(found, key=lambda mention: mention.start)


def affirmed_terms(text: str, terms: list[str], negation: Negation) -> list[str]:
    return list(
        dict.fromkeys(m.term for m in find_mentions(text, terms, negation) if not m.negated)
    )
