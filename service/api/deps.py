"""Request dependencies: the unit of work for one request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from service.runtime import get_database


def get_db_session() -> Iterator[Session]:
    # scope="function" (below) commits before the response is sent: a 2xx means it is stored.
    with get_database().session() as session:
        yield session


DbSession = Annotated[Session, Depends(get_db_session, scope="function")]
