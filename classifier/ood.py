"""Out-of-distribution gate: flags texts the model was not made for (not Chinese, too short,
junk, mostly unknown words), so that they are never dispatched without an agent's review.

Flags (a text may carry several; `OutOfDistribution.flags` lists them in this order):

    empty            no letter or digit at all (whitespace, emoji, punctuation)
    no_chinese       not one Chinese character (English, pinyin, digits, a URL, ...)
    digits_only      the letters and digits are digits only (a phone or an order number)
    url_only         nothing but URLs
    little_chinese   Chinese characters are under `MIN_CJK_SHARE` of the letters (digits aside)
    too_short        fewer than `MIN_CJK_CHARS` Chinese characters
    repeated         one character or one short unit repeated (啊啊啊啊啊, 测试测试测试测试)
    keyboard_mashing a run of Latin letters from one keyboard row or without a vowel (asdfghjk)
    unknown_words    under `MIN_KNOWN_SHARE` of the words are in the model's vocabulary

Cut-offs, measured by `python -m benchmarks.ood_gate` (real sets: the TipDM 2020 files of
../shared/data, 33,807 texts: 6,375 labelled messages, 7,722 titles, 2,798 messages with replies
and their titles, 7,057 unlabelled messages and their titles; known shares judged by the
vocabulary of the 60,000-row demo corpus and, 2-fold, by that of the real labelled texts):

    MIN_CJK_CHARS = 6      titles with fewer Chinese characters: 0.18 % (fewer than 7: 0.27 %,
                           8: 0.59 %, 9: 1.31 %); every real text and title: 0.09 %
    MIN_CJK_SHARE = 0.5    real texts under it: 0.00 % (1 of 33,807; under 0.6: 0.01 %)
    MIN_DISTINCT_SHARE 0.4 real texts under it: 0.00 % (lowest 0.45); junk repeats 0.05-0.33
    MIN_KNOWN_SHARE = 0.2  real texts under it: 0.15 % (demo vocabulary), 0.03 % (real one);
                           under 0.3 it would be 0.64 % / 0.05 %, under 0.4 1.40 % / 0.08 %.
                           Random Chinese characters: median 0.06; Japanese 0.05-0.11

Flagged, any flag: 0.20 % of all real texts (titles 0.54 %) with the demo vocabulary, 0.10 %
(titles 0.30 %) with the real one. Caught: 100 % of English appeals and sentences, greetings,
emoji, whitespace, digits, URLs, repeated characters and words, keyboard mashing and Japanese;
97 % of random Chinese characters. Mixed Chinese and English appeals: none flagged. The gate
costs 0.16-0.33 ms per real message (idle / busy machine; the model's tokens are reused).
"""

from __future__ import annotations

import re
from collections.abc import Container, Sequence
from dataclasses import dataclass

__all__ = [
    "FLAGS",
    "MIN_CJK_CHARS",
    "MIN_CJK_SHARE",
    "MIN_KNOWN_SHARE",
    "OutOfDistribution",
    "TextShape",
    "assess",
    "intake_refusal",
    "measure",
]

FLAGS = (
    "empty",
    "no_chinese",
    "digits_only",
    "url_only",
    "little_chinese",
    "too_short",
    "repeated",
    "keyboard_mashing",
    "unknown_words",
)

MIN_CJK_CHARS = 6
MIN_CJK_SHARE = 0.5
MIN_KNOWN_SHARE = 0.2
# Known share is judged only with this many words: the share of two words says little.
MIN_WORDS_FOR_KNOWN = 4
# Repetition: among the first `REPEAT_WINDOW` letters and characters (digits left out), at least
# `REPEAT_MIN_LETTERS` of them, a share of distinct ones under `MIN_DISTINCT_SHARE`.
REPEAT_WINDOW = 20
REPEAT_MIN_LETTERS = 4
MIN_DISTINCT_SHARE = 0.4
MASH_MIN_LETTERS = 6

_CJK_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_CJK = re.compile(f"[{_CJK_CHARS}]")
_CJK_RUN = re.compile(f"[{_CJK_CHARS}]+")
_ALNUM_RUN = re.compile(r"[^\W_]+")
_DIGIT_RUN = re.compile(r"\d+")
_URL = re.compile(
    r"(?:https?://|www\.)[^\s\u3000-\u303f\uff00-\uffef\u4e00-\u9fff]*"
    r"|[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.(?:com|cn|net|org|gov|edu|info|io)\b[^\s\u4e00-\u9fff]*",
    re.IGNORECASE,
)
_LATIN_RUN = re.compile(r"[a-zA-Z]+")
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_VOWELS = frozenset("aeiouy")


