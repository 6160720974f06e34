"""What a complaint may share with other customers' complaints: its product, the courier
or city it names, its key phrases. Pure (the libraries' dictionaries load once).

Text is folded first: NFKC, Traditional to Simplified Chinese (OpenCC ``t2s``), lower
case, so that "馬克杯" and "马克杯", "ＭＵＧ" and "mug" are one word. Keywords are taken per
script: the Chinese runs by jieba's TF-IDF (its own IDF table, words of two characters or
more), the Latin runs as English lemmas (simplemma) ranked by how often the text uses
them, then by first use. Grammar words and the policy's ``ignore_terms`` never count. A
phrase meets only phrases of its own script: "cracked handle" groups with "handle
cracked", "把手裂了" with "把手裂開".
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from services.triage.insights.redact import redact_names

# Kinds of shared cause, most specific first: when groups of one complaint overlap, the
# more specific one names the cause (see detector.suppressed_by).
KINDS = ("product", "courier", "city", "phrase")

_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_LATIN_WORD = re.compile(r"[a-z][a-z'-]*[a-z]|[a-z]")
# English grammar words (closed classes: articles, pronouns, prepositions, auxiliaries,
# conjunctions, common adverbs). Every English text has them; none names a cause.
# Business words that are too common to name a cause are policy: insights.ignore_terms.
_ENGLISH_GRAMMAR = frozenset(
    """
a about above after again against all am an and any are aren't as at be because been
before being below between both but by can can't cannot could couldn't did didn't do
does doesn't doing don't down during each even ever every few for from further had
hadn't has hasn't have haven't having he her here hers herself him himself his how i i'm
i've if in into is isn't it it's its itself let's me more most much must my myself never
no nor not now of off on once only or other ought our ours ourselves out over own same
she should shouldn't so some such than that that's the their theirs them themselves then
there there's these they they're this those through to too under until up upon us very
was via wasn't we we're were weren't what when where which while who whom why will with
won't would wouldn't yet you you're your yours yourself yourselves
""".split()  # noqa: SIM905 - a word list reads best as words
) | frozenset(
    # Numbers, order and calendar words (also closed classes): when, not what.
    """
