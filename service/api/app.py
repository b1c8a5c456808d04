"""The FastAPI application factory."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI

from service import intake
from service.api import (
    admin,
    appeals,
    assessment,
    auth,
    callbacks,
    callers,
    deadletters,
    docs,
    health,
    hotspots,
    knowledge,
    metrics,
    model_versions,
    notifications,
    open311,
    phone,
    statistics,
    system,
    wechat,
    workorders,
)
from service.api.csrf import CsrfMiddleware
from service.api.errors import install_error_handlers
from service.api.request_guard import RequestGuardMiddleware
from service.api.responses import LocalTimeJSONResponse
from service.channels.limits import IntakeLimitsMiddleware
from service.config import get_settings
from service.observability import tracing
from service.runtime import get_database
from service.web import pages

log = logging.getLogger(__name__)


def _warm_duplicate_index() -> None:
    try:
        added = intake.warm_duplicate_index(get_database(), get_settings())
    except Exception:  # the first appeal catches up instead; start-up must not fail for this
        log.exception("could not warm the duplicate index")
    else:
        log.info("duplicate index warmed with %d recent work orders", added)


def _warm_knowledge_index() -> None:
    from router.knowledge.searcher import searcher_for

    database = get_database()
    try:
        with database.session() as db_session:
            searcher = searcher_for(database)
            searcher.refresh(db_session)
    except Exception:  # the first search builds it instead
        log.exception("could not warm the knowledge index")
    else:
        log.info("knowledge index warmed with %d articles", searcher.size)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """At start-up, size the request thread pool (`HOTLINE_API_THREADS`: the appeals waiting
    in it are group-committed together) and fill the duplicate and knowledge indexes in the
    background so that no caller waits for them."""
    to_thread.current_default_thread_limiter().total_tokens = get_settings().api_threads
    threading.Thread(target=_warm_duplicate_index, name="duplicate-warm-up", daemon=True).start()
    threading.Thread(target=_warm_knowledge_index, name="knowledge-warm-up", daemon=True).start()
    yield


def create_app() -> FastAPI:
    app = FastAPI(
        lifespan=lifespan,
        title="hotline-router",
        version="0.1.0",
        description="12345 hotline appeal routing: intake, classification, dispatch, tracking.",
        default_response_class=LocalTimeJSONResponse,
        # Served by service/api/docs.py with packaged assets instead of a CDN's.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(IntakeLimitsMiddleware)
    app.add_middleware(CsrfMiddleware)
    app.add_middleware(RequestGuardMiddleware)  # before any route reads a byte
    # outermost: every answer, refusals included, carries a request id and is timed
    app.add_middleware(metrics.RequestContextMiddleware)
    app.state.metrics_registry = metrics.scrape_registry()
    tracing.instrument_app(app, get_settings())
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(docs.router)
    app.include_router(system.router)
    app.include_router(appeals.router)
    app.include_router(auth.router)
    app.include_router(admin.router)
    app.include_router(workorders.router)
    for module in (
        assessment,
        callbacks,
        notifications,
        phone,
        wechat,
        open311,
        hotspots,
        knowledge,
        model_versions,
        statistics,
        deadletters,
        callers,
    ):
        app.include_router(module.router)
    app.include_router(pages.router)
    return app
