"""Supervisor statistics and CSV export.

Both take local dates (Asia/Shanghai) `date_from` and `date_to`, both included, by default the
last 30 days; the figures and their definitions are in `router.statistics.service`. The export is
one row per work order, UTF-8 with a byte-order mark so that Excel opens the Chinese text correctly;
personal data in it is masked except for admins (`service.auth.masking`, purpose EXPORT), and
every export is in the audit log.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from router.orm import utcnow
from router.statistics import service as statistics
from router.workorders.workflow import Role
from service.api.deps import DbSession
from service.api.security import require_roles
from service.auth import audit
from service.auth.masking import Purpose, can_see_personal_data, mask_record, mask_text
from service.auth.security import Actor
from service.runtime import get_database

router = APIRouter(prefix="/api/v1/statistics", tags=["statistics"])

SupervisorActor = Annotated[Actor, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))]
ERRORS: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}}
BOM = "\ufeff"
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Export headers in Chinese for the people who open the file; the keys stay English.
EXPORT_HEADERS = {
    "number": "工单编号",
    "received_at": "受理时间",
    "channel": "渠道",
    "appeal_type": "诉求类型",
    "state": "状态",
    "category_code": "事项分类编码",
    "category_path": "事项分类",
    "department_code": "承办单位编码",
    "department_name": "承办单位",
    "district_code": "区县编码",
    "caller_name": "来电人",
    "caller_phone": "来电号码",
    "address": "地址",
    "title": "标题",
    "text": "诉求内容",
    "dispatched_at": "派单时间",
    "accept_deadline_at": "签收时限",
    "accepted_at": "签收时间",
    "deadline_at": "办理时限",
    "replied_at": "办结回复时间",
    "closed_at": "办结时间",
    "escalated": "是否督办",
    "return_count": "退单次数",
    "callback_result": "回访结果",
}


class TotalsRead(BaseModel):
    appeals: int
    dispatched: int
    closed: int
    overdue: int
    escalated: int
    returned: int
    merged: int


class RatesRead(BaseModel):
    on_time_dispatch_rate: float | None
    on_time_closure_rate: float | None
    satisfaction_rate: float | None
    auto_dispatch_rate: float | None


class DailyRead(BaseModel):
    date: date
    channel: str
    count: int


class CategoryCountRead(BaseModel):
    code: str
    path: str
    count: int


class DepartmentFiguresRead(BaseModel):
    code: str
    name: str
    count: int
    overdue: int
    on_time_closure_rate: float | None
    satisfaction_rate: float | None


class DistrictCountRead(BaseModel):
    code: str
    name: str
    count: int


class ReturnReasonRead(BaseModel):
    reason: str
    count: int


class OverdueOrderRead(BaseModel):
    number: str
    department_code: str | None
    deadline: datetime | None
    state: str


class EscalatedOrderRead(BaseModel):
    number: str
    department_code: str | None
    state: str


class StatisticsRead(BaseModel):
    date_from: date
    date_to: date
    totals: TotalsRead
    rates: RatesRead
    daily: list[DailyRead]
    by_category: list[CategoryCountRead]
    by_department: list[DepartmentFiguresRead]
    by_district: list[DistrictCountRead]
    returns: list[ReturnReasonRead]
    overdue: list[OverdueOrderRead]
    escalated: list[EscalatedOrderRead]


DateFrom = Annotated[date | None, Query(description="first local date (default: 29 days ago)")]
DateTo = Annotated[date | None, Query(description="last local date, included (default: today)")]


def _period(date_from: date | None, date_to: date | None, now: datetime) -> statistics.Period:
    default = statistics.default_period(now)
    if date_from is None and date_to is not None:
        span = default.date_to - default.date_from
        date_from = date_to - span if date_to - date.min > span else date_to
    return statistics.make_period(date_from or default.date_from, date_to or default.date_to)


@router.get("", response_model=StatisticsRead, responses=ERRORS)
def get_statistics(
    db_session: DbSession,
    actor: SupervisorActor,
    date_from: DateFrom = None,
    date_to: DateTo = None,
) -> StatisticsRead:
    """Volumes, on-time rates and satisfaction of the appeals received in the period."""
    now = utcnow()
    period = _period(date_from, date_to, now)
    figures = statistics.period_statistics(db_session=db_session, period=period, now=now)
    document = figures.to_dict()
    # Return reasons are free text written by departments; they may quote a caller.
    document["returns"] = [
        {**item, "reason": mask_text(item["reason"]) or ""} for item in document["returns"]
    ]
    return StatisticsRead.model_validate(document)


def spreadsheet_text(text: str) -> str:
    """`text` for a spreadsheet cell: one that starts like a formula is quoted, not run."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    return spreadsheet_text("" if value is None else str(value))


def _csv_lines(period: statistics.Period, unmasked: bool) -> Iterator[bytes]:
    """The file, in chunks; reads with its own session because it runs after the request's."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([EXPORT_HEADERS[name] for name in statistics.EXPORT_COLUMNS])
    yield (BOM + buffer.getvalue()).encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    with get_database().session() as db_session:
        rows = statistics.export_rows(db_session=db_session, period=period)
        for count, row in enumerate(rows, start=1):
            shown = row if unmasked else mask_record(row)
            writer.writerow([_cell(shown[name]) for name in statistics.EXPORT_COLUMNS])
            if count % 200 == 0:
                yield buffer.getvalue().encode("utf-8")
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


@router.get(
    "/export.csv",
    response_class=StreamingResponse,
    responses={**ERRORS, 200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV with BOM"}},
)
def export_csv(
    db_session: DbSession,
    actor: SupervisorActor,
    date_from: DateFrom = None,
    date_to: DateTo = None,
) -> StreamingResponse:
    """One row per work order of the period; phones, names and ID numbers masked unless admin."""
    now = utcnow()
    period = _period(date_from, date_to, now)
    unmasked = can_see_personal_data(actor.role, Purpose.EXPORT)
    audit.record(
        db_session=db_session,
        actor=actor,
        action="statistics.export",
        target_type="statistics",
        detail={
            "date_from": period.date_from.isoformat(),
            "date_to": period.date_to.isoformat(),
            "masked": not unmasked,
        },
        at=now,
    )
    filename = f"hotline-{period.date_from.isoformat()}-{period.date_to.isoformat()}.csv"
    return StreamingResponse(
        _csv_lines(period, unmasked),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
