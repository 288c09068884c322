"""SLA calendar arithmetic: due, amber, follow-on and lag instants on a named calendar.

PURE: imports only the standard library and models.period, and never reads the clock, because
it runs inside the Temporal workflow sandbox and must give the same answer on every replay.
Closed days (bank holidays of the calendar's nation plus extra closures) are resolved by the
caller (see domain.bank_holidays) and passed in, together with the years they are known for.

Every method takes timezone-aware datetimes (naive input raises ValueError) and returns UTC
datetimes. Deadlines are local wall-clock times in the calendar's `time_zone`, so all date
reasoning happens on local dates and the answer is converted back to UTC.

The rules (docs/domain.md, "SLA arithmetic", with the interpretations we chose):

Calendars
  - "24x7": every day counts, closed dates are ignored, no range check. The close of a day is
    23:59:59 local and its opening is 00:00 local.
  - "working_days": days whose weekday is in `working_weekdays` and that are not in
    `closed_dates`. Open time is [opening, closing) local on working days, so a start at
    closing exactly is outside working time. The close of a day is `closing` local.
  - A working calendar with `first_year`/`last_year` only knows its closed dates for those
    years; consulting any date outside them raises CalendarRangeError rather than silently
    treating an unknown bank holiday as a working day. Only dates the count actually looks
    at are checked: 1 working day after 31 Dec 2024 needs 2025 only (the start date itself
    is consulted for 0 days, hours and minutes, but not for N >= 1 days).

Forward (`add`, used by `due` and `follow_on`)
  - minutes/hours, 24x7: exact elapsed time, done in UTC so a clock change neither
    stretches nor shrinks the period.
  - minutes/hours, working: only open time counts. A start outside open time counts from the
    next opening. A count that ends exactly at a closing gives that closing (2 hours from
    15:00 is 17:00 the same day; 4 hours from Friday 15:00 is Monday 11:00).
  - days: N >= 1 gives the close of the Nth counted day after the start's local date
    (working: Nth working day after; 24x7: date + N at 23:59:59). N = 0 gives the close of
    the start day; on a working calendar a start outside working time (the start date is
    not a working day, or local time >= closing) gives the close of the next working day.
    A start before opening on a working day counts that day. The 24x7 day ends at 23:59:59,
    and a start counts from the start of its minute, so 0 days from 23:59:xx is the end of
    that same day.
  - Precision (DOMAIN "Precision"): `due` and `lag_start` count from the start of the
    minute of the instant they are given (`to_minute`): 15:00:00.014 + 2 working hours is
    17:00 the same day. Instants the calendar computes itself are whole minutes already (a
    24x7 close, 23:59:59, is the end of its last minute).
  - weeks: 7 calendar days on 24x7, 5 working days on a working calendar (whatever its
    `working_weekdays`), then as days.
  - months: the local start date plus N calendar months, clamped to the month end (31 Jan
    + 1 month = 28/29 Feb), at the close of that day; on a working calendar a closed day
    moves forward to the next working day. 0 months behaves as 0 days.

Backward (`subtract`, used by `amber`)
  - Counting back zero of anything leaves the instant where it is (amber 0 = due).
  - minutes/hours, 24x7: exact elapsed time in UTC.
  - minutes/hours, working: open time counted back. An instant outside open time counts back
    from the previous closing. A count that ends exactly at an opening gives that opening
    (Tuesday 11:00 - 2 hours = Tuesday 09:00) while Monday 09:00 - 1 hour is 16:00 on the
    previous working day.
  - days/weeks: the close of the Nth counted day before the instant's local date.
  - months: date - N months, clamped to the month end, at the close of that day; on a
    working calendar a closed day moves BACKWARD to the previous working day, so an amber
    never passes its due.

Follow-on: the due (or previous follow-on) instant plus the period, counted forward with
`add`. A zero follow-on period is the previous instant itself.

Lag (`lag_start`): when a task starts after its last predecessor completed.
  - amount 0 (any unit): the completion instant itself.
  - minutes/hours: exact on the calendar (as `add`).
  - days/weeks: the OPENING of the Nth counted day after the completion's local date
    (working: `opening` of the Nth working day after; 24x7: 00:00 of date + N). Weeks are
    5 working / 7 calendar days.
  - months: the opening of (date + N months, clamped), moved forward to the next working day
    if that day is closed.

Local times that do not exist (the skipped hour in spring) or happen twice (the repeated hour
in autumn) cannot arise for the default Europe/London calendar, whose openings, closings and
midnights avoid 01:00-02:00; for other zones the standard fold=0 reading applies (a skipped
time lands after the gap, a repeated time means its first occurrence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from models.period import Period, Unit

CalendarKind = Literal["24x7", "working_days"]

# docs/domain.md, "SLA arithmetic": a week is 7 days on 24x7, 5 working days otherwise.
CALENDAR_DAYS_PER_WEEK = 7
WORKING_DAYS_PER_WEEK = 5

# A 24x7 day ends one second before midnight (docs/domain.md, "Calendars"), so that a deadline
# reads as "by the end of 7 April" rather than "by 00:00 on 8 April".
_END_OF_24X7_DAY = time(23, 59, 59)
_START_OF_24X7_DAY = time(0, 0)


class CalendarRangeError(ValueError):
    """A working calendar was asked about a date outside the years its closed days cover."""

    def __init__(self, calendar_key: str, day: date, first_year: int | None, last_year: int | None):
        self.calendar_key = calendar_key
        self.day = day
        self.first_year = first_year
        self.last_year = last_year
        known = f"{first_year if first_year is not None else '...'}-"
        known += f"{last_year if last_year is not None else '...'}"
        super().__init__(
            f"calendar {calendar_key!r} has no closed days for {day.isoformat()}: "
            f"its bank holidays are known only for {known}; extend the calendar's years"
        )


@dataclass(frozen=True)
class SlaCalendar:
    """A named calendar on which SLA periods are measured (see the module docstring)."""

    key: str
    kind: CalendarKind
    time_zone: str = "Europe/London"
    opening: time = time(9, 0)
    closing: time = time(17, 0)
    working_weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    # Bank holidays plus extra closure days, resolved by the caller.
    closed_dates: frozenset[date] = frozenset()
    # closed_dates are complete for [first_year, last_year]; None means unbounded.
    first_year: int | None = None
    last_year: int | None = None
    # DOMAIN "Precision": `due` and `lag_start` count from the start of the minute (False:
    # from the exact instant, as cases pinned before the rule were planned).
    minute_precision: bool = True
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("24x7", "working_days"):
            raise ValueError(f"calendar {self.key!r}: unknown kind {self.kind!r}")
        # Resolve the zone now: an unknown name should fail at construction, not mid-count.
        try:
            zone = ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(
                f"calendar {self.key!r}: unknown time zone {self.time_zone!r}"
            ) from error
        object.__setattr__(self, "_zone", zone)
        if self.opening.tzinfo is not None or self.closing.tzinfo is not None:
            raise ValueError(f"calendar {self.key!r}: opening and closing are local wall times")
        if (
            self.first_year is not None
            and self.last_year is not None
            and self.first_year > self.last_year
        ):
            raise ValueError(
                f"calendar {self.key!r}: first_year {self.first_year} is after "
                f"last_year {self.last_year}"
            )
        if self.kind == "working_days":
            if not self.opening < self.closing:
                raise ValueError(
                    f"calendar {self.key!r}: opening {self.opening} must be before "
                    f"closing {self.closing}"
                )
            # An empty week would make every "next working day" search run forever.
            if not self.working_weekdays or not self.working_weekdays <= set(range(7)):
                raise ValueError(
                    f"calendar {self.key!r}: working_weekdays must be a non-empty subset of "
                    f"0..6 (Monday=0), got {sorted(self.working_weekdays)}"
                )

    # ------------------------------------------------------------------ days and instants

    @property
    def is_24x7(self) -> bool:
        """True when every day counts and the clock never stops."""
        return self.kind == "24x7"

    def is_working_day(self, day: date) -> bool:
        """Whether `day` counts on this calendar (always True on a 24x7 calendar).

        Raises CalendarRangeError on a working calendar for a date outside the years its
        closed days are known for.
        """
        if self.is_24x7:
            return True
        self._check_range(day)
        return day.weekday() in self.working_weekdays and day not in self.closed_dates

    def is_open(self, instant: datetime) -> bool:
        """Whether the SLA clock is running at `instant` (always True on a 24x7 calendar)."""
        instant = _to_utc(instant)
        if self.is_24x7:
            return True
        day = self._local_date(instant)
        return self.is_working_day(day) and self.opening_of(day) <= instant < self.close_of(day)

    def close_of(self, day: date) -> datetime:
        """The end of `day` as a UTC instant: `closing` local, or 23:59:59 on a 24x7 calendar.

        This does not check that `day` is a working day.
        """
        return self._wall(day, _END_OF_24X7_DAY if self.is_24x7 else self.closing)

    def opening_of(self, day: date) -> datetime:
        """The start of `day` as a UTC instant: `opening` local, or 00:00 on a 24x7 calendar.

        This does not check that `day` is a working day.
        """
        return self._wall(day, _START_OF_24X7_DAY if self.is_24x7 else self.opening)

    def working_day_after(self, day: date, n: int) -> date:
        """The Nth counted day after `day` (n >= 0; n == 0 returns `day` itself)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if self.is_24x7:
            return _shift_days(day, n)
        while n > 0:
            day = _shift_days(day, 1)
            if self.is_working_day(day):
                n -= 1
        return day

    def working_day_before(self, day: date, n: int) -> date:
        """The Nth counted day before `day` (n >= 0; n == 0 returns `day` itself)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if self.is_24x7:
            return _shift_days(day, -n)
        while n > 0:
            day = _shift_days(day, -1)
            if self.is_working_day(day):
                n -= 1
        return day

    def working_day_on_or_after(self, day: date) -> date:
        """`day` if it counts, else the next day that does."""
        while not self.is_working_day(day):
            day = _shift_days(day, 1)
        return day

    def working_day_on_or_before(self, day: date) -> date:
        """`day` if it counts, else the previous day that does."""
        while not self.is_working_day(day):
            day = _shift_days(day, -1)
        return day

    # ------------------------------------------------------------------ the two mechanisms

    def add(self, instant: datetime, period: Period) -> datetime:
        """`instant` plus `period`, counted forward on this calendar (returned in UTC)."""
        instant = _to_utc(instant)
        if period.unit in ("minutes", "hours"):
            delta = _exact(period)
            if self.is_24x7:
                return instant + delta
            return self._add_open_time(instant, delta)
        day = self._local_date(instant)
        if period.amount == 0:
            # "0 days means the end of the start day, or of the next working day if the task
            # starts outside working time". Zero weeks or months are the same zero.
            if self.is_working_day(day) and instant < self.close_of(day):
                return self.close_of(day)
            return self.close_of(self.working_day_after(day, 1))
        if period.unit == "months":
            target = self.working_day_on_or_after(_add_months(day, period.amount))
            return self.close_of(target)
        return self.close_of(self.working_day_after(day, self._days_in(period)))

    def subtract(self, instant: datetime, period: Period) -> datetime:
        """`instant` minus `period`, counted back on this calendar (returned in UTC)."""
        instant = _to_utc(instant)
        if period.amount == 0:
            return instant
        if period.unit in ("minutes", "hours"):
            delta = _exact(period)
            if self.is_24x7:
                return instant - delta
            return self._subtract_open_time(instant, delta)
        day = self._local_date(instant)
        if period.unit == "months":
            # Backward, a closed day moves back too, so the result stays before `instant`.
            target = self.working_day_on_or_before(_add_months(day, -period.amount))
            return self.close_of(target)
        return self.close_of(self.working_day_before(day, self._days_in(period)))

    # ------------------------------------------------------------------ SLA instants

    def due(self, start: datetime, target: Period) -> datetime:
        """The target completion instant of a task (or case) that started at `start`, counted
        from the start of its minute (DOMAIN "Precision": seconds never push a count past a
        closing)."""
        # Never before the start itself: a zero target counted from the start of the minute
        # would otherwise fall due seconds before it started.
        return max(self.add(self._counted_from(start), target), _to_utc(start))

    def amber(self, due: datetime, amber: Period) -> datetime:
        """When the amber warning fires: `amber` counted back from `due` (0 means at due)."""
        return self.subtract(due, amber)

    def follow_on(self, previous: datetime, period: Period) -> datetime:
        """When the next follow-on escalation fires after `previous` (the due instant or the
        previous follow-on). A zero period means at `previous` itself."""
        if period.amount == 0:
            # `add` would move an instant at closing to the next working day's close; a
            # follow-on "0 after the target" means at the target.
            return _to_utc(previous)
        return self.add(previous, period)

    def lag_start(self, completed_at: datetime, lag: Period) -> datetime:
        """When a task with `lag` starts, given its last predecessor completed at
        `completed_at`. Day-based lags start at the opening of a day, so the task's own SLA
        clock starts with the working day."""
        if lag.amount == 0:
            return _to_utc(completed_at)
        completed_at = self._counted_from(completed_at)
        if lag.unit in ("minutes", "hours"):
            return self.add(completed_at, lag)
        day = self._local_date(completed_at)
        if lag.unit == "months":
            return self.opening_of(self.working_day_on_or_after(_add_months(day, lag.amount)))
        return self.opening_of(self.working_day_after(day, self._days_in(lag)))

    # ------------------------------------------------------------------ holds

    def open_time_between(self, start: datetime, end: datetime) -> timedelta:
        """The open time in [start, end), each counted from its minute (24x7: elapsed)."""
        start, end = to_minute(start), to_minute(end)
        if end <= start:
            return timedelta(0)
        if self.is_24x7:
            return end - start
        total = timedelta(0)
        day, last = self._local_date(start), self._local_date(end)
        while day <= last:
            if self.is_working_day(day):
                low, high = max(start, self.opening_of(day)), min(end, self.close_of(day))
                if high > low:
                    total += high - low
            day = _shift_days(day, 1)
        return total

    def counted_days_between(self, first: date, last: date) -> int:
        """How many counted days d there are with first < d <= last."""
        count, day = 0, first
        while day < last:
            day = _shift_days(day, 1)
            if self.is_working_day(day):
                count += 1
        return count

    def shift_for_hold(
        self,
        instant: datetime,
        unit: Unit,
        begun: datetime,
        released: datetime,
        *,
        at_opening: bool = False,
    ) -> datetime:
        """`instant` (a target, or a lagging task's start) moved later by a hold that began at
        `begun` and ended at `released` (DOMAIN "Hold"), in `unit` on this calendar:

        - minutes and hours: by the open time of [begun, released) (elapsed on 24x7);
        - days, weeks and months: to the close (`at_opening`: the opening) of the Nth counted
          day after the instant's own date, N the counted days d with
          date(begun) < d <= date(released). A hold within one day moves it by nothing.
        """
        instant = _to_utc(instant)
        if unit in ("minutes", "hours"):
            held = self.open_time_between(begun, released)
            if not held:
                return instant
            return instant + held if self.is_24x7 else self._add_open_time(instant, held)
        n = self.counted_days_between(
            self._local_date(to_minute(begun)), self._local_date(to_minute(released))
        )
        if n == 0:
            return instant
        day = self.working_day_after(self._local_date(instant), n)
        return self.opening_of(day) if at_opening else self.close_of(day)

    # ------------------------------------------------------------------ internals

    def _days_in(self, period: Period) -> int:
        """How many counted days a days or weeks period spans on this calendar."""
        if period.unit == "weeks":
            per_week = CALENDAR_DAYS_PER_WEEK if self.is_24x7 else WORKING_DAYS_PER_WEEK
            return period.amount * per_week
        return period.amount

    def _add_open_time(self, instant: datetime, remaining: timedelta) -> datetime:
        """Count `remaining` open time forward from `instant` on a working calendar.

        Works in UTC between each day's opening and closing instants, so the real length of
        an open stretch is used even on a zone whose clock change falls inside open hours.
        """
        day = self._local_date(instant)
        if self.is_working_day(day) and instant < self.close_of(day):
            segment_start = max(instant, self.opening_of(day))
        else:
            day = self.working_day_after(day, 1)
            segment_start = self.opening_of(day)
        while True:
            available = self.close_of(day) - segment_start
            # `<=` so that a count ending exactly at a closing is that closing, not the next
            # opening: 2 hours from 15:00 is 17:00 the same day.
            if remaining <= available:
                return segment_start + remaining
            remaining -= available
            day = self.working_day_after(day, 1)
            segment_start = self.opening_of(day)

    def _subtract_open_time(self, instant: datetime, remaining: timedelta) -> datetime:
        """Count `remaining` open time back from `instant` on a working calendar (the mirror
        of `_add_open_time`: a count ending exactly at an opening is that opening)."""
        day = self._local_date(instant)
        if self.is_working_day(day) and instant > self.opening_of(day):
            segment_end = min(instant, self.close_of(day))
        else:
            day = self.working_day_before(day, 1)
            segment_end = self.close_of(day)
        while True:
            available = segment_end - self.opening_of(day)
            if remaining <= available:
                return segment_end - remaining
            remaining -= available
            day = self.working_day_before(day, 1)
            segment_end = self.close_of(day)

    def _counted_from(self, instant: datetime) -> datetime:
        return to_minute(instant) if self.minute_precision else _to_utc(instant)

    def _check_range(self, day: date) -> None:
        if (self.first_year is not None and day.year < self.first_year) or (
            self.last_year is not None and day.year > self.last_year
        ):
            raise CalendarRangeError(self.key, day, self.first_year, self.last_year)

    def _local_date(self, instant: datetime) -> date:
        return instant.astimezone(self._zone).date()

    def _wall(self, day: date, wall_time: time) -> datetime:
        """The UTC instant of a local wall-clock time on `day` in this calendar's zone."""
        return datetime.combine(day, wall_time, tzinfo=self._zone).astimezone(UTC)


def to_minute(instant: datetime) -> datetime:
    """`instant` in UTC, truncated to the start of its minute: where an instant from outside
    (a start, a completion, a hold's beginning or end) enters SLA arithmetic."""
    return _to_utc(instant).replace(second=0, microsecond=0)


def _to_utc(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(
            f"naive datetime {instant.isoformat()}: SLA arithmetic needs timezone-aware instants"
        )
    return instant.astimezone(UTC)


def _exact(period: Period) -> timedelta:
    if period.unit == "hours":
        return timedelta(hours=period.amount)
    return timedelta(minutes=period.amount)


def _shift_days(day: date, n: int) -> date:
    try:
        return day + timedelta(days=n)
    except OverflowError:
        raise ValueError(f"{day.isoformat()} shifted by {n} days is out of range") from None


def _add_months(day: date, n: int) -> date:
    """`day` plus `n` calendar months (n may be negative), clamped to the target month's last
    day: 31 Jan + 1 month = 28 Feb (29 Feb in a leap year)."""
    months = day.year * 12 + (day.month - 1) + n
    year, month0 = divmod(months, 12)
    if not 1 <= year <= 9999:
        raise ValueError(f"{day.isoformat()} shifted by {n} months is out of range")
    month = month0 + 1
    # The last day of the month is the day before the next month's first day.
    next_first = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    month_end = (next_first - timedelta(days=1)).day
    return date(year, month, min(day.day, month_end))
