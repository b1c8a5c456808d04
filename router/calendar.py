"""Working-day calendar: Chinese public holidays, adjusted working days (调休) and office hours.

Work-order deadlines are counted in working time, so this module turns "2 working hours" or
"5 working days" into an exact, timezone-aware instant, and back into "share of the allowed time
used" for the 80 % warning. It is pure: no clock, no I/O; callers pass every instant explicitly.

Sources of truth, strongest first:

1. ``extra_workdays`` / ``extra_holidays`` given to :class:`WorkingCalendar` (a city's local
   holiday, a late government notice the package does not know yet);
2. the maintained ``chinesecalendar`` package (holidays and 调休 working Saturdays/Sundays);
3. outside the years the package knows: Monday-Friday are working days (see
   :meth:`WorkingCalendar.is_working_day`); :meth:`WorkingCalendar.covers` tells callers when
   this fallback is in use so they can alert operators to upgrade the package.

Every public function takes and returns timezone-aware datetimes (naive ones raise ValueError);
results are expressed in the calendar's timezone (Asia/Shanghai by default).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

import chinese_calendar

__all__ = [
    "DEFAULT_CALENDAR",
    "DEFAULT_CALLING_HOURS",
    "DEFAULT_TIMEZONE",
    "OFFICE_HOURS_CONTINUOUS",
    "OFFICE_HOURS_SPLIT",
    "DeadlineUnit",
    "WorkingCalendar",
    "add_calendar_hours",
    "add_working_days",
    "add_working_hours",
    "deadline_for",
    "elapsed_share",
    "is_working_day",
    "next_calling_time",
    "working_time_between",
]

logger = logging.getLogger(__name__)

Window = tuple[time, time]
"""One daily window [start, end) in local wall-clock time; never crosses midnight."""

WindowSpec = Sequence[tuple[time | str, time | str]]
"""Windows as configured: ``time`` objects or ``"HH:MM"`` strings."""

OFFICE_HOURS_SPLIT: tuple[Window, ...] = ((time(9), time(12)), (time(13, 30), time(17, 30)))
"""Default office hours with a lunch break: 7 working hours a day."""

OFFICE_HOURS_CONTINUOUS: tuple[Window, ...] = ((time(9), time(17, 30)),)
"""A single 09:00-17:30 window: 8.5 working hours a day."""

DEFAULT_CALLING_HOURS: tuple[Window, ...] = ((time(9), time(20)),)
"""When satisfaction callbacks may be placed."""

DEFAULT_TIMEZONE = "Asia/Shanghai"


class DeadlineUnit(StrEnum):
    """Units of a category's handling deadline (``Category.deadline_unit``)."""

    WORKING_DAYS = "working_days"
    WORKING_HOURS = "working_hours"
    HOURS = "hours"
    """Calendar hours, around the clock: urgent matters (water cut, gas smell)."""


