"""Properties of SLA calendar arithmetic over random starts in 2026-2027."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.bank_holidays import bank_holidays
from domain.sla_calendar import SlaCalendar, to_minute
from models.period import Period, Unit

LONDON = ZoneInfo("Europe/London")

_EW_CLOSED = bank_holidays("england_and_wales", 2025, 2028)
EW = SlaCalendar(
    key="england-and-wales",
    kind="working_days",
    closed_dates=_EW_CLOSED,
    first_year=2025,
    last_year=2028,
)
SCT = SlaCalendar(
    key="scotland",
    kind="working_days",
    closed_dates=bank_holidays("scotland", 2025, 2028),
    first_year=2025,
    last_year=2028,
)
EARLY = SlaCalendar(
    key="early-office",
    kind="working_days",
    opening=time(8, 30),
    closing=time(16, 30),
    closed_dates=_EW_CLOSED | {date(2026, 12, 29), date(2026, 12, 30), date(2026, 12, 31)},
    first_year=2025,
    last_year=2028,
)
H24 = SlaCalendar(key="emergency", kind="24x7")
WORKING = [EW, SCT, EARLY]

SETTINGS = settings(max_examples=300, deadline=None)

# Bounds keep every result inside the working calendars' 2025-2028 range.
_MAX_AMOUNT: dict[Unit, int] = {"minutes": 3000, "hours": 120, "days": 60, "weeks": 12, "months": 5}
UNITS: list[Unit] = ["minutes", "hours", "days", "weeks", "months"]
DATE_UNITS: list[Unit] = ["days", "weeks", "months"]


def periods(units: list[Unit] = UNITS, min_amount: int = 0) -> st.SearchStrategy[Period]:
    return st.sampled_from(units).flatmap(
        lambda unit: st.builds(
            Period, unit=st.just(unit), amount=st.integers(min_amount, _MAX_AMOUNT[unit])
        )
    )


# Local wall times that matter: the boundaries of open time and of the 24x7 day.
_BOUNDARY_TIMES = [time(0, 0), time(8, 30), time(9, 0), time(16, 30), time(17, 0), time(23, 59, 59)]


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    """Whole-second UTC instants in 2026-2027, often exactly on an opening or closing."""
    if draw(st.booleans()):
        naive = draw(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)))
        return naive.replace(microsecond=0, tzinfo=UTC)
    day = draw(st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31)))
    wall = draw(st.sampled_from(_BOUNDARY_TIMES))
    return datetime.combine(day, wall, tzinfo=LONDON).astimezone(UTC)


def local(instant: datetime) -> datetime:
    return instant.astimezone(LONDON)


calendars = st.sampled_from([*WORKING, H24])
working_calendars = st.sampled_from(WORKING)


@SETTINGS
@given(calendars, instants(), periods(), periods(), periods(min_amount=0))
def test_amber_due_follow_on_are_ordered(
    calendar: SlaCalendar, start: datetime, target: Period, amber: Period, follow: Period
) -> None:
    due = calendar.due(start, target)
    assert due >= to_minute(start)  # counted from the start of the minute
    assert calendar.amber(due, amber) <= due <= calendar.follow_on(due, follow)


@SETTINGS
@given(working_calendars, instants(), periods(), periods(min_amount=1))
def test_working_results_never_on_a_closed_day(
    calendar: SlaCalendar, start: datetime, target: Period, other: Period
) -> None:
    due = calendar.due(start, target)
    results = {
        "due": due,
        "amber": calendar.amber(due, other),
        "follow_on": calendar.follow_on(due, other),
        "lag": calendar.lag_start(start, other),
    }
    for name, result in results.items():
        assert calendar.is_working_day(local(result).date()), (name, local(result))
        # Every result lies within a day's [opening, closing].
        assert calendar.opening <= local(result).time() <= calendar.closing, (name, local(result))
    if target.unit in DATE_UNITS:
        assert local(due).time() == calendar.closing
    if other.unit in DATE_UNITS:
        for name in ("amber", "follow_on"):
            assert local(results[name]).time() == calendar.closing, name


@SETTINGS
@given(
    calendars,
    instants(),
    st.integers(1, 40),
    st.integers(1, 40),
)
def test_days_compose(calendar: SlaCalendar, start: datetime, n: int, m: int) -> None:
    days = Period(unit="days", amount=n + m)
    first = calendar.due(start, Period(unit="days", amount=n))
    assert calendar.due(first, Period(unit="days", amount=m)) == calendar.due(start, days)


@SETTINGS
@given(calendars, instants(), st.integers(0, 3 * 24 * 3600), periods())
def test_monotonic_in_start(
    calendar: SlaCalendar, start: datetime, gap_seconds: int, period: Period
) -> None:
    later = start + timedelta(seconds=gap_seconds)
    assert calendar.due(start, period) <= calendar.due(later, period)
    assert calendar.amber(start, period) <= calendar.amber(later, period)
    assert calendar.follow_on(start, period) <= calendar.follow_on(later, period)
    assert calendar.lag_start(start, period) <= calendar.lag_start(later, period)


@SETTINGS
@given(instants(), periods(["minutes", "hours"]))
def test_24x7_minutes_and_hours_are_elapsed_time(start: datetime, period: Period) -> None:
    exact = timedelta(**{period.unit: period.amount})
    # A start counts from the start of its minute; an instant the case computed (an amber
    # counted back from a due) is taken as it is.
    # (never before the start itself: a zero target from 10:00:30 is due at 10:00:30)
    assert H24.due(start, period) == max(to_minute(start) + exact, start)
    assert start - H24.amber(start, period) == exact
    if period.amount:
        assert H24.lag_start(start, period) - to_minute(start) == exact


@SETTINGS
@given(working_calendars, instants(), periods(["minutes", "hours"]))
def test_open_time_round_trips(calendar: SlaCalendar, start: datetime, period: Period) -> None:
    # From inside open time, counting forward then back the same open time returns home.
    if calendar.is_open(start):
        home = start if period.amount == 0 else to_minute(start)  # a zero target: its start
        assert calendar.amber(calendar.due(start, period), period) == home


@SETTINGS
@given(working_calendars, instants(), periods(DATE_UNITS, min_amount=1))
def test_day_lags_start_at_an_opening(
    calendar: SlaCalendar, completed: datetime, lag: Period
) -> None:
    started = local(calendar.lag_start(completed, lag))
    assert started.time() == calendar.opening
    assert calendar.is_working_day(started.date())
    assert started.date() > local(completed).date()
    assert calendar.is_open(started)


@SETTINGS
@given(instants(), periods(DATE_UNITS, min_amount=1))
def test_24x7_day_lags_start_at_midnight(completed: datetime, lag: Period) -> None:
    started = local(H24.lag_start(completed, lag))
    assert started.time() == time(0, 0)
    assert started.date() > local(completed).date()
