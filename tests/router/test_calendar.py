"""Working-day calendar: holidays, 调休 working weekends, overrides, office hours, deadlines."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from router import calendar as cal
from router.calendar import DeadlineUnit, WorkingCalendar

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A frozen instant in Asia/Shanghai; tests never read the real clock."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


# -- working days -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2025, 9, 26), True),  # Friday
        (date(2025, 9, 27), False),  # Saturday
        (date(2025, 9, 28), True),  # Sunday, adjusted working day for National Day
        (date(2025, 10, 1), False),  # National Day
        (date(2025, 10, 6), False),  # Mid-autumn Festival, a Monday inside the golden week
        (date(2025, 10, 8), False),  # last day of the holiday
        (date(2025, 10, 9), True),
        (date(2025, 10, 11), True),  # Saturday, adjusted working day
        (date(2025, 10, 12), False),  # Sunday
        (date(2026, 2, 14), True),  # Saturday, adjusted working day for Spring Festival
        (date(2026, 2, 16), False),  # Spring Festival eve (Monday)
        (date(2026, 2, 23), False),  # last day of the Spring Festival holiday (Monday)
        (date(2026, 2, 24), True),
        (date(2026, 2, 28), True),  # Saturday, adjusted working day
    ],
)
def test_is_working_day_follows_public_holidays_and_adjusted_weekends(day, working):
    assert cal.is_working_day(day) is working


def test_is_working_day_reduces_an_aware_datetime_to_its_local_date():
    # 2025-09-30 20:00 UTC is already 2025-10-01 04:00 in Shanghai: National Day.
    assert cal.is_working_day(datetime(2025, 9, 30, 20, tzinfo=UTC)) is False
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.is_working_day(datetime(2025, 9, 30, 20))


def test_extra_holiday_overrides_the_package():
    local = WorkingCalendar(extra_holidays=[date(2025, 10, 10), "2025-10-11"])
    assert cal.is_working_day(date(2025, 10, 10)) is True
    assert local.is_working_day(date(2025, 10, 10)) is False
    assert local.is_working_day(date(2025, 10, 11)) is False
    # Received Thursday 2025-10-09: the local holiday and the weekend push the deadline to Monday.
    assert local.add_working_days(at(2025, 10, 9, 10), 1) == at(2025, 10, 13, 17, 30)
    assert cal.add_working_days(at(2025, 10, 9, 10), 1) == at(2025, 10, 10, 17, 30)


def test_extra_workday_overrides_the_package():
    local = WorkingCalendar(extra_workdays=[date(2025, 10, 8)])
    assert local.is_working_day(date(2025, 10, 8)) is True
    assert local.add_working_days(at(2025, 9, 30, 10), 1) == at(2025, 10, 8, 17, 30)


def test_a_date_cannot_be_both_extra_holiday_and_extra_workday():
    with pytest.raises(ValueError, match="2025-10-10"):
        WorkingCalendar(extra_holidays=[date(2025, 10, 10)], extra_workdays=[date(2025, 10, 10)])


@pytest.mark.parametrize("bad", ["10/10/2025", datetime(2025, 10, 10, tzinfo=SHANGHAI)])
def test_override_dates_must_be_dates(bad):
    with pytest.raises(ValueError):
        WorkingCalendar(extra_holidays=[bad])


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2003, 1, 1), True),  # Wednesday; before the package's data: no New Year holiday
        (date(2003, 1, 4), False),  # Saturday
        (date(2099, 1, 2), True),  # Friday, far beyond the package's data
        (date(2099, 1, 3), False),  # Saturday
    ],
)
def test_outside_the_package_years_weekdays_are_working_days(day, working, caplog):
    calendar = WorkingCalendar()
    with caplog.at_level(logging.WARNING, logger="router.calendar"):
        assert calendar.is_working_day(day) is working
    assert calendar.covers(day) is False


def test_covers_the_years_the_package_knows():
    assert cal.DEFAULT_CALENDAR.covers(date(2025, 10, 1)) is True


def test_overrides_apply_outside_the_package_years():
    local = WorkingCalendar(extra_holidays=[date(2099, 1, 2)])
    assert local.is_working_day(date(2099, 1, 2)) is False
    # Thursday 2099-01-01 + 1 working day skips the local holiday and the weekend.
    assert local.add_working_days(at(2099, 1, 1, 10), 1) == at(2099, 1, 5, 17, 30)


# -- working hours ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        (at(2025, 9, 29, 9), 2, at(2025, 9, 29, 11)),  # inside the morning window
        (at(2025, 9, 29, 11), 2, at(2025, 9, 29, 14, 30)),  # across the lunch break
        (at(2025, 9, 29, 10), 2, at(2025, 9, 29, 12)),  # ends exactly at the window's end
        (at(2025, 9, 29, 12, 30), 1, at(2025, 9, 29, 14, 30)),  # starts during lunch
        (at(2025, 9, 29, 7), 1.5, at(2025, 9, 29, 10, 30)),  # starts before office hours
        (at(2025, 9, 29, 17), 2, at(2025, 9, 30, 10, 30)),  # overnight
        (at(2025, 9, 29, 9), 7, at(2025, 9, 29, 17, 30)),  # one whole working day
        (at(2025, 9, 29, 9), 7.5, at(2025, 9, 30, 9, 30)),
        # Friday before the 调休 Sunday: Saturday is skipped, Sunday 28 September is worked.
        (at(2025, 9, 26, 17), 2, at(2025, 9, 28, 10, 30)),
        # The eve of National Day: the golden week (Oct 1-8) does not count.
        (at(2025, 9, 30, 16), 2, at(2025, 10, 9, 9, 30)),
        (at(2025, 10, 3, 15), 2, at(2025, 10, 9, 11)),  # dispatched during the holiday
        # Spring Festival 2026: Saturday Feb 14 is worked, Feb 15-23 are not.
        (at(2026, 2, 13, 17), 2, at(2026, 2, 14, 10, 30)),
        (at(2026, 2, 14, 17), 2, at(2026, 2, 24, 10, 30)),
        (at(2025, 9, 29, 15), 0, at(2025, 9, 29, 15)),
        (at(2025, 9, 27, 15), 0, at(2025, 9, 27, 15)),  # zero hours: no rounding to office time
    ],
)
def test_add_working_hours_counts_only_office_time_on_working_days(start, hours, due):
    assert cal.add_working_hours(start, hours) == due


def test_add_working_hours_with_a_single_window():
    calendar = WorkingCalendar(office_hours=[("09:00", "17:30")])
    assert calendar.add_working_hours(at(2025, 9, 29, 11), 2) == at(2025, 9, 29, 13)
    assert calendar.add_working_hours(at(2025, 9, 29, 17), 2) == at(2025, 9, 30, 10, 30)


def test_add_working_hours_accepts_other_timezones_and_answers_in_shanghai_time():
    start = datetime(2025, 9, 29, 1, tzinfo=UTC)  # 09:00 in Shanghai
    due = cal.add_working_hours(start, 2)
    assert due == at(2025, 9, 29, 11)
    assert due.tzinfo == SHANGHAI
    assert due.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize("hours", [-1, float("nan"), float("inf"), True, "2"])
def test_add_working_hours_rejects_bad_amounts(hours):
    with pytest.raises(ValueError):
        cal.add_working_hours(at(2025, 9, 29, 9), hours)


# -- working days -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (at(2025, 9, 29, 10), 1, at(2025, 9, 30, 17, 30)),  # the day of receipt is not counted
        (at(2025, 9, 29, 23, 59), 1, at(2025, 9, 30, 17, 30)),
        (at(2025, 9, 29, 6), 1, at(2025, 9, 30, 17, 30)),  # even before office hours
        (at(2025, 9, 26, 20), 1, at(2025, 9, 28, 17, 30)),  # Friday evening, 调休 Sunday
        (at(2025, 10, 10, 20), 1, at(2025, 10, 11, 17, 30)),  # Friday evening, 调休 Saturday
        (at(2025, 10, 17, 20), 1, at(2025, 10, 20, 17, 30)),  # Friday evening, plain weekend
        (at(2025, 10, 18, 10), 1, at(2025, 10, 20, 17, 30)),  # Saturday
        (at(2025, 9, 30, 10), 1, at(2025, 10, 9, 17, 30)),  # across National Day
        (at(2025, 9, 30, 10), 5, at(2025, 10, 14, 17, 30)),  # Oct 9, 10, 11 (Sat), 13, 14
        (at(2025, 10, 3, 10), 1, at(2025, 10, 9, 17, 30)),  # received during the holiday
        (at(2026, 2, 13, 10), 1, at(2026, 2, 14, 17, 30)),  # Spring Festival 调休 Saturday
        (at(2026, 2, 13, 10), 2, at(2026, 2, 24, 17, 30)),
        (at(2026, 2, 18, 10), 3, at(2026, 2, 26, 17, 30)),
        # days=0: the same working day if still open, else the next one.
        (at(2025, 9, 29, 10), 0, at(2025, 9, 29, 17, 30)),
        (at(2025, 9, 29, 17, 30), 0, at(2025, 9, 30, 17, 30)),
        (at(2025, 10, 1, 10), 0, at(2025, 10, 9, 17, 30)),
        # Outside the package's years: Mon-Fri fallback (2027-01-01 is a Friday).
        (at(2027, 1, 1, 10), 1, at(2027, 1, 4, 17, 30)),
    ],
)
def test_add_working_days_ends_at_close_of_office_on_the_nth_working_day(start, days, due):
    assert cal.add_working_days(start, days) == due


@pytest.mark.parametrize("days", [-1, 1.5, True, "1"])
def test_add_working_days_rejects_bad_amounts(days):
    with pytest.raises(ValueError):
        cal.add_working_days(at(2025, 9, 29, 10), days)


# -- calendar hours and dispatch on units -------------------------------------------------------


def test_add_calendar_hours_runs_around_the_clock_and_through_holidays():
    assert cal.add_calendar_hours(at(2025, 9, 30, 22), 24) == at(2025, 10, 1, 22)
    assert cal.add_calendar_hours(at(2025, 10, 1, 23), 1.5) == at(2025, 10, 2, 0, 30)


@pytest.mark.parametrize(
    ("value", "unit", "due"),
    [
        (1, "working_days", at(2025, 9, 28, 17, 30)),
        (1.0, "working_days", at(2025, 9, 28, 17, 30)),
        (2, "working_hours", at(2025, 9, 28, 11)),
        (2, DeadlineUnit.WORKING_HOURS, at(2025, 9, 28, 11)),
        (24, "hours", at(2025, 9, 27, 20)),
    ],
)
def test_deadline_for_dispatches_on_the_unit(value, unit, due):
    assert cal.deadline_for(at(2025, 9, 26, 20), value, unit) == due


def test_deadline_for_rejects_an_unknown_unit():
    with pytest.raises(ValueError, match="unknown deadline unit 'days'"):
        cal.deadline_for(at(2025, 9, 26, 20), 1, "days")


# -- elapsed share ------------------------------------------------------------------------------


def test_elapsed_share_counts_working_time_only():
    start = at(2025, 9, 30, 9)
    deadline = cal.add_working_days(start, 1)  # Oct 9 17:30: 7 h on Sept 30 + 7 h on Oct 9
    assert deadline == at(2025, 10, 9, 17, 30)
    assert cal.elapsed_share(start, deadline, at(2025, 9, 30, 17, 30)) == pytest.approx(0.5)
    # The whole golden week passes without using any of the allowance.
    assert cal.elapsed_share(start, deadline, at(2025, 10, 8, 23)) == pytest.approx(0.5)
    assert cal.elapsed_share(start, deadline, at(2025, 10, 9, 14, 42)) == pytest.approx(0.8)
    assert cal.elapsed_share(start, deadline, deadline) == pytest.approx(1.0)
    assert cal.elapsed_share(start, deadline, at(2025, 10, 10, 10)) > 1.0
    assert cal.elapsed_share(start, deadline, at(2025, 9, 29, 9)) == 0.0


def test_elapsed_share_in_calendar_hours():
    start = at(2025, 10, 1, 0)
    deadline = cal.deadline_for(start, 10, "hours")
    share = cal.elapsed_share(start, deadline, at(2025, 10, 1, 8), unit="hours")
    assert share == pytest.approx(0.8)
    assert cal.elapsed_share(start, deadline, at(2025, 9, 30, 8), unit="hours") == 0.0


def test_elapsed_share_with_no_allowance_is_all_or_nothing():
    start = at(2025, 9, 27, 10)  # Saturday: no working time until Sunday 28 09:00
    deadline = at(2025, 9, 27, 18)
    assert cal.elapsed_share(start, deadline, at(2025, 9, 27, 12)) == 0.0
    assert cal.elapsed_share(start, deadline, at(2025, 9, 27, 18)) == 1.0


def test_working_time_between():
    # Friday 11:00-12:00 and 13:30-17:30, nothing on Saturday, Sunday (调休) 09:00-10:00.
    friday, sunday = at(2025, 9, 26, 11), at(2025, 9, 28, 10)
    assert cal.working_time_between(friday, sunday) == timedelta(hours=6)
    assert cal.working_time_between(sunday, friday) == timedelta(0)


# -- calling hours ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (at(2025, 10, 1, 10), at(2025, 10, 1, 10)),  # any day by default, holidays included
        (at(2025, 10, 1, 7), at(2025, 10, 1, 9)),
        (at(2025, 10, 1, 20), at(2025, 10, 2, 9)),  # window ends are exclusive
        (at(2025, 10, 1, 23, 30), at(2025, 10, 2, 9)),
    ],
)
def test_next_calling_time_any_day(when, expected):
    assert cal.next_calling_time(when) == expected


def test_next_calling_time_on_working_days_only():
    assert cal.next_calling_time(at(2025, 9, 30, 21), working_days_only=True) == at(2025, 10, 9, 9)
    calendar = WorkingCalendar(calling_on_working_days_only=True)
    assert calendar.next_calling_time(at(2025, 9, 27, 10)) == at(2025, 9, 28, 9)


def test_next_calling_time_with_custom_windows():
    windows = [(time(9), time(12)), (time(14), time(20))]
    assert cal.next_calling_time(at(2025, 10, 1, 12), calling_hours=windows) == at(2025, 10, 1, 14)
    assert cal.next_calling_time(at(2025, 10, 1, 15), calling_hours=windows) == at(2025, 10, 1, 15)


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: cal.add_working_hours(datetime(2025, 9, 29, 9), 2),
        lambda: cal.add_working_days(datetime(2025, 9, 29, 9), 1),
        lambda: cal.add_calendar_hours(datetime(2025, 9, 29, 9), 1),
        lambda: cal.deadline_for(datetime(2025, 9, 29, 9), 1, "hours"),
        lambda: cal.working_time_between(at(2025, 9, 29, 9), datetime(2025, 9, 29, 10)),
        lambda: cal.elapsed_share(at(2025, 9, 29, 9), at(2025, 9, 30, 9), datetime(2025, 9, 29)),
        lambda: cal.next_calling_time(datetime(2025, 9, 29, 9)),
    ],
)
def test_naive_datetimes_are_rejected(call):
    with pytest.raises(ValueError, match="timezone-aware"):
        call()


@pytest.mark.parametrize(
    "office_hours",
    [
        [],
        [("12:00", "09:00")],
        [("09:00", "12:00"), ("11:00", "17:00")],
        [("13:30", "17:30"), ("09:00", "12:00")],
        [("9am", "5pm")],
    ],
)
def test_office_hours_must_be_sorted_non_overlapping_windows(office_hours):
    with pytest.raises(ValueError, match="office_hours"):
        WorkingCalendar(office_hours=office_hours)


def test_another_timezone_can_be_configured():
    urumqi = WorkingCalendar(timezone="Asia/Urumqi")  # UTC+6
    due = urumqi.add_working_hours(datetime(2025, 9, 29, 3, tzinfo=UTC), 1)  # 09:00 local
    assert due == datetime(2025, 9, 29, 10, tzinfo=ZoneInfo("Asia/Urumqi"))