@lru_cache(maxsize=8192)
def _package_is_workday(day: date) -> bool | None:
    """What chinesecalendar says about ``day``, or None when the year is outside its data."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None


_warned_years: set[int] = set()


class WorkingCalendar:
    """Working days, office hours and calling hours of one hotline centre.

    ``__init__`` only validates and stores configuration; instances are immutable by convention
    and safe to share between threads.

    Args:
        office_hours: daily office windows, sorted and non-overlapping, e.g.
            ``[("09:00", "12:00"), ("13:30", "17:30")]``. Working time is counted only inside them.
        extra_holidays: dates that are not working days whatever the package says
            (a local holiday).
        extra_workdays: dates that are working days whatever the package says.
            A date may not be in both sets.
        timezone: IANA name or tzinfo; results are expressed in it.
        calling_hours: daily windows in which satisfaction callbacks may be placed.
        calling_on_working_days_only: place callbacks on working days only
            (default: any day of the week).
    """

    def __init__(
        self,
        *,
        office_hours: WindowSpec = OFFICE_HOURS_SPLIT,
        extra_holidays: Iterable[date | str] = (),
        extra_workdays: Iterable[date | str] = (),
        timezone: str | tzinfo = DEFAULT_TIMEZONE,
        calling_hours: WindowSpec = DEFAULT_CALLING_HOURS,
        calling_on_working_days_only: bool = False,
    ) -> None:
        self.office_hours = _parse_windows(office_hours, what="office_hours")
        self.extra_holidays = frozenset(_parse_date(d) for d in extra_holidays)
        self.extra_workdays = frozenset(_parse_date(d) for d in extra_workdays)
        both = self.extra_holidays & self.extra_workdays
        if both:
            listed = ", ".join(d.isoformat() for d in sorted(both))
            raise ValueError(f"dates both in extra_holidays and extra_workdays: {listed}")
        self.tz: tzinfo = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        self.calling_hours = _parse_windows(calling_hours, what="calling_hours")
        self.calling_on_working_days_only = calling_on_working_days_only

    def __repr__(self) -> str:
        return (
            f"WorkingCalendar(office_hours={_format_windows(self.office_hours)}, "
            f"extra_holidays={len(self.extra_holidays)}, "
            f"extra_workdays={len(self.extra_workdays)}, tz={self.tz})"
        )

    # -- days ---------------------------------------------------------------------------------

    def is_working_day(self, d: date) -> bool:
        """Whether ``d`` is a working day.

        Configuration overrides win; then chinesecalendar (public holidays and 调休 working
        weekends). **Fallback:** for a year the package has no data for (it only knows years
        whose holiday schedule the State Council has published), Monday-Friday are working days
        and Saturday/Sunday are not; a warning is logged once per year and :meth:`covers`
        returns False. An aware datetime is reduced to its date in the calendar's timezone.
        """
        day = self._as_date(d)
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        known = _package_is_workday(day)
        if known is not None:
            return known
        if day.year not in _warned_years:
            _warned_years.add(day.year)
            logger.warning(
                "chinesecalendar has no data for %d; treating Monday-Friday as working days",
                day.year,
            )
        return day.weekday() < 5

    def covers(self, d: date) -> bool:
        """Whether the holiday package knows ``d``'s year (False: the weekday fallback applies)."""
        return _package_is_workday(self._as_date(d)) is not None

    # -- adding time --------------------------------------------------------------------------

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The instant after ``hours`` of office time on working days have elapsed from ``start``.

        Time outside office hours or on non-working days does not count. A deadline that is used
        up exactly at the end of a window is that window's end (12:00, not 13:30). ``hours=0``
        returns ``start`` itself. Example (default office hours): dispatched Friday 16:30 with a
        2-working-hour sign-for deadline -> due Monday 10:00.
        """
        current = self._local(start, "start")
        remaining = _duration(hours, "hours")
        if not remaining:
            return current
        day = current.date()
        while True:
            for window_start, window_end in self._office_windows(day):
                lower = max(window_start, current)
                if lower >= window_end:
                    continue
                available = window_end - lower
                if remaining <= available:
                    return lower + remaining
                remaining -= available
            day += timedelta(days=1)

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """End of office hours on the ``days``-th working day after the day of ``start``.

        The day of receipt is never counted (as in Chinese administrative practice: 期间开始的
        当日不计入), whatever the hour: received Monday 10:00 with 1 working day -> due Tuesday
        17:30; received Friday evening, Saturday or Sunday -> due Monday 17:30 (or the next
        working day if Monday is a holiday). ``days=0`` means "the same working day": the close of
        office hours of ``start``'s day if that is a working day and office hours have not ended
        yet, otherwise of the next working day.
        """
        current = self._local(start, "start")
        if isinstance(days, bool) or not isinstance(days, int):
            raise ValueError(f"days must be an integer, got {days!r}")
        if days < 0:
            raise ValueError(f"days must not be negative, got {days}")
        day = current.date()
        if days == 0:
            while not (self.is_working_day(day) and current < self._close_of_business(day)):
                day += timedelta(days=1)
            return self._close_of_business(day)
        counted = 0
        while counted < days:
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return self._close_of_business(day)

    def add_calendar_hours(self, start: datetime, hours: float) -> datetime:
        """``start`` plus ``hours`` of elapsed (absolute) time, around the clock."""
        current = self._local(start, "start")
        return (current.astimezone(UTC) + _duration(hours, "hours")).astimezone(self.tz)

    def deadline_for(self, start: datetime, value: float, unit: str) -> datetime:
        """The deadline ``value`` ``unit`` after ``start``; ``unit`` is a :class:`DeadlineUnit`."""
        kind = _parse_unit(unit)
        if kind is DeadlineUnit.WORKING_DAYS:
            if isinstance(value, float) and value.is_integer():
                return self.add_working_days(start, int(value))
            return self.add_working_days(start, value)  # type: ignore[arg-type]  # checked there
        if kind is DeadlineUnit.WORKING_HOURS:
            return self.add_working_hours(start, value)
        return self.add_calendar_hours(start, value)

    # -- measuring time -----------------------------------------------------------------------

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Office time on working days within [start, end); zero if ``end <= start``."""
        lower = self._local(start, "start")
        upper = self._local(end, "end")
        total = timedelta(0)
        if upper <= lower:
            return total
        day = lower.date()
        while day <= upper.date():
            for window_start, window_end in self._office_windows(day):
                overlap = min(window_end, upper) - max(window_start, lower)
                if overlap > timedelta(0):
                    total += overlap
            day += timedelta(days=1)
        return total

    def elapsed_share(
        self,
        start: datetime,
        deadline: datetime,
        now: datetime,
        *,
        unit: str = DeadlineUnit.WORKING_DAYS,
    ) -> float:
        """Share of the allowed time between ``start`` and ``deadline`` used up at ``now``.

        For working units both the allowance and the use are office time on working days (a
        weekend does not bring a deadline closer); for ``"hours"`` they are calendar time.
        0.0 before ``start``; may exceed 1.0 once working time after the deadline has passed,
        so test ``now > deadline`` for "overdue" and the share for the warning threshold.
        A zero allowance counts as 1.0 from the deadline on.
        """
        kind = _parse_unit(unit)
        if kind is DeadlineUnit.HOURS:
            begin = self._local(start, "start")
            allowed = self._local(deadline, "deadline") - begin
            used = max(self._local(now, "now") - begin, timedelta(0))
        else:
            allowed = self.working_time_between(start, deadline)
            used = self.working_time_between(start, now)
        if allowed <= timedelta(0):
            return 1.0 if self._local(now, "now") >= self._local(deadline, "deadline") else 0.0
        return used / allowed

    # -- callbacks ----------------------------------------------------------------------------

    def next_calling_time(
        self,
        at: datetime,
        *,
        calling_hours: WindowSpec | None = None,
        working_days_only: bool | None = None,
    ) -> datetime:
        """The earliest instant at or after ``at`` at which a callback may be placed.

        ``at`` itself if it is inside a calling window (window ends are exclusive), else the start
        of the next window. Both options default to the calendar's configuration.
        """
        current = self._local(at, "at")
        windows = (
            self.calling_hours
            if calling_hours is None
            else _parse_windows(calling_hours, what="calling_hours")
        )
        only_working = (
            self.calling_on_working_days_only if working_days_only is None else working_days_only
        )
        day = current.date()
        while True:
            if not only_working or self.is_working_day(day):
                for window_start, window_end in windows:
                    opens = datetime.combine(day, window_start, tzinfo=self.tz)
                    closes = datetime.combine(day, window_end, tzinfo=self.tz)
                    if current < closes:
                        return max(current, opens)
            day += timedelta(days=1)

    # -- helpers ------------------------------------------------------------------------------

    def _local(self, value: datetime, name: str) -> datetime:
        if not isinstance(value, datetime):
            raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
        return value.astimezone(self.tz)

    def _as_date(self, value: date) -> date:
        if isinstance(value, datetime):
            return self._local(value, "date").date()
        if not isinstance(value, date):
            raise TypeError(f"expected a date, got {type(value).__name__}")
        return value

    def _office_windows(self, day: date) -> list[tuple[datetime, datetime]]:
        if not self.is_working_day(day):
            return []
        return [
            (
                datetime.combine(day, start, tzinfo=self.tz),
                datetime.combine(day, end, tzinfo=self.tz),
            )
            for start, end in self.office_hours
        ]

    def _close_of_business(self, day: date) -> datetime:
        return datetime.combine(day, self.office_hours[-1][1], tzinfo=self.tz)


