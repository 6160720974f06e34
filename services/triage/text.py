"""Complaint text in one canonical form, shared by the lexicon rules and the model.

Canonical text is NFKC-folded (full-width punctuation and letters become ASCII), lower
case, Simplified script with Mainland vocabulary (OpenCC ``tw2sp``: 登入→登录, 軟體→软件,
冒煙→冒烟), so one lexicon and one model serve Traditional and Simplified writers; English
contractions are expanded ("wasn't" → "was not", so negation is one word) and every English
word is replaced by its lemma (simplemma: "charged", "charges", "charging" → "charge").

Policy terms go through the same function, so a term written in either script or any
inflection matches every form of it.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import opencc
import simplemma

_CONVERTER = opencc.OpenCC("tw2sp")
_WORD = re.compile(r"[a-z][a-z0-9']*")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})


# Words whose lemma would merge them with a common word of another meaning:
# "worst" → "bad", "canned" → "can", "media" → "medium", "ups" → "up".
_KEEP_AS_WRITTEN = frozenset({"worst", "worse", "best", "better", "canned", "media", "ups"})


@lru_cache(maxsize=65536)
def lemma(word: str) -> str:
    """The English lemma of a lower-case word; words with digits or quotes stay as they are."""
    if not word.isalpha() or word in _KEEP_AS_WRITTEN:
        return word
    return str(simplemma.lemmatize(word, lang="en")).lower()


def _english(word: str) -> str:
    """A lower-case word's canonical form: contractions expanded, then lemmas."""
    word = word.strip("'")
    if word.endswith("n't"):
        stem = {"can": "can", "won": "will", "ain": "be", "shan": "shall"}.get(word[:-3])
        return f"{stem or lemma(word[:-3])} not"
    return lemma(word)


@dataclass(frozen=True)
class Canonical:
    """Canonical text and, for each of its characters, where it came from in the original."""

    text: str
    # (start, end) in the original of the word or character each canonical char came from
    origin: tuple[tuple[int, int], ...]
    original: str

    def source(self, start: int, end: int) -> str:
        """The customer's own words behind canonical text[start:end]."""
        if start >= end or not self.origin:
            return ""
        return self.original[self.origin[start][0] : self.origin[end - 1][1]].strip()


def canonicalise(text: str) -> Canonical:
    """Canonical text with a map back to the original (see the module docstring)."""
    folded_text = unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()
    origin: list[tuple[int, int]]
    if len(folded_text) == len(text):  # the usual case: one character for one
        origin = [(index, index + 1) for index in range(len(text))]
    else:  # a ligature or a composed form changed length: fold character by character
        chars: list[str] = []
        origin = []
        for index, char in enumerate(text):
            folded = unicodedata.normalize("NFKC", char).translate(_QUOTES).lower()
            chars.extend(folded)
            origin.extend([(index, index + 1)] * len(folded))
        folded_text = "".join(chars)
    if _HAN.search(folded_text):
        converted = _CONVERTER.convert(folded_text)
        if len(converted) == len(folded_text):
            folded_text = converted
        else:  # a phrase changed length (網際網路 → 互联网): convert run by run
            folded_text, origin = _convert_runs(folded_text, origin)
    out: list[str] = []
    out_origin: list[tuple[int, int]] = []
    position = 0
    for match in _WORD.finditer(folded_text):
        start, end = match.span()
        out.append(folded_text[position:start])
        out_origin.extend(origin[position:start])
        form = _english(match.group(0))
        out.append(form)
        out_origin.extend([(origin[start][0], origin[end - 1][1])] * len(form))
        position = end
    out.append(folded_text[position:])
    out_origin.extend(origin[position:])
    return _squeeze("".join(out), out_origin, text)


def _convert_runs(folded: str, origin: list[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
    out: list[str] = []
    out_origin: list[tuple[int, int]] = []
    position = 0
    for match in _HAN_RUN.finditer(folded):
        start, end = match.span()
        out.append(folded[position:start])
        out_origin.extend(origin[position:start])
        converted = _CONVERTER.convert(match.group(0))
        out.append(converted)
        if len(converted) == end - start:
            out_origin.extend(origin[start:end])
        else:
            out_origin.extend([(origin[start][0], origin[end - 1][1])] * len(converted))
        position = end
    out.append(folded[position:])
    out_origin.extend(origin[position:])
    return "".join(out), out_origin


def _squeeze(text: str, origin: list[tuple[int, int]], original: str) -> Canonical:
    """Runs of spaces become one space; leading and trailing spaces go."""
    chars: list[str] = []
    kept: list[tuple[int, int]] = []
    for char, source in zip(text, origin, strict=True):
        if char in " \t\r\f\v":
            if not chars or chars[-1] == " ":
                continue
            chars.append(" ")
        else:
            chars.append(char)
        kept.append(source)
    while chars and chars[-1] == " ":
        chars.pop()
        kept.pop()
    return Canonical("".join(chars), tuple(kept), original)


def canonical(text: str) -> str:
    """The form every rule and the model read (see the module docstring)."""
    return canonicalise(text).text


# --- Chinese word segmentation (jieba), loaded once per process on first use ----------

_jieba_lock = threading.Lock()
_jieba_ready = False


def _jieba() -> object:
    global _jieba_ready  # noqa: PLW0603 - one dictionary per process, loaded on first use
    import jieba

    if not _jieba_ready:
        with _jieba_lock:
            if not _jieba_ready:
                jieba.setLogLevel(logging.WARNING)
                logging.getLogger("jieba").setLevel(logging.WARNING)
                jieba.initialize()
                _jieba_ready = True
    return jieba


def words(canonical_text: str) -> list[str]:
    """Words of canonical text: jieba's segmentation for Chinese, lemmas for English."""
    jieba = _jieba()
    out: list[str] = []
    for raw in jieba.lcut(canonical_text, HMM=False):  # type: ignore[attr-defined]
        token = raw.strip()
        if token and (token.isalnum() or _HAN.search(token)):
            out.append(token)
    return out
