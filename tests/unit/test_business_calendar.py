"""Business-hours calendars: explicit timestamps around weekends, holidays, lunch breaks and the
Europe/Berlin DST changes, every validation error, and properties that must hold for any instants.
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from internal.sla.business_calendar import WEEKDAYS, BusinessCalendar, CalendarError

BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")
HOUR = 3600.0
US = timedelta(microseconds=1)

WORKWEEK = ("mon", "tue", "wed", "thu", "fri")
OFFICE_HOURS = {day: "09:00-17:00" for day in WORKWEEK}
LUNCH_HOURS = {day: "09:00-12:00,13:00-17:00" for day in WORKWEEK}

OFFICE = BusinessCalendar(
    "emea_office", "Europe/Berlin", OFFICE_HOURS, ["2026-12-25", "2026-12-26"]
)
LUNCH = BusinessCalendar("lunch", "Europe/Berlin", LUNCH_HOURS, [date(2026, 12, 25), "2027-01-01"])
ALL_DAY = BusinessCalendar("all_day", "Europe/Berlin", dict.fromkeys(WEEKDAYS, "00:00-24:00"), [])
# Sunday ranges that start, end or lie inside the hour skipped or repeated on Berlin's DST Sundays.
DST_EDGES = BusinessCalendar(
    "dst_edges",
    "Europe/Berlin",
    {"sun": "00:30-02:15,02:30-02:45,02:50-04:00", "wed": "10:00-11:00"},
    ["2026-07-01"],
)
NEW_YORK = BusinessCalendar(
    "nyc_weekend", "America/New_York", {"sat": "01:30-03:00", "sun": "00:00-24:00"}, []
)
CALENDARS = (OFFICE, LUNCH, ALL_DAY, DST_EDGES, NEW_YORK)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- explicit timestamps -------------------------------------------------------------------------


def test_normal_weekday_counts_only_opening_hours() -> None:
    tue = (2026, 11, 3)
    assert OFFICE.working_seconds(berlin(*tue, 10), berlin(*tue, 15)) == 5 * HOUR
    assert OFFICE.working_seconds(berlin(*tue, 7), berlin(*tue, 10)) == 1 * HOUR
    assert OFFICE.working_seconds(berlin(*tue, 16), berlin(*tue, 20)) == 1 * HOUR
    assert OFFICE.working_seconds(berlin(*tue), berlin(2026, 11, 4)) == 8 * HOUR
    assert OFFICE.add_working(berlin(*tue, 10), 2 * HOUR) == berlin(*tue, 12)


def test_counting_is_half_open_and_empty_when_end_is_not_after_start() -> None:
    tue_nine = berlin(2026, 11, 3, 9)
    assert OFFICE.working_seconds(tue_nine, tue_nine) == 0
    assert OFFICE.working_seconds(tue_nine, tue_nine - timedelta(hours=3)) == 0
    assert OFFICE.working_seconds(tue_nine, tue_nine + US) == 1e-6


def test_weekend_does_not_count() -> None:
    fri_4pm, mon_10am = berlin(2026, 11, 6, 16), berlin(2026, 11, 9, 10)
    assert OFFICE.working_seconds(fri_4pm, mon_10am) == 2 * HOUR
    assert OFFICE.working_seconds(berlin(2026, 11, 7, 9), berlin(2026, 11, 8, 17)) == 0
    assert OFFICE.add_working(fri_4pm, 2 * HOUR) == mon_10am


def test_add_working_from_outside_hours_starts_at_next_opening() -> None:
    saturday = berlin(2026, 11, 7, 12)
    assert OFFICE.add_working(saturday, 1) == berlin(2026, 11, 9, 9) + timedelta(seconds=1)


def test_holidays_do_not_count() -> None:
    # 2026-12-25 is a Friday and a holiday; the 26th is a holiday falling on a Saturday.
    assert OFFICE.working_seconds(berlin(2026, 12, 25), berlin(2026, 12, 26)) == 0
    thu_4pm, mon_10am = berlin(2026, 12, 24, 16), berlin(2026, 12, 28, 10)
    assert OFFICE.working_seconds(thu_4pm, mon_10am) == 2 * HOUR
    assert OFFICE.add_working(thu_4pm, 2 * HOUR) == mon_10am


def test_holidays_given_as_date_objects_count_like_iso_strings() -> None:
    assert LUNCH.working_seconds(berlin(2026, 12, 25), berlin(2026, 12, 26)) == 0
    assert LUNCH.working_seconds(berlin(2027, 1, 1), berlin(2027, 1, 2)) == 0
    assert LUNCH.holidays == frozenset({date(2026, 12, 25), date(2027, 1, 1)})


def test_holiday_is_a_local_date_not_a_utc_date() -> None:
    # 15:00 UTC on Christmas Eve is already midnight of the 25th in Tokyo.
    tokyo_cal = BusinessCalendar("t", "Asia/Tokyo", dict.fromkeys(WEEKDAYS, "00:00-24:00"), [])
    holiday = BusinessCalendar(
        "h", "Asia/Tokyo", dict.fromkeys(WEEKDAYS, "00:00-24:00"), ["2026-12-25"]
    )
    start, end = utc(2026, 12, 24, 15), utc(2026, 12, 25, 15)  # the 25th in Tokyo
    assert tokyo_cal.working_seconds(start, end) == 24 * HOUR
    assert holiday.working_seconds(start, end) == 0


def test_lunch_break_splits_the_day() -> None:
    wed = (2026, 11, 4)
    assert LUNCH.working_seconds(berlin(*wed), berlin(*wed, 23)) == 7 * HOUR
    assert LUNCH.working_seconds(berlin(*wed, 11), berlin(*wed, 14)) == 2 * HOUR
    assert LUNCH.working_seconds(berlin(*wed, 12), berlin(*wed, 13)) == 0
    assert LUNCH.add_working(berlin(*wed, 11, 30), HOUR) == berlin(*wed, 13, 30)


def test_add_working_returns_the_earliest_instant_at_the_end_of_a_range() -> None:
    wed = (2026, 11, 4)
    # The hour is complete at 12:00; resuming after lunch would not be the earliest instant.
    assert LUNCH.add_working(berlin(*wed, 11), HOUR) == berlin(*wed, 12)
    assert OFFICE.add_working(berlin(*wed, 9), 8 * HOUR) == berlin(*wed, 17)


def test_multi_week_gap_counts_every_working_day() -> None:
    mon, four_weeks_later = berlin(2026, 11, 2, 9), berlin(2026, 11, 30, 9)
    assert OFFICE.working_seconds(mon, four_weeks_later) == 4 * 40 * HOUR
    # 160 hours run out at the close of the fourth Friday, not at the next opening.
    assert OFFICE.add_working(mon, 160 * HOUR) == berlin(2026, 11, 27, 17)


def test_adjacent_ranges_and_a_range_ending_at_midnight_are_accepted() -> None:
    cal = BusinessCalendar("c", "Europe/Berlin", {"mon": " 09:00-12:00 , 12:00-24:00 "}, [])
    assert cal.working_seconds(berlin(2026, 11, 2), berlin(2026, 11, 3)) == 15 * HOUR
    assert cal.add_working(berlin(2026, 11, 2, 23), HOUR) == berlin(2026, 11, 3)


def test_spring_forward_day_has_23_hours() -> None:
    assert ALL_DAY.working_seconds(berlin(2026, 3, 29), berlin(2026, 3, 30)) == 23 * HOUR
    assert ALL_DAY.add_working(berlin(2026, 3, 29), 23 * HOUR) == berlin(2026, 3, 30)


def test_fall_back_day_has_25_hours() -> None:
    assert ALL_DAY.working_seconds(berlin(2026, 10, 25), berlin(2026, 10, 26)) == 25 * HOUR
    assert ALL_DAY.add_working(berlin(2026, 10, 25), 25 * HOUR) == berlin(2026, 10, 26)


def test_office_hours_keep_their_wall_clock_times_across_a_dst_change() -> None:
    # Friday closes at 16:00 UTC (CET), Monday opens at 07:00 UTC (CEST).
    fri_close, mon_open = utc(2026, 3, 27, 16), utc(2026, 3, 30, 7)
    assert OFFICE.working_seconds(utc(2026, 3, 27, 8), utc(2026, 3, 30, 15)) == 16 * HOUR
    assert OFFICE.add_working(fri_close - timedelta(hours=1), 2 * HOUR) == mon_open + timedelta(
        hours=1
    )


def test_range_partly_in_the_skipped_hour_keeps_only_the_part_that_exists() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST. "00:30-02:15" ends at the jump (1.5 h),
    # "02:30-02:45" does not exist at all, "02:50-04:00" starts at the jump (1 h).
    day = DST_EDGES.working_seconds(berlin(2026, 3, 29), berlin(2026, 3, 30))
    assert day == 2.5 * HOUR
    jump = utc(2026, 3, 29, 1)
    assert DST_EDGES.working_seconds(jump - timedelta(minutes=90), jump) == 1.5 * HOUR
    assert DST_EDGES.working_seconds(jump, jump + timedelta(hours=1)) == HOUR
    # A normal Sunday: 1 h 45 min + 15 min + 1 h 10 min.
    assert DST_EDGES.working_seconds(berlin(2026, 3, 22), berlin(2026, 3, 23)) == 3.0 * HOUR + 600


def test_range_ending_in_the_repeated_hour_ends_at_its_first_occurrence() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET. Ambiguous wall times are their first
    # occurrence (fold=0), so "00:30-02:15" is 00:30-02:15 CEST and "02:50-04:00" starts at
    # 02:50 CEST and runs through the repeated hour to 04:00 CET.
    assert DST_EDGES.working_seconds(berlin(2026, 10, 25), berlin(2026, 10, 26)) == (
        1.75 * HOUR + 0.25 * HOUR + (70 + 60) * 60
    )
    first_0215 = utc(2026, 10, 25, 0, 15)
    assert DST_EDGES.add_working(berlin(2026, 10, 25), 1.75 * HOUR) == first_0215


def test_dst_change_in_a_zone_that_changes_at_2am_on_a_different_date() -> None:
    # New York springs forward on 2026-03-08: 02:00 EST becomes 03:00 EDT.
    sat = datetime(2026, 3, 7, tzinfo=ZoneInfo("America/New_York"))
    assert NEW_YORK.working_seconds(sat, sat + timedelta(days=2)) == 1.5 * HOUR + 23 * HOUR


def test_midnight_inside_a_skipped_hour_loses_no_instant_and_counts_none_twice() -> None:
    # Toronto, 1919-03-30: 23:30 EST jumped to 00:30 EDT, so both days lose half an hour.
    toronto = ZoneInfo("America/Toronto")
    cal = BusinessCalendar("t", "America/Toronto", dict.fromkeys(WEEKDAYS, "00:00-24:00"), [])
    sun, tue = datetime(1919, 3, 30, tzinfo=toronto), datetime(1919, 4, 1, tzinfo=toronto)
    jump = utc(1919, 3, 31, 4, 30)
    assert cal.working_seconds(sun, jump) == 23.5 * HOUR
    assert cal.working_seconds(jump, tue) == 23.5 * HOUR
    assert (
        cal.working_seconds(sun, tue) == (tue.astimezone(UTC) - sun.astimezone(UTC)).total_seconds()
    )


def test_repeated_midnight_ends_one_day_and_starts_the_next_at_its_first_occurrence() -> None:
    # Antarctica/Casey, 2010-03-05: 02:00 (+11) went back to 23:00 (+8) on the 4th, so the
    # wall times from 23:00 on Thursday to 02:00 on Friday happened twice.
    casey = ZoneInfo("Antarctica/Casey")
    cal = BusinessCalendar("c", "Antarctica/Casey", {"thu": "00:00-24:00", "fri": "00:00-24:00"})
    thu, fri, sat = (datetime(2010, 3, d, tzinfo=casey) for d in (4, 5, 6))
    first_friday_midnight = utc(2010, 3, 4, 13)  # +11
    assert fri.astimezone(UTC) == first_friday_midnight
    assert cal.working_seconds(thu, fri) == 24 * HOUR
    assert cal.working_seconds(fri, sat) == 27 * HOUR
    # Compared in UTC: Python never calls an ambiguous wall time equal to another zone's instant.
    assert cal.add_working(thu, 24 * HOUR) == first_friday_midnight
    assert cal.working_seconds(thu, sat) == 51 * HOUR


def test_results_are_utc_whatever_the_input_zone() -> None:
    start = berlin(2026, 11, 3, 10).astimezone(TOKYO)
    result = OFFICE.add_working(start, HOUR)
    assert result.tzinfo is UTC
    assert result == utc(2026, 11, 3, 10)
    saturday = berlin(2026, 11, 7).astimezone(TOKYO)
    unchanged = OFFICE.add_working(saturday, 0)
    assert unchanged == saturday
    assert unchanged.tzinfo is UTC


def test_non_positive_amount_returns_start() -> None:
    start = berlin(2026, 11, 7, 12)
    assert OFFICE.add_working(start, 0) == start
    assert OFFICE.add_working(start, -5 * HOUR) == start


@pytest.mark.parametrize(
    "call",
    [
        lambda: OFFICE.working_seconds(datetime(2026, 11, 3, 9), berlin(2026, 11, 3, 10)),  # noqa: DTZ001
        lambda: OFFICE.working_seconds(berlin(2026, 11, 3, 9), datetime(2026, 11, 3, 10)),  # noqa: DTZ001
        lambda: OFFICE.add_working(datetime(2026, 11, 3, 9), HOUR),  # noqa: DTZ001
    ],
    ids=["naive start", "naive end", "naive add_working start"],
)
def test_naive_datetimes_are_rejected(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        call()


def test_nan_amount_is_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        OFFICE.add_working(berlin(2026, 11, 3, 9), float("nan"))


def test_calendar_exposes_its_name_and_zone() -> None:
    assert OFFICE.name == "emea_office"
    assert OFFICE.timezone == "Europe/Berlin"


# --- long spans ----------------------------------------------------------------------------------


def reference_seconds(
    hours: Mapping[str, str], tz: ZoneInfo, holidays: set[date], a: datetime, b: datetime
) -> float:
    """Day by day, range by range, for hours whose wall times never fall in a DST change."""
    total = timedelta()
    a, b = a.astimezone(UTC), b.astimezone(UTC)  # so that differences are of instants
    day = a.astimezone(tz).date() - timedelta(days=1)
    while day <= b.astimezone(tz).date():
        text = hours.get(WEEKDAYS[day.weekday()])
        if text and day not in holidays:
            for part in text.split(","):
                lo_text, hi_text = part.split("-")
                lo = datetime.combine(day, time.fromisoformat(lo_text), tz).astimezone(UTC)
                hi = datetime.combine(day, time.fromisoformat(hi_text), tz).astimezone(UTC)
                overlap = min(hi, b) - max(lo, a)
                if overlap > timedelta():
                    total += overlap
        day += timedelta(days=1)
    return total.total_seconds()


def fastest_of_three(run: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(3):
        began = clock.perf_counter()
        run()
        best = min(best, clock.perf_counter() - began)
    return best


def test_five_years_of_working_seconds_are_counted_fast_and_exactly() -> None:
    start, end = utc(2026, 1, 1), utc(2031, 1, 1)

    def count() -> None:
        fresh = BusinessCalendar("all_day", "Europe/Berlin", dict.fromkeys(WEEKDAYS, "00:00-24:00"))
        assert fresh.working_seconds(start, end) == (end - start).total_seconds()

    assert fastest_of_three(count) < 0.05


def test_five_years_of_office_hours_match_a_day_by_day_count() -> None:
    start, end = berlin(2026, 2, 3, 11, 17), berlin(2031, 2, 3, 15, 2)
    holidays = {date(2026, 12, 25), date(2027, 1, 1)}
    expected = reference_seconds(LUNCH_HOURS, BERLIN, holidays, start, end)
    assert LUNCH.working_seconds(start, end) == expected


def test_add_working_of_a_thousand_hours_is_fast() -> None:
    start = berlin(2026, 1, 5, 9)

    def add() -> None:
        fresh = BusinessCalendar("o", "Europe/Berlin", OFFICE_HOURS, ["2026-12-25"])
        # 25 working weeks of 40 hours, closing time on the 25th Friday.
        assert fresh.add_working(start, 1000 * HOUR) == berlin(2026, 6, 26, 17)

    assert fastest_of_three(add) < 0.05


def test_counting_centuries_ahead_terminates() -> None:
    far = OFFICE.add_working(utc(2026, 1, 1), 40 * HOUR * 52 * 100)
    assert 2120 < far.year < 2130


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timezone", "hours", "holidays", "message"),
    [
        ("Mars/Olympus", OFFICE_HOURS, [], 'timezone: unknown time zone "Mars/Olympus"'),
        ("../etc/passwd", OFFICE_HOURS, [], 'timezone: unknown time zone "../etc/passwd"'),
        ("", OFFICE_HOURS, [], "timezone: expected an IANA time zone name, got ''"),
        (
            "UTC",
            {"monday": "09:00-17:00"},
            [],
            "hours.monday: unknown weekday (expected one of mon, tue, wed, thu, fri, sat, sun)",
        ),
        ("UTC", {"mon": "9-17"}, [], 'hours.mon: "9-17" is not a time range like "09:00-17:00"'),
        ("UTC", {"mon": ""}, [], 'hours.mon: "" is not a time range like "09:00-17:00"'),
        (
            "UTC",
            {"tue": "09:00-12:00,"},
            [],
            'hours.tue: "" is not a time range like "09:00-17:00"',
        ),
        (
            "UTC",
            {"mon": "09:60-17:00"},
            [],
            'hours.mon: "09:60-17:00" has a time outside 00:00-24:00 (24:00 may only end a range)',
        ),
        (
            "UTC",
            {"mon": "24:00-24:00"},
            [],
            'hours.mon: "24:00-24:00" has a time outside 00:00-24:00 (24:00 may only end a range)',
        ),
        (
            "UTC",
            {"mon": "09:00-24:30"},
            [],
            'hours.mon: "09:00-24:30" has a time outside 00:00-24:00 (24:00 may only end a range)',
        ),
        ("UTC", {"mon": None}, [], 'hours.mon: expected ranges like "09:00-17:00", got None'),
        ("UTC", {"mon": "17:00-09:00"}, [], 'hours.mon: "17:00-09:00" is inverted'),
        ("UTC", {"fri": "09:00-09:00"}, [], 'hours.fri: "09:00-09:00" is empty'),
        (
            "UTC",
            {"wed": "12:00-17:00,09:00-13:00"},
            [],
            'hours.wed: "09:00-13:00" overlaps "12:00-17:00"',
        ),
        ("UTC", {}, [], "hours: no working hours on any day of the week"),
        (
            "UTC",
            OFFICE_HOURS,
            ["2026-12-25", "2026-13-01"],
            'holidays[1]: "2026-13-01" is not a date like "2026-12-25"',
        ),
        (
            "UTC",
            OFFICE_HOURS,
            ["25.12.2026"],
            'holidays[0]: "25.12.2026" is not a date like "2026-12-25"',
        ),
        (
            "UTC",
            OFFICE_HOURS,
            ["20261225"],
            'holidays[0]: "20261225" is not a date like "2026-12-25"',
        ),
        (
            "UTC",
            OFFICE_HOURS,
            [20261225],
            'holidays[0]: "20261225" is not a date like "2026-12-25"',
        ),
        (
            "UTC",
            OFFICE_HOURS,
            [datetime(2026, 12, 25, tzinfo=UTC)],
            "holidays[0]: 2026-12-25T00:00:00+00:00 is a datetime, not a date",
        ),
    ],
    ids=[
        "unknown zone",
        "zone outside the database",
        "empty zone",
        "unknown weekday",
        "malformed range",
        "empty string",
        "trailing comma",
        "minute out of range",
        "24:00 as a start",
        "past 24:00",
        "not a string",
        "inverted range",
        "empty range",
        "overlapping ranges",
        "no hours in the week",
        "impossible date",
        "wrong date format",
        "basic ISO date",
        "not a string or date",
        "datetime holiday",
    ],
)
def test_invalid_definitions_raise_calendar_error_naming_the_key(
    timezone: str, hours: Mapping[str, str], holidays: list[str | date], message: str
) -> None:
    with pytest.raises(CalendarError) as raised:
        BusinessCalendar("bad", timezone, hours, holidays)
    assert str(raised.value) == message


def test_calendar_error_is_a_value_error() -> None:
    assert issubclass(CalendarError, ValueError)


# --- properties ----------------------------------------------------------------------------------

SPAN_START = utc(2026, 1, 1)
SPAN_US = (utc(2028, 1, 1) - SPAN_START) // US
# Instants near which bugs would hide: DST changes in both zones, openings, closings, midnights.
# All in UTC: arithmetic and comparisons between datetimes sharing a zone use wall-clock time.
LANDMARKS = [
    at.astimezone(UTC)
    for at in (
        utc(2026, 3, 8, 7),
        utc(2026, 3, 29, 1),
        utc(2026, 10, 25, 1),
        utc(2026, 11, 1, 6),
        utc(2027, 3, 28, 1),
        berlin(2026, 11, 3, 9),
        berlin(2026, 11, 3, 17),
        berlin(2026, 12, 24, 17),
        berlin(2026, 12, 28),
        berlin(2026, 7, 1, 10),
    )
]

anywhere = st.integers(0, SPAN_US).map(lambda us: SPAN_START + us * US)
near_landmark = st.builds(
    lambda at, us: at + us * US,
    st.sampled_from(LANDMARKS),
    st.integers(-3 * 3600 * 10**6, 3 * 3600 * 10**6),
)
instants = st.one_of(anywhere, near_landmark)
calendars = st.sampled_from(CALENDARS)
amounts = st.one_of(
    st.floats(0, 2000 * HOUR, allow_nan=False),
    st.integers(0, 2000 * 3600).map(float),
)
PROPERTY = settings(max_examples=200, deadline=None)


@PROPERTY
@given(calendars, instants, instants, instants)
def test_working_seconds_add_up_over_a_split_span(
    cal: BusinessCalendar, x: datetime, y: datetime, z: datetime
) -> None:
    a, b, c = sorted((x, y, z))
    assert (
        abs(cal.working_seconds(a, b) + cal.working_seconds(b, c) - cal.working_seconds(a, c))
        <= 1e-6
    )


@PROPERTY
@given(calendars, instants, amounts)
def test_add_working_is_the_earliest_instant_with_that_much_working_time(
    cal: BusinessCalendar, start: datetime, seconds: float
) -> None:
    due = cal.add_working(start, seconds)
    assert due >= start
    assert abs(cal.working_seconds(start, due) - seconds) <= 1e-6
    if seconds > 0:
        assert cal.working_seconds(start, due - US) < seconds


@PROPERTY
@given(calendars, instants, amounts, amounts)
def test_add_working_is_monotonic_in_the_amount(
    cal: BusinessCalendar, start: datetime, first: float, second: float
) -> None:
    less, more = sorted((first, second))
    assert cal.add_working(start, less) <= cal.add_working(start, more)


@PROPERTY
@given(calendars, instants, instants)
def test_working_time_never_exceeds_elapsed_time(
    cal: BusinessCalendar, x: datetime, y: datetime
) -> None:
    a, b = sorted((x, y))
    assert 0 <= cal.working_seconds(a, b) <= (b - a).total_seconds()


@PROPERTY
@given(calendars, instants, instants, amounts)
def test_results_do_not_depend_on_the_zone_of_the_inputs(
    cal: BusinessCalendar, a: datetime, b: datetime, seconds: float
) -> None:
    assert cal.working_seconds(a, b) == cal.working_seconds(
        a.astimezone(TOKYO), b.astimezone(TOKYO)
    )
    in_utc, in_tokyo = cal.add_working(a, seconds), cal.add_working(a.astimezone(TOKYO), seconds)
    assert in_utc == in_tokyo
    assert in_utc.tzinfo is UTC
    assert in_tokyo.tzinfo is UTC


@PROPERTY
@given(instants, st.integers(0, 90 * 86_400 * 10**6))
def test_office_hours_match_a_day_by_day_count(start: datetime, length_us: int) -> None:
    end = start + length_us * US
    holidays = {date(2026, 12, 25), date(2027, 1, 1)}
    expected = reference_seconds(LUNCH_HOURS, BERLIN, holidays, start, end)
    assert abs(LUNCH.working_seconds(start, end) - expected) <= 1e-6