def _parse_time(value: time | str, what: str) -> time:
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {value!r} is not a time like '09:00'") from None


def _parse_windows(spec: WindowSpec, *, what: str) -> tuple[Window, ...]:
    windows = tuple((_parse_time(s, what), _parse_time(e, what)) for s, e in spec)
    if not windows:
        raise ValueError(f"{what} must contain at least one window")
    for start, end in windows:
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError(f"{what}: windows are local wall-clock times, without tzinfo")
        if not start < end:
            raise ValueError(f"{what}: window {start}-{end} must start before it ends")
    for (_, previous_end), (next_start, _) in pairwise(windows):
        if next_start < previous_end:
            raise ValueError(f"{what}: windows must be sorted and must not overlap")
    return windows


def _format_windows(windows: tuple[Window, ...]) -> str:
    return "[" + ", ".join(f"{s:%H:%M}-{e:%H:%M}" for s, e in windows) + "]"


def _parse_date(value: date | str) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"expected a date, got a datetime: {value.isoformat()}")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a date like '2025-10-01'") from None


def _duration(hours: float, name: str) -> timedelta:
    if isinstance(hours, bool) or not isinstance(hours, int | float):
        raise ValueError(f"{name} must be a number, got {hours!r}")
    if not math.isfinite(hours) or hours < 0:
        raise ValueError(f"{name} must be a finite, non-negative number, got {hours!r}")
    return timedelta(hours=hours)


