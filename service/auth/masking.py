"""Masking of citizens' personal data for display, and the policy of who sees it unmasked.

Masks keep enough to recognise a value, never enough to use it:

    mobile     13812345678           → 138****5678
    landline   0731-84567890         → 0731-****7890
    ID card    430102199001011234    → 4301**********1234
    bank card  6222 0212 3456 7890   → 6222 **** **** 7890
    e-mail     zhangsan@example.com  → z***@example.com
    name       张三丰                → 张**

`mask_text` finds the same kinds of values inside free text and leaves everything else as it
was. Before matching, full-width characters and Chinese numerals (一三八一二三四五六七八, 幺 for
one, common in speech transcripts) read as ASCII digits, zero-width characters are skipped, and
dots and slashes separate digit groups like spaces and hyphens (`138.1234.5678`, `138/1234/5678`);
the mask is applied to the original characters. Addresses are not masked: they locate the
problem, and the department needs them.

Policy (`can_see_personal_data`), by purpose of the access:

    role         HANDLING (one order opened)   LIST (lists, search)   EXPORT (files)
    agent        unmasked                      masked                 masked
    supervisor   unmasked                      masked                 masked
    department   unmasked (orders it leads)    masked                 masked
    admin        unmasked                      masked                 unmasked
    others       masked                        masked                 masked

Agents and supervisors handle the appeal and call the citizen; a department must call the
citizen back, and can only ever open its own orders (`department_scope`: another department's
order is a 404, an order it only assists (协办) too). Only the lead department calls the
citizen back: `service.api.workorders` checks that the department is the order's lead and
audits every unmasked view as `personal_data.view`. Nobody needs a phone number
in a list: open the order. Exports leave the system, so they are masked unless an admin makes
them (e.g. for a request from the citizen or an authority); the lead records such exports in
the audit log.

Deliveries (queue messages and webhooks, `service.delivery.messages`): the lead department (主办)
receives the caller's name and phone and the appeal's text unmasked, since it calls the citizen
back; an assisting department (协办) receives them masked (`mask_name`, `mask_phone`, `mask_text`),
since it works on the problem, not with the caller.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from router.workorders.workflow import Role

__all__ = [
    "PERSONAL_FIELDS",
    "Purpose",
    "can_see_personal_data",
    "mask_email",
    "mask_id_card",
    "mask_name",
    "mask_phone",
    "mask_record",
    "mask_text",
]


class Purpose(StrEnum):
    HANDLING = "handling"  # one work order, opened to work on it
    LIST = "list"  # lists, search results, dashboards
    EXPORT = "export"  # files that leave the system (CSV, spreadsheets)


_UNMASKED: dict[Purpose, frozenset[str]] = {
    Purpose.HANDLING: frozenset({Role.AGENT, Role.SUPERVISOR, Role.DEPARTMENT, Role.ADMIN}),
    Purpose.LIST: frozenset(),
    Purpose.EXPORT: frozenset({Role.ADMIN}),
}


def can_see_personal_data(role: str, purpose: Purpose | str = Purpose.HANDLING) -> bool:
    """Whether `role` sees citizens' phones, names and ID numbers unmasked for `purpose`."""
    try:
        return role in _UNMASKED[Purpose(purpose)]
    except ValueError:
        return False


# Full-width forms and Chinese numerals fold to ASCII one character for one; zero-width
# characters are dropped from the matched text, and `_fold` keeps where each kept character came
# from, so a match in the folded text maps back onto the original, which is what gets masked.
_FOLD = str.maketrans(
    {chr(code): chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5F)}
    | {"\u3000": " "}
    | {numeral: str(value) for value, numeral in enumerate("零一二三四五六七八九")}
    | {"〇": "0", "幺": "1"}
)
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad")
_SEP = r"[ \-./]?"  # one separator between digit groups


def _fold(text: str) -> tuple[str, list[int]]:
    """The text as matched (folded, zero-width characters left out) and, for each of its
    characters, its index in `text`."""
    kept = [i for i, char in enumerate(text) if char not in _ZERO_WIDTH]
    return "".join(text[i] for i in kept).translate(_FOLD), kept


_EMAIL = r"(?P<email>[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})"
_ID_CARD = (
    r"(?P<id_card>(?<![0-9A-Za-z])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])"
    r"(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?![0-9A-Za-z])"
    r"|(?<![0-9])[1-9][0-9]{7}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}(?![0-9]))"
)
_BANK_CARD = r"(?P<bank_card>(?<![0-9])(?:[0-9]{4}[ \-]?){3}[0-9]{4}(?:[ \-]?[0-9]{1,3})?(?![0-9]))"
_MOBILE = (
    r"(?<![0-9])(?P<country>(?:\+|00)?86[ \-]?)?"
    rf"(?P<mobile>1[3-9][0-9]{_SEP}[0-9]{{4}}{_SEP}[0-9]{{4}})(?![0-9])"
)
_LANDLINE = (
    r"(?<![0-9])(?P<area>\(?0[0-9]{2,3}\)?[ \-]?)(?P<local>[0-9]{7,8})"
    r"(?P<ext>-[0-9]{1,5})?(?![0-9])"
    r"|(?<=电话|座机|号码|热线|联系)(?P<lead>[:：是为 ]*)(?P<bare>[0-9]{7,8})(?![0-9])"
)
_PERSONAL = re.compile("|".join((_EMAIL, _ID_CARD, _BANK_CARD, _MOBILE, _LANDLINE)))