one two three four five six seven eight nine ten first second third fourth fifth next last
january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday
""".split()  # noqa: SIM905
)
# jieba's part-of-speech tags of words that never name a cause: numerals and measure
# words (两次, 一笔), time words (上周, 现在), adverbs (一直), pronouns, prepositions,
# conjunctions, particles, interjections. Names are not among them: jieba tags 马克杯 as
# a person's name; personal names are removed from the text before (redact.py).
_CHINESE_GRAMMAR_TAGS = frozenset(
    {"m", "mq", "q", "t", "tg", "d", "r", "p", "c", "u", "y", "e", "o"}
)

_load_lock = threading.Lock()
_converter: Any = None
_tfidf: Any = None
_tags: dict[str, str] = {}


def warm_up() -> None:
    """Load OpenCC's and jieba's dictionaries now (about a second) rather than on the
    first complaint."""
    _tools()
    keywords("暖機 warm up", 1, frozenset())


def _tools() -> tuple[Any, Any]:
    global _converter, _tfidf, _tags  # noqa: PLW0603 - the libraries' dictionaries, loaded once
    if _tfidf is None:
        with _load_lock:
            if _tfidf is None:
                import jieba
                import jieba.analyse
                import jieba.posseg
                import opencc

                jieba.setLogLevel(logging.WARNING)
                _converter = opencc.OpenCC("t2s")
                jieba.posseg.dt.initialize()
                _tags = jieba.posseg.dt.word_tag_tab
                _tfidf = jieba.analyse.TFIDF()
    return _converter, _tfidf


def fold(text: str) -> str:
    """One spelling per word: NFKC, Simplified Chinese, lower case."""
    converter, _ = _tools()
    return str(converter.convert(unicodedata.normalize("NFKC", text))).lower()


@lru_cache(maxsize=50_000)
def _lemma(word: str) -> str:
    import simplemma

    return str(simplemma.lemmatize(word, lang="en")).lower()


def chinese_keywords(folded: str, limit: int, ignore: frozenset[str]) -> list[str]:
    runs = _CJK_RUN.findall(folded)
    if not runs or limit <= 0:
        return []
    _, tfidf = _tools()
    found: list[str] = []
    # A few more than needed: some are ignored. jieba keeps words of 2+ characters.
    for word in tfidf.extract_tags("，".join(runs), topK=limit + 10):
        grammar = _tags.get(word) in _CHINESE_GRAMMAR_TAGS
        if word not in ignore and not grammar and _CJK_RUN.fullmatch(word):
            found.append(word)
        if len(found) == limit:
            break
    return found


def english_keywords(folded: str, limit: int, ignore: frozenset[str]) -> list[str]:
    if limit <= 0:
        return []
    lemmas = [
        _lemma(word.strip("'-"))
        for word in _LATIN_WORD.findall(folded)
        if len(word) > 2 and word not in _ENGLISH_GRAMMAR
    ]
    counted = Counter(
        lemma for lemma in lemmas if len(lemma) > 2 and lemma not in ignore
        and lemma not in _ENGLISH_GRAMMAR
    )  # fmt: skip
    first = {lemma: position for position, lemma in reversed(list(enumerate(lemmas)))}
    ranked = sorted(counted, key=lambda lemma: (-counted[lemma], first[lemma]))
    return ranked[:limit]


def keywords(text: str, limit: int, ignore: frozenset[str], folded: str | None = None) -> list[str]:
    """Up to ``limit`` key phrases per script of ``text`` (folded), Chinese first."""
    folded = fold(text) if folded is None else folded
    return [
        *chinese_keywords(folded, limit, ignore),
        *english_keywords(folded, limit, ignore),
    ]


def folded_terms(terms: Iterable[str]) -> frozenset[str]:
    # Folding is an OpenCC conversion per term: once per word list, not per complaint.
    return _folded(tuple(terms))


@lru_cache(maxsize=16)
def _folded(terms: tuple[str, ...]) -> frozenset[str]:
    return frozenset(fold(term) for term in terms)


@lru_cache(maxsize=16)
def _gazetteer(
    couriers: tuple[tuple[str, tuple[str, ...]], ...],
    cities: tuple[tuple[str, tuple[str, ...]], ...],
) -> tuple[re.Pattern[str], dict[str, tuple[str, str]]]:
    """One pattern for every courier and city alias (longest first: 新竹物流 is read as
    the courier before 新竹 can be the city), and alias -> (kind, canonical name).
    One pass over the text instead of one per list and per removal."""
    canonical: dict[str, tuple[str, str]] = {}
    for kind, entries in (("courier", couriers), ("city", cities)):
        for name, aliases in entries:
            for alias in (name, *aliases):
                canonical.setdefault(fold(alias), (kind, name))
    longest_first = sorted(canonical, key=len, reverse=True)
    chinese = "|".join(re.escape(alias) for alias in longest_first if not alias.isascii())
    latin = "|".join(re.escape(alias) for alias in longest_first if alias.isascii())
    # Latin aliases are whole words ("ups" is not in "cups"); Chinese ones are not. The
    # word boundaries are written once around the group, not per alias (5x faster).
    parts = [*([f"(?:{chinese})"] if chinese else []),
             *([rf"(?<![a-z0-9])(?:{latin})(?![a-z0-9])"] if latin else [])]  # fmt: skip
    return re.compile("|".join(parts) or r"(?!x)x"), canonical


def _entries(named: Mapping[str, Sequence[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(sorted((name, tuple(aliases)) for name, aliases in named.items()))


@dataclass(frozen=True)
class TextFeatures:
    couriers: list[str]
    cities: list[str]
    phrases: list[str]


def text_features(
    text: str,
    couriers: Mapping[str, Sequence[str]],
    cities: Mapping[str, Sequence[str]],
    limit: int,
    ignore: frozenset[str],
) -> TextFeatures:
    """The couriers and cities ``text`` names (canonical names, in order of mention) and
    its key phrases. Couriers are read first and their words are not read again for
    cities ("新竹物流" is a courier, not the city 新竹); neither is read again for phrases
    (they have keys of their own)."""
    folded = fold(redact_names(text, marked=False))
    pattern, names = _gazetteer(_entries(couriers), _entries(cities))
    found: dict[str, list[str]] = {"courier": [], "city": []}
    rest: list[str] = []
    position = 0
    for match in pattern.finditer(folded):
        kind, name = names[match.group(0)]
        found[kind].append(name)
        rest.extend((folded[position : match.start()], "，"))
        position = match.end()
    rest.append(folded[position:])
    return TextFeatures(
        list(dict.fromkeys(found["courier"])),
        list(dict.fromkeys(found["city"])),
        keywords(text, limit, ignore, folded="".join(rest)),
    )


def normal_sku(sku: str) -> str:
    return unicodedata.normalize("NFKC", sku).strip().upper()


def skus_of(items: Iterable[Mapping[str, Any]]) -> list[str]:
    """The SKUs an app form names, normalised, in order, once each."""
    return list(dict.fromkeys(
        normal_sku(str(item["sku"])) for item in items
        if isinstance(item, Mapping) and item.get("sku") and normal_sku(str(item["sku"]))
    ))  # fmt: skip


def item_terms(
    items: Iterable[Mapping[str, Any]], limit: int, ignore: frozenset[str]
) -> list[tuple[str, str]]:
    """(term, sku): the key words of each named product, to recognise it in texts
    that give no SKU."""
    found: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, Mapping) or not item.get("sku") or not item.get("name"):
            continue
        sku = normal_sku(str(item["sku"]))
        found.extend((term, sku) for term in keywords(str(item["name"]), limit, ignore))
    return list(dict.fromkeys(found))


def text_terms(skus: Sequence[str], phrases: Iterable[str]) -> list[tuple[str, str]]:
    """(term, sku): the key words of an app form's own text, when it names exactly one
    product. Product names come in one language (陶瓷馬克杯), customers write in theirs
    ("my mug cracked"): their words teach the product's other names, so that a mail in
    either language names it. A word also used for other products names none."""
    if len(skus) != 1:
        return []
    return [(term, skus[0]) for term in dict.fromkeys(phrases)]


def infer_products(
    words: Iterable[str], skus_by_term: Mapping[str, Sequence[str]], limit: int
) -> list[str]:
    """Products named in a text without an SKU: each word that app forms have used for
    exactly one product names that product (a word shared by products names none)."""
    found: list[str] = []
    for word in words:
        skus = skus_by_term.get(word) or ()
        if len(skus) == 1 and skus[0] not in found:
            found.append(skus[0])
    return found[:limit]


@dataclass(frozen=True)
class CaseKey:
    """One shared cause a complaint may have: its category and one kind of value."""

    kind: str
    category: str
    value: str

    @property
    def id(self) -> str:
        return f"{self.kind}|{self.category}|{self.value}"

    @classmethod
    def from_id(cls, key_id: str) -> CaseKey:
        kind, category, value = key_id.split("|", 2)
        return cls(kind, category, value)

    def fields(self) -> dict[str, str]:
        """The event's ``key``: the category, and sku / courier / city / phrase."""
        name = "sku" if self.kind == "product" else self.kind
        return {"category": self.category, name: self.value}

    def describe(self) -> str:
        what = {"product": f"product {self.value}", "courier": f"courier {self.value}",
                "city": f"city {self.value}", "phrase": f"the phrase “{self.value}”"}  # fmt: skip
        return f"{what.get(self.kind, self.value)} ({self.category})"


def case_keys(
    category: str,
    products: Sequence[str],
    couriers: Sequence[str],
    cities: Sequence[str],
    phrases: Sequence[str],
) -> list[CaseKey]:
    """Every key of one complaint, most specific kind first, each once."""
    keys = [
        *(CaseKey("product", category, sku) for sku in products),
        *(CaseKey("courier", category, name) for name in couriers),
        *(CaseKey("city", category, name) for name in cities),
        *(CaseKey("phrase", category, phrase) for phrase in phrases),
    ]
    return list(dict.fromkeys(keys))
