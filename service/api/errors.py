"""One renderer for every expected failure:
`{"error": "<ClassName>", "detail": ..., "code": "<STABLE_CODE>", "message": "<中文说明>"}`
(codes and messages in service/error_codes.py, listed in docs/errors.md)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from classifier.errors import ClassifierError
from router.errors import AppError
from service.channels.open311 import Open311Error, render_xml
from service.error_codes import code_for_exception, error_body

log = logging.getLogger(__name__)

HTTP_ERROR_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
}
DATABASE_RETRY_AFTER_SECONDS = 5


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(
            error_body(type(exc).__name__, exc.detail, code_for_exception(exc), **exc.extra),
            status_code=exc.status_code,
            headers=headers,
        )

    @app.exception_handler(Open311Error)
    async def _open311_error(request: Request, exc: Open311Error) -> Response:
        # GeoReport v2 clients expect their own error list, in the format they asked for.
        errors = [{"code": exc.status_code, "description": exc.detail}]
        if request.url.path.endswith(".xml"):
            return Response(
                render_xml("errors", errors),
                exc.status_code,
                headers=exc.headers,
                media_type="text/xml",
            )
        return JSONResponse(errors, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(ClassifierError)
    async def _classifier_error(_request: Request, exc: ClassifierError) -> JSONResponse:
        return JSONResponse(
            error_body(type(exc).__name__, str(exc), code_for_exception(exc)), status_code=503
        )

    @app.exception_handler(StaleDataError)
    async def _concurrent_change(_request: Request, _exc: StaleDataError) -> JSONResponse:
        # Optimistic locking (work_orders.version) lost a race: the client should re-read.
        return JSONResponse(
            error_body("Conflict", "工单已被其他操作修改，请刷新后重试"), status_code=409
        )

    @app.exception_handler(OverflowError)
    async def _overflow(_request: Request, exc: OverflowError) -> JSONResponse:
        # An integer too large for the database column (SQLite refuses it while binding).
        log.info("number out of range: %s", exc)
        return JSONResponse(error_body("InvalidInput", "数值超出允许范围"), status_code=400)

    @app.exception_handler(DataError)
    async def _data_error(_request: Request, exc: DataError) -> JSONResponse:
        # PostgreSQL's "numeric value out of range" (SQLSTATE 22003) is bad input, e.g. a
        # 20-digit offset; any other data error is a bug and stays a 500.
        if getattr(exc.orig, "sqlstate", None) != "22003":
            raise exc
        log.info("number out of range: %s", exc.orig)
        return JSONResponse(error_body("InvalidInput", "数值超出允许范围"), status_code=400)

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeoutError)
    async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
        # The database is down, restarting or saturated: the client should retry, not report a
        # bug. (Pool pre-ping already retries a connection that died while idle.)
        log.warning("database unavailable: %s", str(exc).splitlines()[0])
        return JSONResponse(
            error_body("ServiceUnavailable", "数据库暂不可用，请稍后重试"),
            status_code=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type")}
            for err in exc.errors()
        ]
        return JSONResponse(error_body("ValidationError", errors), status_code=422)

    @app.exception_handler(Exception)
    async def _bug(_request: Request, _exc: Exception) -> JSONResponse:
        # A bug: the JSON error instead of plain text; the server logs the traceback, the answer
        # carries none (Starlette re-raises after answering).
        return JSONResponse(error_body("InternalError", "internal server error"), status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        name = HTTP_ERROR_NAMES.get(exc.status_code, "HTTPError")
        return JSONResponse(
            error_body(name, exc.detail), status_code=exc.status_code, headers=exc.headers
        )
