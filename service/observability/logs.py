"""The one logging set-up of every process: text (default) or JSON lines (`HOTLINE_LOG_FORMAT`).

Each record carries the request id and the work-order number where they are known (context
variables of `service.observability.context`, or `extra={"request_id": ..., "work_order": ...}`
where one thread logs for another's request, as group-committed intake does). Personal data never
reaches a log line: both formats pass the message and any traceback through
`service.auth.masking.mask_text` (phone, ID-card and bank-card numbers, e-mail addresses), and the
code logs ids and work-order numbers, never appeal texts or callers' names.
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

from service.auth.masking import mask_text
from service.observability.context import current_request_id, current_work_order

__all__ = ["ContextFilter", "JsonFormatter", "TextFormatter", "configure", "dict_config"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_LOGGERS = {"alembic": "WARNING"}


class ContextFilter(logging.Filter):
    """Put the request id and work-order number on each record (unless `extra` already did)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        if getattr(record, "work_order", None) is None:
            record.work_order = current_work_order()
        return True


class TextFormatter(logging.Formatter):
    """The classic one-line format, masked; the request id and work order are appended."""

    def __init__(self, fmt: str | None = TEXT_FORMAT, **kwargs: Any) -> None:
        super().__init__(fmt, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        line = mask_text(super().format(record)) or ""
        tags = [
            f"{name}={value}"
            for name in ("request_id", "work_order")
            if (value := getattr(record, name, None))
        ]
        return f"{line} [{' '.join(tags)}]" if tags else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, work_order, process,
    and `exc` (the traceback) when there is one. Chinese stays readable (no `\\u` escapes)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_text(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
            "work_order": getattr(record, "work_order", None),
            "process": record.process,
        }
        if record.exc_info:
            entry["exc"] = mask_text(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc"] = mask_text(record.exc_text)
        if record.stack_info:
            entry["stack"] = mask_text(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def dict_config(*, level: str, log_format: str) -> dict[str, Any]:
    """The `logging.config.dictConfig` of a process: one stderr handler on the root logger,
    uvicorn's loggers sent to it (uvicorn applies this in each of its worker processes)."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"default": {"()": formatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            **{name: {"level": value} for name, value in QUIET_LOGGERS.items()},
            **{
                name: {"handlers": [], "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
            },
        },
    }


def configure(*, level: str, log_format: str) -> None:
    """Set up logging for this process (replacing any earlier set-up of the root logger);
    warnings are logged too, so that a JSON log holds nothing but JSON lines."""
    logging.config.dictConfig(dict_config(level=level, log_format=log_format))
    logging.captureWarnings(True)