def _parse_unit(unit: str) -> DeadlineUnit:
    try:
        return DeadlineUnit(unit)
    except ValueError:
        allowed = ", ".join(repr(u.value) for u in DeadlineUnit)
        raise ValueError(f"unknown deadline unit {unit!r}; expected one of {allowed}") from None


DEFAULT_CALENDAR = WorkingCalendar()
"""National holidays only, default office and calling hours, Asia/Shanghai. Services with local
holidays or other hours build their own :class:`WorkingCalendar` from settings and pass it on."""


def is_working_day(d: date) -> bool:
    """:meth:`WorkingCalendar.is_working_day` of :data:`DEFAULT_CALENDAR`."""
    return DEFAULT_CALENDAR.is_working_day(d)


def add_working_hours(start: datetime, hours: float) -> datetime:
    """:meth:`WorkingCalendar.add_working_hours` of :data:`DEFAULT_CALENDAR`."""
    return DEFAULT_CALENDAR.add_working_hours(start, hours)


def add_working_days(start: datetime, days: int) -> datetime:
    """:meth:`WorkingCalendar.add_working_days` of :data:`DEFAULT_CALENDAR`."""
    return DEFAULT_CALENDAR.add_working_days(start, days)


def add_calendar_hours(start: datetime, hours: float) -> datetime:
    """:meth:`WorkingCalendar.add_calendar_hours` of :data:`DEFAULT_CALENDAR`."""
    return DEFAULT_CALENDAR.add_calendar_hours(start, hours)


def deadline_for(start: datetime, value: float, unit: str) -> datetime:
    """:meth:`WorkingCalendar.deadline_for` of :data:`DEFAULT_CALENDAR`."""
    return DEFAULT_CALENDAR.deadline_for(start, value, unit)


def working_time_between(start: datetime, end: datetime) -> timedelta:
    """:meth:`WorkingCalendar.working_time_between` of :data:`DEFAULT_CALENDAR`."""
    return DEFAULT_CALENDAR.working_time_between(start, end)


def elapsed_share(
    start: datetime, deadline: datetime, now: datetime, *, unit: str = DeadlineUnit.WORKING_DAYS
) -> float:
    """:meth:`WorkingCalendar.elapsed_share` of :data:`DEFAULT_CALENDAR`."""
    return DEFAULT_CALENDAR.elapsed_share(start, deadline, now, unit=unit)


def next_calling_time(
    at: datetime,
    *,
    calling_hours: WindowSpec | None = None,
    working_days_only: bool | None = None,
) -> datetime:
    """:meth:`WorkingCalendar.next_calling_time` of :data:`DEFAULT_CALENDAR`."""
    return DEFAULT_CALENDAR.next_calling_time(
        at, calling_hours=calling_hours, working_days_only=working_days_only
    )