def _mask_alnum(value: str, *, keep_head: int, keep_tail: int) -> str:
    """Replace the letters and digits of `value` by '*', except the first and last few."""
    positions = [i for i, char in enumerate(value) if char.isalnum()]
    hidden = set(positions[keep_head : max(keep_head, len(positions) - keep_tail)])
    return "".join("*" if i in hidden else char for i, char in enumerate(value))


def _mask_local_number(value: str) -> str:
    digits = sum(char.isalnum() for char in value)
    return _mask_alnum(value, keep_head=0, keep_tail=4 if digits >= 8 else 2)


def _mask_match(original: str, kept: list[int], match: re.Match[str]) -> str:
    """The masked form of one match, built from the original (unfolded) characters; `kept` maps
    the folded text's indexes to the original's (`_fold`)."""

    def span(start: int, end: int) -> str:
        return original[kept[start] : kept[end - 1] + 1] if 0 <= start < end else ""

    def part(name: str) -> str:
        return span(*match.span(name))

    kind = match.lastgroup
    if match.group("email") is not None:
        local, _, domain = part("email").rpartition("@")
        return f"{local[:1]}***@{domain}"
    if match.group("id_card") is not None or match.group("bank_card") is not None:
        return _mask_alnum(span(*match.span()), keep_head=4, keep_tail=4)
    if match.group("mobile") is not None:
        return part("country") + _mask_alnum(part("mobile"), keep_head=3, keep_tail=4)
    if match.group("local") is not None:
        return part("area") + _mask_local_number(part("local")) + part("ext")
    if match.group("bare") is not None:
        return part("lead") + _mask_local_number(part("bare"))
    raise AssertionError(f"unhandled personal-data match {kind!r}")  # pragma: no cover


def mask_text(text: str | None) -> str | None:
    """Free text with every phone, ID-card and bank-card number and e-mail address masked."""
    if not text:
        return text
    folded, kept = _fold(text)
    pieces: list[str] = []
    last = 0
    for match in _PERSONAL.finditer(folded):
        if match.end() == match.start():  # pragma: no cover - no alternative matches empty
            continue
        start, end = kept[match.start()], kept[match.end() - 1] + 1
        pieces.append(text[last:start])
        pieces.append(_mask_match(text, kept, match))
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def _mask_whole(pattern: re.Pattern[str], value: str) -> str | None:
    original = value.strip()
    folded, kept = _fold(original)
    match = pattern.fullmatch(folded)
    return _mask_match(original, kept, match) if match else None


def mask_phone(value: str | None) -> str | None:
    """`13812345678` → `138****5678`; unrecognised numbers keep at most their last four digits."""
    if not value:
        return value
    masked = _mask_whole(_PERSONAL, value)
    if masked is not None:
        return masked
    digits = sum(char.isalnum() for char in value)
    if digits >= 11:
        return _mask_alnum(value, keep_head=3, keep_tail=4)
    return _mask_alnum(value, keep_head=0, keep_tail=4 if digits >= 8 else digits // 3)


def mask_id_card(value: str | None) -> str | None:
    """`430102199001011234` → `4301**********1234` (any ID-like number: first and last four)."""
    if not value:
        return value
    length = sum(char.isalnum() for char in value)
    keep = 4 if length > 8 else 0
    return _mask_alnum(value, keep_head=keep, keep_tail=keep)


def mask_email(value: str | None) -> str | None:
    """`zhangsan@example.com` → `z***@example.com`."""
    if not value:
        return value
    local, at, domain = value.strip().rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_name(value: str | None) -> str | None:
    """`张三丰` → `张**`; a one-character name becomes `*`."""
    if not value:
        return value
    name = value.strip()
    if len(name) <= 1:
        return "*" * len(name)
    return name[0] + "*" * (len(name) - 1)


Masker = Callable[[str | None], str | None]

# Field names used by appeals, work orders and their exports; `mask_record` applies these.
PERSONAL_FIELDS: Mapping[str, Masker] = {
    "caller_phone": mask_phone,
    "caller_name": mask_name,
    "caller_id_card": mask_id_card,
    "id_card": mask_id_card,
    "caller_email": mask_email,
    "email": mask_email,
    "title": mask_text,
    "text": mask_text,
    "reason": mask_text,
    "reply": mask_text,
}


def mask_record(
    record: Mapping[str, Any], fields: Mapping[str, Masker] = PERSONAL_FIELDS
) -> dict[str, Any]:
    """A copy of `record` with the personal fields masked (string values only, top level)."""
    masked = dict(record)
    for name, masker in fields.items():
        value = masked.get(name)
        if isinstance(value, str):
            masked[name] = masker(value)
    return masked
