"""Language of a complaint: zh-Hant, zh-Hans or en (mixed text is common).

Chinese or English is lingua's call (a maintained detector that handles short and mixed
text), restricted to those two languages, which keeps it fast and its answer in our set.
Traditional or Simplified is OpenCC's: characters that Traditional→Simplified conversion
changes are Traditional-only, and those that Simplified→Traditional conversion changes are
Simplified-only; the script with more of them wins.
"""

from __future__ import annotations

import re
from functools import lru_cache

import opencc
from lingua import Language, LanguageDetector, LanguageDetectorBuilder

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")


@lru_cache(maxsize=1)
def _detector() -> LanguageDetector:
    return LanguageDetectorBuilder.from_languages(Language.CHINESE, Language.ENGLISH).build()


@lru_cache(maxsize=1)
def _converters() -> tuple[opencc.OpenCC, opencc.OpenCC]:
    return opencc.OpenCC("t2s"), opencc.OpenCC("s2t")


def chinese_script(text: str, default_chinese: str = "zh-Hant") -> str:
    """zh-Hant or zh-Hans, by the characters only one script has."""
    han = "".join(_HAN.findall(text))
    to_simplified, to_traditional = _converters()
    simplified, traditional = to_simplified.convert(han), to_traditional.convert(han)
    traditional_only = sum(a != b for a, b in zip(han, simplified, strict=False))
    simplified_only = sum(a != b for a, b in zip(han, traditional, strict=False))
    if simplified_only > traditional_only:
        return "zh-Hans"
    if traditional_only > simplified_only:
        return "zh-Hant"
    return default_chinese


def detect_language(text: str, default_chinese: str = "zh-Hant") -> str:
    if not _HAN.search(text):
        return "en" if _LATIN.search(text) else default_chinese
    if _detector().detect_language_of(text) == Language.ENGLISH:
        return "en"
    return chinese_script(text, default_chinese)


def language_from_locale(locale: str | None) -> str | None:
    if not locale:
        return None
    lowered = locale.lower().replace("_", "-")
    if lowered.startswith("en"):
        return "en"
    if lowered in {"zh-cn", "zh-sg", "zh-hans"} or lowered.startswith("zh-hans"):
        return "zh-Hans"
    if lowered.startswith("zh"):
        return "zh-Hant"
    return None
