"""The API's JSON response: every datetime in the configured local time zone.

FastAPI serialises response models to JSON-ready data before the response class renders them,
so datetimes reach :class:`LocalTimeJSONResponse` as ISO 8601 strings: UTC ones written with
``Z`` or ``+00:00`` by pydantic, naive ones from SQLite (the database keeps UTC). ``render``
rewrites every string that is a whole ISO 8601 date-time into ``HOTLINE_TIMEZONE``
(``2026-12-04T11:00:00+08:00``); dates, times and other strings are left alone. It is the app's
``default_response_class``, so new routes get it without doing anything; a route that builds
its own JSON response should return this class too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.responses import JSONResponse

from service import runtime

__all__ = ["LocalTimeJSONResponse", "localize", "to_local_iso"]

# A whole date-time: date, "T", time with optional fraction, optional offset.
DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?")


@lru_cache(maxsize=8)
def _zone(name: str) -> tzinfo:
    return ZoneInfo(name)


def to_local_iso(value: datetime, zone: tzinfo) -> str:
    """`value` in `zone` as ISO 8601 with its offset; a naive value is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone).isoformat()


def _localize_string(text: str, zone: tzinfo) -> str:
    if len(text) > 40 or not DATETIME.fullmatch(text):
        return text
    try:
        return to_local_iso(datetime.fromisoformat(text), zone)
    except (ValueError, OverflowError):  # not a real date, or out of range once shifted
        return text


def localize(content: Any, zone: tzinfo) -> Any:
    """`content` (JSON-ready data) with every date-time string written in `zone`."""
    if isinstance(content, str):
        return _localize_string(content, zone)
    if isinstance(content, dict):
        return {key: localize(value, zone) for key, value in content.items()}
    if isinstance(content, list):
        return [localize(value, zone) for value in content]
    return content


class LocalTimeJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        zone = _zone(runtime.get_settings().timezone)
        return super().render(localize(content, zone))
