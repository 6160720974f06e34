"""Language of a complaint: zh-Hant, zh-Hans or en (mixed text is common)."""

from __future__ import annotations

# Pairs of (traditional, simplified) forms that are frequent in complaints.
_PAIRS = (
    "們们這这個个為为來来說说對对時时會会過过還还沒没請请點点號号貨货單单錢钱訂订購购費费"
    "傷伤發发問问題题應应該该務务處处質质壞坏換换寄寄給给讓让點点嗎吗麼么東东兩两"
    "幫帮電电話话買买賣卖後后裡里雖虽們们經经無无開开關关聽听見见實实產产標标護护醫医"
    "險险據据態态導导專专業业歡欢謝谢聯联繫系網网絡络張张帳账戶户錯错誤误辦办響响亂乱"
)
TRADITIONAL = frozenset(_PAIRS[0::2]) - frozenset(_PAIRS[1::2])
SIMPLIFIED = frozenset(_PAIRS[1::2]) - frozenset(_PAIRS[0::2])


def _is_han(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf"


def detect_language(text: str, default_chinese: str = "zh-Hant") -> str:
    han = sum(1 for char in text if _is_han(char))
    latin = sum(1 for char in text if char.isascii() and char.isalpha())
    # One Han character carries about as much as a short English word.
    if han == 0 or han * 3 < latin:
        return "en" if latin else default_chinese
    traditional = sum(1 for char in text if char in TRADITIONAL)
    simplified = sum(1 for char in text if char in SIMPLIFIED)
    if simplified > traditional:
        return "zh-Hans"
    if traditional > simplified:
        return "zh-Hant"
    return default_chinese


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
