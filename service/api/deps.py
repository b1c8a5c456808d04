"""Request dependencies: the unit of work for one request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query
from sqlalchemy.orm import Session

from service.runtime import get_database


def get_db_session() -> Iterator[Session]:
    # scope="function" (below) commits before the response is sent: a 2xx means it is stored.
    with get_database().session() as session:
        yield session


DbSession = Annotated[Session, Depends(get_db_session, scope="function")]

Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Rows to skip (paging)")]
"""Paging offset for every list endpoint (bounded: a huge offset is bad input, not a 500)."""
