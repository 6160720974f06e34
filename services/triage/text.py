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
from functools import lru_cache

import opencc
import simplemma

_CONVERTER = opencc.OpenCC("tw2sp")
_WORD = re.compile(r"[a-z][a-z0-9']*")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_CONTRACTIONS = (
    (re.compile(r"\b(can|won|ain|shan)'t\b"), {"can": "can not", "won": "will not",
                                               "ain": "is not", "shan": "shall not"}),
)  # fmt: skip
_NT = re.compile(r"([a-z]+)n't\b")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})
_SPACES = re.compile(r"[ \t\r\f\v]+")


# Words whose lemma would merge them with a common word of another meaning:
# "worst" → "bad", "canned" → "can", "media" → "medium", "ups" → "up".
_KEEP_AS_WRITTEN = frozenset({"worst", "worse", "best", "better", "canned", "media", "ups"})


@lru_cache(maxsize=65536)
def lemma(word: str) -> str:
    """The English lemma of a lower-case word; words with digits or quotes stay as they are."""
    if not word.isalpha() or word in _KEEP_AS_WRITTEN:
        return word
    return str(simplemma.lemmatize(word, lang="en")).lower()


def _expand_contractions(text: str) -> str:
    pattern, table = _CONTRACTIONS[0]
    text = pattern.sub(lambda m: table[m.group(1)], text)
    return _NT.sub(lambda m: f"{m.group(1)} not", text)


def canonical(text: str) -> str:
    """The form every rule and the model read (see the module docstring)."""
    folded = unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()
    if _HAN.search(folded):
        folded = _CONVERTER.convert(folded)
    folded = _expand_contractions(folded)
    folded = _WORD.sub(lambda m: lemma(m.group(0).strip("'")), folded)
    return _SPACES.sub(" ", folded).strip()


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
    for token in jieba.lcut(canonical_text, HMM=False):  # type: ignore[attr-defined]
        token = token.strip()
        if token and (token.isalnum() or _HAN.search(token)):
            out.append(token)
    return out
