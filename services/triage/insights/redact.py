"""Sample texts for an insight, without personal data. Pure.

An insight goes to teams outside customer service (quality, logistics, engineering):
they need the words of the complaint, not who wrote it. On top of the log scrubbing
(e-mail addresses, phone numbers) this removes names where a text introduces or
addresses someone, and long digit runs (order, card and account numbers).
"""

from __future__ import annotations

import re

from services.runtime.logs import scrub

_CJK = r"[\u4e00-\u9fff]"
# (pattern, replacement): introductions keep their words, the name goes.
_NAMES = (
    # 我是王小明 / 我叫王小明 / 本人王小明 / 敝姓王
    (re.compile(rf"(我是|我叫|本人|敝姓|姓名[:：]?)\s*{_CJK}{{1,4}}"), r"\1<name>"),
    # 王先生 / 陳小姐 / 林太太 / 李女士
    (re.compile(rf"{_CJK}{{1,2}}(先生|小姐|太太|女士)"), "<name>"),
    # my name is Jane Doe / this is Jane / Mr. Smith
    (
        re.compile(r"\b([Mm]y name is|[Tt]his is|I am|I'm)\s+[A-Z][a-z]+(\s+[A-Z][a-z]+)?"),
        r"\1 <name>",
    ),
    (re.compile(r"\b(Mr|Mrs|Ms|Miss|Dr)\.?\s+[A-Z][a-z]+(\s+[A-Z][a-z]+)?"), "<name>"),
)
_LONG_NUMBER = re.compile(r"\d[\d -]{5,}\d")
_SPACES = re.compile(r"\s+")


def redact_names(text: str, marked: bool = True) -> str:
    """``text`` without the names it introduces or addresses; ``marked`` leaves a
    ``<name>`` in their place, else a comma (key phrases: names name no cause)."""
    for pattern, replacement in _NAMES:
        text = pattern.sub(replacement if marked else "，", text)
    return text


def redact(text: str) -> str:
    return _LONG_NUMBER.sub("<number>", redact_names(scrub(text)))


def sample_text(subject: str, text: str, limit: int) -> str:
    """The complaint in one line, redacted, at most ``limit`` characters."""
    body = text if subject and text.startswith(subject) else f"{subject} {text}"
    line = _SPACES.sub(" ", redact(body)).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"
