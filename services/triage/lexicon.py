"""Finding policy terms in canonical complaint text, with clause-scoped negation.

Matching is by lookup, not by one regular expression per term, so a lexicon of a few
hundred terms costs well under a millisecond per complaint:
- Chinese terms: substring search (Chinese has no spaces to anchor on);
- English terms: word n-grams of the text looked up in a dictionary ("charge twice");
- terms with a gap ("charge~after"): a small regular expression each, few of them.

A negation ("沒有", "not", "no one") negates a term when it is in the same clause
(clauses end at punctuation and at words like "but"/"但是"/"不過"), no scope break
("and", "then") stands between them, and at most a few words (English) or characters
(Chinese) separate them: "I was not hurt, but it sparked" negates "hurt" only;
"it did not switch off and caught fire" negates nothing.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.policy.model import Negation
from services.triage.text import Canonical, canonical, canonicalise

_ASCII_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Clause ends: punctuation, a dash between spaces, and a space between two Chinese
# characters (social posts often use spaces instead of commas: "會不會送貨 受夠了").
_PUNCTUATION = re.compile(
    r"[,.;:!?。、;\n()\[\]{}…~\"]|\s-\s|(?<=[\u3400-\u9fff])\s+(?=[\u3400-\u9fff])"
)
_GAP_ASCII = r"[^,.;:!?。\n]{1,30}?"
_GAP_CJK = r"[^,.;:!?。\n]{0,8}?"
MAX_NGRAM = 5


def _is_ascii(term: str) -> bool:
    return term.isascii()


def _ascii_key(term: str) -> tuple[str, ...]:
    return tuple(_ASCII_WORD.findall(term))


@dataclass(frozen=True)
class Hit:
    term: str  # as the policy writes it
    weight: float
    start: int
    end: int
    negated: bool = False


@dataclass
class PreparedText:
    """Canonical text with its ASCII words and clause/negation landmarks, computed once."""

    text: str
    source: Canonical
    word_spans: list[tuple[int, int]]
    word_keys: list[str]
    clause_starts: list[int] = field(default_factory=list)
    cues: list[tuple[int, int, bool]] = field(default_factory=list)  # start, end, ascii
    scope_breaks: list[int] = field(default_factory=list)
    # Hits of every term set, found in one pass by a TermIndex: id(TermSet) -> hits.
    found: dict[int, list[Hit]] = field(default_factory=dict)


class TermSet:
    """One list of weighted terms, compiled for lookup."""

    def __init__(self, weighted: Iterable[tuple[str, float]]) -> None:
        self.cjk: list[tuple[str, str, float]] = []  # (canonical, as written, weight)
        self.ascii: dict[tuple[str, ...], tuple[str, float]] = {}
        # (pattern, the literal parts every match contains, as written, weight)
        self.gapped: list[tuple[re.Pattern[str], tuple[str, ...], str, float]] = []
        for written, weight in weighted:
            if "~" in written:
                parts = [canonical(part) for part in written.split("~")]
                literal = tuple(part for part in parts if part)
                self.gapped.append((_gap_pattern(parts), literal, written, weight))
                continue
            form = canonical(written)
            if not form:
                continue
            if _is_ascii(form) and _ascii_key(form):
                key = _ascii_key(form)[:MAX_NGRAM]
                if weight > self.ascii.get(key, ("", 0.0))[1]:
                    self.ascii[key] = (written, weight)
            else:
                self.cjk.append((form, written, weight))

    def hits(self, prepared: PreparedText) -> list[Hit]:
        """Every term found (a term inside a longer one found before counts once)."""
        cached = prepared.found.get(id(self))
        if cached is None:
            TermIndex([self]).scan(prepared)
            cached = prepared.found[id(self)]
        return cached


class TermIndex:
    """Many term sets searched in one pass over the text, each with TermSet.hits' result."""

    def __init__(self, sets: list[TermSet]) -> None:
        self.sets = sets
        forms: dict[str, list[tuple[int, str, float]]] = {}
        self.ascii: dict[tuple[str, ...], list[tuple[int, str, float]]] = {}
        for number, terms in enumerate(sets):
            for form, written, weight in terms.cjk:
                forms.setdefault(form, []).append((number, written, weight))
            for key, (written, weight) in terms.ascii.items():
                self.ascii.setdefault(key, []).append((number, written, weight))
        # Chinese terms by first character, longer first, so "退款还没" claims its span
        # before "退款" and one pass over the text finds them all.
        self.by_first: dict[str, list[tuple[str, list[tuple[int, str, float]]]]] = {}
        for form in sorted(forms, key=len, reverse=True):
            self.by_first.setdefault(form[0], []).append((form, forms[form]))
        self.max_words = max((len(key) for key in self.ascii), default=0)

    def scan(self, prepared: PreparedText) -> None:
        """Find every set's terms; TermSet.hits then answers from ``prepared.found``."""
        found: list[list[Hit]] = [[] for _ in self.sets]
        self._scan_chinese(prepared.text, found)
        self._scan_words(prepared, found)
        for number, terms in enumerate(self.sets):
            hits = found[number]
            for pattern, parts, written, weight in terms.gapped:
                # Most texts lack a part: a substring test is far cheaper than the search.
                if all(part in prepared.text for part in parts):
                    hits.extend(
                        Hit(written, weight, m.start(), m.end())
                        for m in pattern.finditer(prepared.text)
                    )
            hits.sort(key=lambda hit: hit.start)
            prepared.found[id(terms)] = hits

    def _scan_chinese(self, text: str, found: list[list[Hit]]) -> None:
        covered = [0] * len(self.sets)
        for start, char in enumerate(text):
            candidates = self.by_first.get(char)
            if candidates is None:
                continue
            done: set[int] = set()  # sets whose longest term here is already decided
            for form, entries in candidates:
                if not text.startswith(form, start):
                    continue
                end = start + len(form)
                for number, written, weight in entries:
                    if number not in done:
                        done.add(number)
                        if end > covered[number]:
                            found[number].append(Hit(written, weight, start, end))
                            covered[number] = end

    def _scan_words(self, prepared: PreparedText, found: list[list[Hit]]) -> None:
        keys, spans = prepared.word_keys, prepared.word_spans
        for index in range(len(keys)):
            done: set[int] = set()
            for size in range(min(self.max_words, len(keys) - index), 0, -1):
                entries = self.ascii.get(tuple(keys[index : index + size]))
                for number, written, weight in entries or ():
                    if number not in done:
                        done.add(number)
                        end = spans[index + size - 1][1]
                        found[number].append(Hit(written, weight, spans[index][0], end))


