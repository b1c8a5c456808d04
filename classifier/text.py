"""Text pipeline for appeals: normalise, mask personal data, segment with jieba, drop stop words.

Personal data is masked right after normalisation, so nothing downstream (features, explanations,
reports) ever sees a phone, ID-card or bank-card number or an e-mail address.

Segmentation is jieba's algorithm and dictionary. When the compiled `rjieba` (jieba-rs) is
installed it is used for speed: its cuts equal jieba's except for ASCII punctuation inside
alphanumeric runs ("4.A", "baidu.com"), which are re-cut by jieba so the output stays the same.
Tokenizers are built once per process per user dictionary and shared by all pipelines.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "MASK_TOKENS",
    "TextPipeline",
    "UserWord",
    "available_segmenters",
    "default_stop_words",
    "mask_personal_data",
    "normalize",
    "read_user_dict",
    "read_word_list",
]

UserWord = tuple[str, int | None, str | None]

# Placeholders are ASCII words so that jieba keeps each as one token.
MASK_TOKENS = {
    "email": "EMAIL",
    "id_card": "IDCARD",
    "bank_card": "BANKCARD",
    "mobile": "MOBILE",
    "landline": "PHONE",
}

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_SPACE_BETWEEN_CJK = re.compile(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])")
_SPACES = re.compile(r"\s+")
_CLAUSE_START = r"(?:^|(?<=[\s,.!?;:、。，！？；：…]))"
# Call-transcript fillers. 嗯/呃 never carry meaning; 啊/哦/额/那个/就是说/然后呢 only when they
# open a clause ("那个小区" keeps its 那个 unless it starts the clause, an accepted loss).
_FILLERS = re.compile(
    rf"(?=[嗯呃啊哦额那就然这])(?:[嗯呃]+[,，、]?"
    rf"|{_CLAUSE_START}(?:啊+|哦+|额+|那个|就是说|然后呢|这个这个)[,，、\s]*)"
)
_FILLER_HINT = frozenset("嗯呃啊哦额那就然这")
# Every masked number holds seven digits in a row, with at most one space or hyphen between two.
_LONG_NUMBER = re.compile(r"\d(?:[ \-]?\d){6}")
# Full-width ASCII and the ideographic space, mapped as NFKC maps them: a cheap first pass that
# leaves most appeals NFKC-normalised already, so the costly `unicodedata.normalize` is skipped.
_FULL_WIDTH_RUN = re.compile("[\uff01-\uff5e\u3000]+")
_FULL_WIDTH = {0x3000: " ", **{c: chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)}}


def _half_width(match: re.Match[str]) -> str:
    return match.group().translate(_FULL_WIDTH)


_REPEATED_PUNCT = re.compile(r"([,.!?;:、。，！？；：])[,.!?;:、。，！？；：\s]+")

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_ID_CARD = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
    r"\d{3}[0-9Xx](?![0-9A-Za-z])"
    r"|(?<!\d)[1-9]\d{7}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}(?!\d)"
)
_BANK_CARD = re.compile(r"(?<!\d)(?:\d{4}[ \-]?){3}\d{4}(?:[ \-]?\d{1,3})?(?!\d)")
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[ \-]?)?1[3-9]\d[ \-]?\d{4}[ \-]?\d{4}(?!\d)")
_LANDLINE = re.compile(
    r"(?<!\d)(?:\(?0\d{2,3}\)?[ \-]?)\d{7,8}(?:-\d{1,5})?(?!\d)"
    r"|(?<=电话|座机|号码|热线|联系)[:：是为\s]*\d{7,8}(?!\d)"
)


def normalize(text: str, *, remove_fillers: bool = True) -> str:
    """Full-width to half-width (NFKC), lower-case ASCII, drop fillers, tidy whitespace."""
    text = text or ""
    # The guards skip work that most appeals do not need; they change no result.
    text = _FULL_WIDTH_RUN.sub(_half_width, text)
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    text = text.lower()
    has_space = not text.isprintable() or " " in text
    if has_space:
        text = _SPACE_BETWEEN_CJK.sub("", text)
    if remove_fillers and not _FILLER_HINT.isdisjoint(text):
        text = _FILLERS.sub("", text)
        text = _REPEATED_PUNCT.sub(r"\1", text)
    return _SPACES.sub(" ", text).strip() if has_space or remove_fillers else text.strip()


def mask_personal_data(text: str) -> str:
    """Replace e-mail addresses, ID-card, bank-card, mobile and landline numbers by placeholders.

    Expects normalised (half-width) text. The order matters: longer number patterns first.
    """
    if "@" in text:
        text = _EMAIL.sub(f" {MASK_TOKENS['email']} ", text)
    if not _LONG_NUMBER.search(text):
        return text.strip()
    text = _ID_CARD.sub(f" {MASK_TOKENS['id_card']} ", text)
    text = _BANK_CARD.sub(f" {MASK_TOKENS['bank_card']} ", text)
    text = _MOBILE.sub(f" {MASK_TOKENS['mobile']} ", text)
    text = _LANDLINE.sub(f" {MASK_TOKENS['landline']} ", text)
    return _SPACES.sub(" ", text).strip()


def read_word_list(path: str | Path) -> frozenset[str]:
    """One word per line; blank lines and lines starting with '#' are ignored."""
    words = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            words.add(line)
    return frozenset(words)


@cache
def default_stop_words() -> frozenset[str]:
    """The stop-word list shipped as a package resource (`classifier/resources/stopwords.txt`)."""
    ref = resources.files("classifier").joinpath("resources/stopwords.txt")
    with resources.as_file(ref) as path:
        return read_word_list(path)


def read_user_dict(path: str | Path) -> tuple[UserWord, ...]:
    """Read a jieba user dictionary ("word [freq] [tag]" per line) into explicit tuples."""
    entries: list[UserWord] = []
    for line in Path(path).read_text(encoding="utf-8-sig").splitlines():
        parts = line.strip().split()
        if not parts or parts[0].startswith("#"):
            continue
        word, freq, tag = parts[0], None, None
        rest = parts[1:]
        if rest and rest[0].isdigit():
            freq = int(rest.pop(0))
        if rest:
            tag = rest[0]
        entries.append((word, freq, tag))
    return tuple(entries)


def available_segmenters() -> list[str]:
    """Segmenter back-ends importable here; "jieba" is always there."""
    names = ["jieba"]
    try:
        import rjieba  # noqa: F401
    except ImportError:
        pass
    else:
        names.append("rjieba")
    return names


# --- segmenters, one per (backend, user dictionary) per process --------------------------------

_ASCII_RUN_WITH_PUNCT = re.compile(r"[A-Za-z0-9][.+#&_%\-]|[.+#&_%\-][A-Za-z0-9]")
_lock = threading.Lock()
_segmenters: dict[tuple[str, str], Any] = {}


def _user_words_key(user_words: Sequence[UserWord]) -> str:
    digest = hashlib.sha256(repr(tuple(user_words)).encode("utf-8")).hexdigest()
    return digest[:16]


def _jieba_tokenizer(user_words: Sequence[UserWord]) -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    for word, freq, tag in user_words:
        tokenizer.add_word(word, freq, tag)
    return tokenizer


class _JiebaSegmenter:
    def __init__(self, user_words: Sequence[UserWord]) -> None:
        self._tokenizer = _jieba_tokenizer(user_words)

    def cut(self, text: str) -> list[str]:
        return self._tokenizer.lcut(text)


class _RJiebaSegmenter:
    """jieba-rs for speed; tokens mixing ASCII letters/digits and punctuation go through jieba,
    whose regular expressions split those runs differently."""

    def __init__(self, user_words: Sequence[UserWord]) -> None:
        import rjieba

        self._rjieba = rjieba.Jieba()
        for word, freq, tag in user_words:
            self._rjieba.add_word(word, freq, tag)
        self._user_words = tuple(user_words)
        self._reference: _JiebaSegmenter | None = None

    def cut(self, text: str) -> list[str]:
        tokens = self._rjieba.cut(text)
        if not _ASCII_RUN_WITH_PUNCT.search(text):
            return tokens
        if self._reference is None:
            self._reference = _JiebaSegmenter(self._user_words)
        out: list[str] = []
        for tok in tokens:
            if len(tok) > 1 and _ASCII_RUN_WITH_PUNCT.search(tok):
                out.extend(self._reference.cut(tok))
            else:
                out.append(tok)
        return out


def _get_segmenter(backend: str, user_words: Sequence[UserWord], words_key: str) -> Any:
    key = (backend, words_key)
    segmenter = _segmenters.get(key)
    if segmenter is None:
        with _lock:
            segmenter = _segmenters.get(key)
            if segmenter is None:
                cls = _RJiebaSegmenter if backend == "rjieba" else _JiebaSegmenter
                segmenter = cls(user_words)
                _segmenters[key] = segmenter
    return segmenter


def _is_noise(token: str) -> bool:
    # Punctuation, whitespace and symbols carry no topic; long digit runs are ids or amounts.
    if token.isspace() or not token:
        return True
    if all(not ch.isalnum() for ch in token):
        return True
    return token.isdigit() and len(token) > 4


@dataclass(frozen=True)
class TextPipeline:
    """Normalise → mask → segment → filter. Picklable; the tokenizer is a per-process cache.

    `user_words` are jieba user-dictionary entries (see `read_user_dict`); `stop_words` defaults to
    the packaged list. `segmenter` is "jieba", "rjieba" or "auto" (rjieba when installed).
    """

    user_words: tuple[UserWord, ...] = ()
    stop_words: frozenset[str] | None = None
    segmenter: str = "auto"
    remove_fillers: bool = True
    _backend: str = field(default="", init=False, repr=False, compare=False)
    _key: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.segmenter not in ("auto", "jieba", "rjieba"):
            raise ValueError(f"unknown segmenter {self.segmenter!r}")
        backend = self.segmenter
        if backend == "auto":
            backend = "rjieba" if "rjieba" in available_segmenters() else "jieba"
        object.__setattr__(self, "_backend", backend)
        object.__setattr__(self, "_key", _user_words_key(self.user_words))
        if self.stop_words is None:
            object.__setattr__(self, "stop_words", default_stop_words())

    @classmethod
    def from_files(
        cls,
        *,
        user_dict: str | Path | None = None,
        stop_words: str | Path | None = None,
        segmenter: str = "auto",
    ) -> TextPipeline:
        return cls(
            user_words=read_user_dict(user_dict) if user_dict else (),
            stop_words=read_word_list(stop_words) if stop_words else None,
            segmenter=segmenter,
        )

    @property
    def backend(self) -> str:
        """The segmenter actually used ("jieba" or "rjieba")."""
        return self._backend

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Re-resolve the backend where the pipeline is loaded: rjieba may be absent there.
        for key, value in state.items():
            object.__setattr__(self, key, value)
        self.__post_init__()

    def clean(self, text: str) -> str:
        """Normalised text with personal data masked: the only form that may be stored."""
        return mask_personal_data(normalize(text, remove_fillers=self.remove_fillers))

    def segment(self, text: str) -> list[str]:
        """jieba cuts of already-cleaned text, unfiltered."""
        return _get_segmenter(self._backend, self.user_words, self._key).cut(text)

    def tokens(self, text: str) -> list[str]:
        """Content words of raw text: clean, segment, drop stop words and noise."""
        stop = self.stop_words or frozenset()
        return [t for t in self.segment(self.clean(text)) if t not in stop and not _is_noise(t)]
