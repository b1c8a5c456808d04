"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from service.api import (
    admin,
    appeals,
    auth,
    callbacks,
    callers,
    deadletters,
    health,
    merges,
    models,
    notifications,
    open311,
    phone,
    statistics,
    system,
    wechat,
    workorders,
)
from service.api.errors import install_error_handlers
from service.web import pages


def create_app() -> FastAPI:
    app = FastAPI(
        title="hotline-router",
        version="0.1.0",
        description="12345 hotline appeal routing: intake, classification, dispatch, tracking.",
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(system.router)
    app.include_router(appeals.router)
    app.include_router(auth.router)
    app.include_router(admin.router)
    app.include_router(workorders.router)
    for module in (
        callbacks,
        notifications,
        phone,
        wechat,
        open311,
        merges,
        models,
        statistics,
        deadletters,
        callers,
    ):
        app.include_router(module.router)
    app.include_router(pages.router)
    return app