def _gap_pattern(parts: list[str]) -> re.Pattern[str]:
    """The pattern of a term with gaps ("charge~after"), from its canonical parts."""
    pieces: list[str] = []
    for index, part in enumerate(parts):
        escaped = re.escape(part)
        if _is_ascii(part):
            escaped = rf"(?<![a-z0-9]){escaped}(?![a-z0-9])"
        if index:
            both_ascii = _is_ascii(parts[index - 1]) and _is_ascii(part)
            pieces.append(_GAP_ASCII if both_ascii else _GAP_CJK)
        pieces.append(escaped)
    return re.compile("".join(pieces))


class NegationScope:
    """Where a negation cue negates a term (see the module docstring)."""

    def __init__(self, negation: Negation) -> None:
        self.negation = negation
        self.cues = TermSet((term, 1.0) for term in negation.terms)
        self.exempt = TermSet((term, 1.0) for term in negation.not_negating)
        self.breaks = TermSet((term, 1.0) for term in negation.clause_breaks)
        self.scope_breaks = TermSet((term, 1.0) for term in negation.scope_breaks)
        self.term_sets = [self.cues, self.exempt, self.breaks, self.scope_breaks]

    def prepare(self, text: str, index: TermIndex | None = None) -> PreparedText:
        """Canonical text with its landmarks; ``index`` finds all its sets' terms at once."""
        source = canonicalise(text)
        form = source.text
        spans = [(m.start(), m.end()) for m in _ASCII_WORD.finditer(form)]
        prepared = PreparedText(form, source, spans, [form[s:e] for s, e in spans])
        if index is not None:
            index.scan(prepared)
        starts = {0} | {m.end() for m in _PUNCTUATION.finditer(form)}
        starts |= {hit.end for hit in self.breaks.hits(prepared)}
        prepared.clause_starts = sorted(starts)
        exempt = [(hit.start, hit.end) for hit in self.exempt.hits(prepared)]
        prepared.cues = [
            (hit.start, hit.end, _is_ascii(form[hit.start : hit.end]))
            for hit in self.cues.hits(prepared)
            if not any(s <= hit.start < e for s, e in exempt)
        ]
        prepared.scope_breaks = sorted(hit.start for hit in self.scope_breaks.hits(prepared))
        return prepared

    def negated(self, prepared: PreparedText, start: int) -> bool:
        clause_start = prepared.clause_starts[
            bisect.bisect_right(prepared.clause_starts, start) - 1
        ]
        for cue_start, cue_end, ascii_cue in reversed(prepared.cues):
            if cue_end > start:
                continue
            if cue_start < clause_start:
                return False
            between = prepared.text[cue_end:start]
            if any(cue_end <= b < start for b in prepared.scope_breaks):
                return False
            if ascii_cue:
                return len(_ASCII_WORD.findall(between)) <= self.negation.english_window
            return len(between.replace(" ", "")) <= self.negation.chinese_window
        return False

    def mark(self, prepared: PreparedText, hits: list[Hit]) -> list[Hit]:
        return [
            Hit(hit.term, hit.weight, hit.start, hit.end, self.negated(prepared, hit.start))
            for hit in hits
        ]
