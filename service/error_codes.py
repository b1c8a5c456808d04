"""The stable machine code and the Chinese message of every error name the API answers with.

Every JSON error is `{"error": <name>, "detail": ..., "code": <CODE>, "message": <中文>}`:
``error`` and ``detail`` are the original contract (``detail`` may be English or structured),
``code`` never changes once published and ``message`` is what a page shows a user. The table
is in docs/errors.md; tests/service/test_error_codes.py checks that every error class has a row.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ERROR_CODES", "ErrorCode", "code_for", "code_for_exception", "error_body"]


class ErrorCode(NamedTuple):
    code: str
    message: str


ERROR_CODES: dict[str, ErrorCode] = {
    # router.errors.AppError and its subclasses
    "AppError": ErrorCode("APP_ERROR", "请求无法处理"),
    "NotFound": ErrorCode("NOT_FOUND", "请求的资源不存在"),
    "Conflict": ErrorCode("CONFLICT", "操作与当前状态冲突，请刷新后重试"),
    "Forbidden": ErrorCode("FORBIDDEN", "没有执行此操作的权限"),
    "Unauthorized": ErrorCode("UNAUTHORIZED", "未登录或登录已失效，请重新登录"),
    "InvalidInput": ErrorCode("INVALID_INPUT", "输入内容无效"),
    "CatalogueError": ErrorCode("CATALOGUE_INVALID", "参考数据（分类、单位、地名）无效"),
    "ConfigurationError": ErrorCode("CONFIGURATION_INVALID", "服务配置无效"),
    "Open311Error": ErrorCode("OPEN311_ERROR", "Open311 请求无法处理"),
    "InvalidSignature": ErrorCode("WECHAT_SIGNATURE_INVALID", "微信消息签名无效"),
    "ReplayedRequest": ErrorCode("WECHAT_REQUEST_REPLAYED", "微信消息重复或已过期"),
    "InvalidWechatMessage": ErrorCode("WECHAT_MESSAGE_INVALID", "微信消息格式无效"),
    "InvalidTranscript": ErrorCode("PHONE_TRANSCRIPT_INVALID", "电话转写内容无效"),
    # classifier.errors.ClassifierError and its subclasses (answered with 503)
    "ClassifierError": ErrorCode("CLASSIFIER_UNAVAILABLE", "分类模型暂不可用"),
    "ArtifactError": ErrorCode("MODEL_ARTIFACT_INVALID", "分类模型文件无法使用"),
    "DatasetError": ErrorCode("DATASET_INVALID", "训练数据无法使用"),
    # Errors named by the API itself (request validation, HTTP status, infrastructure)
    "ValidationError": ErrorCode("VALIDATION_FAILED", "请求参数校验未通过"),
    "BadRequest": ErrorCode("BAD_REQUEST", "请求格式错误"),
    "InvalidEncoding": ErrorCode("INVALID_ENCODING", "请求内容的字符编码无效"),
    "MethodNotAllowed": ErrorCode("METHOD_NOT_ALLOWED", "不支持该请求方法"),
    "NotAcceptable": ErrorCode("NOT_ACCEPTABLE", "无法提供所要求的响应格式"),
    "PayloadTooLarge": ErrorCode("PAYLOAD_TOO_LARGE", "请求内容过大"),
    "UnsupportedMediaType": ErrorCode("UNSUPPORTED_MEDIA_TYPE", "不支持的请求内容类型"),
    "TooManyRequests": ErrorCode("TOO_MANY_REQUESTS", "请求过于频繁，请稍后重试"),
    "ServiceUnavailable": ErrorCode("SERVICE_UNAVAILABLE", "服务暂不可用，请稍后重试"),
    "HTTPError": ErrorCode("HTTP_ERROR", "请求无法处理"),
    "CrossSiteRequest": ErrorCode("CROSS_SITE_REQUEST", "请求来源不可信，请在本系统的页面中操作"),
    "InternalError": ErrorCode("INTERNAL_ERROR", "服务内部错误，已记录，请稍后重试或联系管理员"),
}


def code_for(name: str) -> ErrorCode:
    """The row of error `name`; an unlisted name gets the generic row rather than a crash."""
    return ERROR_CODES.get(name, ERROR_CODES["HTTPError"])


def code_for_exception(exc: BaseException) -> ErrorCode:
    """The row of the nearest class in `exc`'s hierarchy that has one, so that a subclass
    added without a row still answers with its parent's code."""
    for cls in type(exc).__mro__:
        if cls.__name__ in ERROR_CODES:
            return ERROR_CODES[cls.__name__]
    return ERROR_CODES["HTTPError"]


def error_body(
    name: str, detail: object, row: ErrorCode | None = None, **extra: object
) -> dict[str, object]:
    """The JSON error; `row` defaults to the row of `name` in the table."""
    row = row or code_for(name)
    return {"error": name, "detail": detail, "code": row.code, "message": row.message, **extra}