def intake_refusal(text: str | None) -> str | None:
    """Why intake must refuse `text` as an appeal, or None to accept it: "blank" (nothing but
    whitespace) or "no_chinese" (not one Chinese character: English, emoji, digits, a URL).

    The one rule of every intake channel. Short Chinese text is accepted (a phone transcript
    may be "路灯坏了"); the gate flags it and routing sends it to review.
    """
    if text is None or not text.strip():
        return "blank"
    if _CJK.search(text) is None:
        return "no_chinese"
    return None


@dataclass(frozen=True)
class TextShape:
    """The surface features of one text that the gate judges (no model needed)."""

    alnum: int  # letters and digits, Chinese characters included
    letters: int  # letters, Chinese characters included (no digits)
    cjk: int
    digits_only: bool  # there are letters or digits, and they are all digits
    url_only: bool
    head_letters: int  # letters and characters (no digits) among the first `REPEAT_WINDOW`
    distinct_share: float  # distinct ones among them (1.0 when there are none)
    mash_run: int  # longest Latin run typed on one keyboard row or without a vowel

    @property
    def cjk_share(self) -> float:
        """Chinese characters among the letters: amounts, dates and numbers do not count."""
        return self.cjk / self.letters if self.letters else 0.0


def _mash_length(run: str) -> int:
    lower = run.lower()
    if len(lower) < MASH_MIN_LETTERS:
        return 0
    if _VOWELS.isdisjoint(lower) or any(set(lower) <= set(row) for row in _KEYBOARD_ROWS):
        return len(lower)
    return 0


def measure(text: str) -> TextShape:
    """Surface features of `text` (raw: full-width letters and digits count as such)."""
    # Runs, not characters, are matched: a few matches per appeal instead of hundreds.
    runs = _ALNUM_RUN.findall(text)
    compact = "".join(runs)
    cjk = sum(map(len, _CJK_RUN.findall(compact)))
    # A URL holds no Chinese character (see `_URL`): only a text without any can be URLs only.
    url_only = bool(compact) and not cjk and _URL.search(text) is not None
    if url_only:
        url_only = _ALNUM_RUN.search(_URL.sub(" ", text)) is None
    # Amounts and numbers repeat digits (100000, 2019年10月10日): only letters show junk.
    letters = _DIGIT_RUN.sub("", compact)
    head = letters[:REPEAT_WINDOW]
    distinct = len(set(head)) / len(head) if head else 1.0
    latin = _LATIN_RUN.findall(" ".join(runs)) if not compact.isdigit() else []
    mash = max((_mash_length(m) for m in latin), default=0)
    return TextShape(
        alnum=len(compact),
        letters=len(letters),
        cjk=cjk,
        digits_only=compact.isdigit(),
        url_only=url_only,
        head_letters=len(head),
        distinct_share=distinct,
        mash_run=mash,
    )


@dataclass(frozen=True)
class OutOfDistribution:
    """The gate's verdict on one text: its flags (empty: in distribution) and the shares."""

    flags: tuple[str, ...]
    known_share: float  # share of the words in the model's vocabulary (0.0 without words)
    cjk_share: float  # Chinese characters among the letters (digits aside)

    def __bool__(self) -> bool:
        return bool(self.flags)


def known_share(words: Sequence[str], vocabulary: Container[str]) -> tuple[float, int]:
    """(share of `words` in `vocabulary`, number of words judged). Digit-only words (amounts,
    numbers) are left out: they say nothing about the language."""
    judged = [w for w in words if not w.isdigit()]
    if not judged:
        return 0.0, 0
    return sum(w in vocabulary for w in judged) / len(judged), len(judged)


def assess(
    text: str,
    words: Sequence[str] | None = None,
    vocabulary: Container[str] | None = None,
) -> OutOfDistribution:
    """Judge one text. `words` are the model's tokens of it and `vocabulary` the words the model
    knows; without them the known-word share is not judged."""
    shape = measure(text)
    flags: list[str] = []
    if shape.alnum == 0:
        flags.append("empty")
    if shape.cjk == 0:
        flags.append("no_chinese")
    if shape.digits_only:
        flags.append("digits_only")
    if shape.url_only:
        flags.append("url_only")
    if shape.cjk and shape.cjk_share < MIN_CJK_SHARE:
        flags.append("little_chinese")
    if shape.cjk and shape.cjk < MIN_CJK_CHARS:
        flags.append("too_short")
    if shape.head_letters >= REPEAT_MIN_LETTERS and shape.distinct_share < MIN_DISTINCT_SHARE:
        flags.append("repeated")
    if shape.mash_run:
        flags.append("keyboard_mashing")
    share = 0.0
    if words is not None and vocabulary is not None:
        share, judged = known_share(words, vocabulary)
        if judged >= MIN_WORDS_FOR_KNOWN and share < MIN_KNOWN_SHARE:
            flags.append("unknown_words")
    return OutOfDistribution(tuple(flags), round(share, 4), round(shape.cjk_share, 4))
