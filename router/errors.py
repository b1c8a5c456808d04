"""Domain errors of the routing layer.

Hierarchy (rendered by the API as `{"error": "<ClassName>", "detail": "..."}` with `status_code`):

    AppError (400)
    ├── NotFound (404)
    ├── Conflict (409)            e.g. an illegal work-order transition
    ├── Forbidden (403)
    ├── Unauthorized (401)
    ├── InvalidInput (400)
    └── CatalogueError (400)      reference data that fails validation
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """Base class for expected failures; `status_code` is the HTTP status the API answers with."""

    status_code = 400

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def __str__(self) -> str:
        return self.detail


class NotFound(AppError):
    status_code = 404


class Conflict(AppError):
    status_code = 409


class Forbidden(AppError):
    status_code = 403


class Unauthorized(AppError):
    status_code = 401


class InvalidInput(AppError):
    status_code = 400


class CatalogueError(AppError):
    """Reference data (taxonomy, departments, gazetteer) is invalid; names the bad row."""
