"""Department assessment (考核): the scorecard per department, district or street, the orders
behind each figure, and the .xlsx export with the centre's usual column headings.

A period is a calendar `month` (YYYY-MM) or local dates `date_from`..`date_to` (Asia/Shanghai,
both included); without either, the current month. Supervisors and admins only: a scorecard
ranks every department against the others, so a department sees none (not even its own row).
The figures and their definitions are in `router.assessment.service`; weights and thresholds are
the `HOTLINE_ASSESSMENT_*` settings. Every export is in the audit log.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from pydantic import BaseModel

from router.assessment import service as assessment
from router.assessment.scoring import Figure, UnitKind
from router.calendar import DEFAULT_CALENDAR
from router.errors import InvalidInput
from router.orm import utcnow
from router.statistics import service as statistics
from router.workorders.workflow import Role
from service.api.deps import DbSession
from service.api.security import require_roles
from service.api.statistics import spreadsheet_text
from service.auth import audit
from service.auth.security import Actor
from service.runtime import get_settings

router = APIRouter(prefix="/api/v1/assessment", tags=["assessment"])

SupervisorActor = Annotated[Actor, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))]
ERRORS: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DRILL_LIMIT = 5000

UNIT_NAMES = {UnitKind.DEPARTMENT: "承办单位", UnitKind.DISTRICT: "区县", UnitKind.STREET: "街道"}
LEVEL_NAMES = {"red": "红牌", "yellow": "黄牌", "green": "", None: ""}
TREND_NAMES = {"up": "↑", "down": "↓", "flat": "→", None: ""}
WEIGHT_NAMES = {
    "accept_on_time_rate": "签收及时率",
    "closure_on_time_rate": "按时办结率",
    "satisfaction_rate": "满意率",
    "unjustified_return_rate": "退单率（不含合理退单）",
    "extension_rate": "延期率",
    "repeat_rate": "重复诉求率",
    "escalation_rate": "督办率（督办次数/派单量）",
}
# (key, heading, kind) of the export's columns, in the order a 12345 centre's report lists them.
EXPORT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("rank", "排名", "int"),
    ("name", "单位名称", "text"),
    ("code", "单位编码", "text"),
    ("received", "受理量", "int"),
    ("dispatches", "派单量", "int"),
    ("accept_on_time_rate", "签收及时率", "rate"),
    ("closure_on_time_rate", "按时办结率", "rate"),
    ("satisfaction_rate", "满意率", "rate"),
    ("return_rate", "退单率", "rate"),
    ("justified_returns", "合理退单数", "int"),
    ("extension_rate", "延期率", "rate"),
    ("repeat_rate", "重复诉求率", "rate"),
    ("escalations", "督办次数", "int"),
    ("score", "综合得分", "score"),
    ("level", "考核等级", "level"),
    ("previous_score", "上期得分", "score"),
    ("trend", "环比", "trend"),
)


class FiguresRead(BaseModel):
    received: int
    dispatches: int
    accepted_on_time: int
    accepted_late: int
    replied_on_time: int
    replied_late: int
    satisfied: int
    answered: int
    returns: int
    justified_returns: int
    unjustified_returns: int
    pending_returns: int
    extended: int
    closed: int
    repeated: int
    escalations: int
    accept_on_time_rate: float | None
    closure_on_time_rate: float | None
    satisfaction_rate: float | None
    return_rate: float | None
    unjustified_return_rate: float | None
    extension_rate: float | None
    repeat_rate: float | None
    escalation_rate: float | None
    score: float | None
    previous_score: float | None
    trend: str | None


class UnitRead(FiguresRead):
    code: str
    name: str
    rank: int | None
    level: str | None
    previous_rank: int | None


class PeriodRead(BaseModel):
    date_from: date
    date_to: date


class PolicyRead(BaseModel):
    weights: dict[str, float]
    red_below: float
    yellow_below: float
    repeat_window_days: int


class ScorecardRead(BaseModel):
    date_from: date
    date_to: date
    previous: PeriodRead
    unit: UnitKind
    policy: PolicyRead
    rows: list[UnitRead]
    total: FiguresRead
    red: list[str]
    yellow: list[str]


class DrillOrderRead(BaseModel):
    number: str
    outcome: str


class DrillDownRead(BaseModel):
    date_from: date
    date_to: date
    unit: UnitKind
    code: str | None
    figure: Figure
    count: int
    orders: list[DrillOrderRead]


Month = Annotated[
    str | None,
    Query(pattern=r"^\d{4}-\d{2}$", description="a calendar month, YYYY-MM (instead of dates)"),
]
DateFrom = Annotated[date | None, Query(description="first local date")]
DateTo = Annotated[date | None, Query(description="last local date, included")]
Unit = Annotated[UnitKind, Query(description="rank departments, districts or streets")]


def _period(
    month: str | None, date_from: date | None, date_to: date | None, now: datetime
) -> statistics.Period:
    if month is not None:
        if date_from is not None or date_to is not None:
            raise InvalidInput("give either month or date_from/date_to, not both", field="month")
        return assessment.month_period(month)
    if date_from is None and date_to is None:
        return assessment.month_period(now.astimezone(DEFAULT_CALENDAR.tz).strftime("%Y-%m"))
    today = now.astimezone(DEFAULT_CALENDAR.tz).date()
    first = date_from or (date_to or today).replace(day=1)
    return statistics.make_period(first, date_to or today)


def _scorecard(
    db_session: DbSession, unit: UnitKind, period: statistics.Period, now: datetime
) -> assessment.Scorecard:
    return assessment.scorecard(
        db_session=db_session,
        period=period,
        now=now,
        unit=unit,
        policy=get_settings().assessment_policy,
    )


@router.get("/scorecard", response_model=ScorecardRead, responses=ERRORS)
def get_scorecard(
    db_session: DbSession,
    actor: SupervisorActor,
    unit: Unit = UnitKind.DEPARTMENT,
    month: Month = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
) -> ScorecardRead:
    """Figures, score, rank, red/yellow lists and the trend of every unit in the period."""
    now = utcnow()
    card = _scorecard(db_session, unit, _period(month, date_from, date_to, now), now)
    return ScorecardRead.model_validate(card.to_dict())


@router.get("/drill-down", response_model=DrillDownRead, responses=ERRORS)
def get_drill_down(
    db_session: DbSession,
    actor: SupervisorActor,
    figure: Annotated[Figure, Query(description="the figure whose orders to list")],
    unit: Unit = UnitKind.DEPARTMENT,
    code: Annotated[
        str | None, Query(max_length=32, description="the unit's code (none: all units)")
    ] = None,
    month: Month = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    limit: Annotated[int, Query(ge=1, le=DRILL_LIMIT)] = 500,
) -> DrillDownRead:
    """The orders behind one figure of one unit, each with how it counted (e.g. on_time)."""
    now = utcnow()
    period = _period(month, date_from, date_to, now)
    facts = assessment.drill_down(
        db_session=db_session,
        period=period,
        now=now,
        unit=unit,
        figure=figure,
        code=code,
        policy=get_settings().assessment_policy,
    )
    return DrillDownRead(
        date_from=period.date_from,
        date_to=period.date_to,
        unit=unit,
        code=code,
        figure=figure,
        count=len(facts),
        orders=[DrillOrderRead(number=f.number, outcome=f.outcome) for f in facts[:limit]],
    )


def _cells(row: dict[str, Any]) -> list[Any]:
    cells: list[Any] = []
    for key, _, kind in EXPORT_COLUMNS:
        value = row.get(key)
        if kind == "level":
            cells.append(LEVEL_NAMES.get(value, ""))
        elif kind == "trend":
            cells.append(TREND_NAMES.get(value, ""))
        elif kind == "text":
            cells.append(spreadsheet_text(str(value or "")))
        else:
            cells.append(value)
    return cells


def workbook_bytes(card: assessment.Scorecard) -> bytes:
    """The scorecard as an .xlsx: the ranking (and a 合计 row), then the definitions used."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None  # a new workbook has one sheet
    sheet.title = "考核排名"
    sheet.append([heading for _, heading, _ in EXPORT_COLUMNS])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(horizontal="center")
    fills = {
        "red": PatternFill("solid", fgColor="F8D7DA"),
        "yellow": PatternFill("solid", fgColor="FFF3CD"),
    }
    for row in card.rows:
        sheet.append(_cells(row))
        if row["level"] in fills:
            for cell in sheet[sheet.max_row]:
                cell.fill = fills[row["level"]]
    sheet.append(_cells({**card.total, "name": "合计", "code": ""}))
    for index, (_, heading, kind) in enumerate(EXPORT_COLUMNS, start=1):
        letter = sheet.cell(row=1, column=index).column_letter
        sheet.column_dimensions[letter].width = (
            24 if kind == "text" else max(10, len(heading) * 2 + 2)
        )
        if kind in ("rate", "score"):
            for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.number_format = "0.00%" if kind == "rate" else "0.00"
    sheet.freeze_panes = "A2"
    notes = book.create_sheet("指标说明")
    unit = UnitKind(card.unit)
    notes.append(["考核对象", UNIT_NAMES[unit]])
    notes.append(["统计时段", f"{card.date_from} 至 {card.date_to}"])
    notes.append(["对比时段", f"{card.previous_from} 至 {card.previous_to}"])
    notes.append(["红牌线（综合得分低于）", card.policy["red_below"]])
    notes.append(["黄牌线（综合得分低于）", card.policy["yellow_below"]])
    notes.append(["重复诉求认定（办结后天数）", card.policy["repeat_window_days"]])
    for name, weight in card.policy["weights"].items():
        notes.append([f"权重：{WEIGHT_NAMES.get(name, name)}", weight])
    notes.column_dimensions["A"].width = 36
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@router.get(
    "/export.xlsx",
    response_class=Response,
    responses={**ERRORS, 200: {"content": {XLSX: {}}, "description": "the scorecard as .xlsx"}},
)
def export_xlsx(
    db_session: DbSession,
    actor: SupervisorActor,
    unit: Unit = UnitKind.DEPARTMENT,
    month: Month = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
) -> Response:
    """The scorecard as an Excel workbook with the usual Chinese column headings; audited."""
    now = utcnow()
    period = _period(month, date_from, date_to, now)
    card = _scorecard(db_session, unit, period, now)
    audit.record(
        db_session=db_session,
        actor=actor,
        action="assessment.export",
        target_type="assessment",
        detail={
            "unit": unit.value,
            "date_from": period.date_from.isoformat(),
            "date_to": period.date_to.isoformat(),
            "rows": len(card.rows),
        },
        at=now,
    )
    filename = f"assessment-{unit.value}-{period.date_from}-{period.date_to}.xlsx"
    return Response(
        workbook_bytes(card),
        media_type=XLSX,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
