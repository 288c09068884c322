"""Hand-computed SLA instants (docs/domain.md, "SLA arithmetic").

Every expected value below was worked out by hand from a printed calendar and the UK bank
holiday lists, never by calling the code under test. Expected values are local wall-clock
times in Europe/London (`L(...)`); results are compared as UTC instants.

Reference: England and Wales bank holidays 2026: Thu 1 Jan, Fri 3 Apr, Mon 6 Apr, Mon 4 May,
Mon 25 May, Mon 31 Aug, Fri 25 Dec, Mon 28 Dec (for Sat 26 Dec). 2027: Fri 1 Jan, Fri 26 Mar,
Mon 29 Mar, Mon 3 May, Mon 31 May, Mon 30 Aug, Mon 27 and Tue 28 Dec (for Sat 25 / Sun 26).
2028: Mon 3 Jan (for Sat 1 Jan). Clock changes: BST from Sun 29 Mar 2026 01:00 UTC to Sun
25 Oct 2026 01:00 UTC, and from Sun 28 Mar 2027 to Sun 31 Oct 2027.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo

import pytest

from domain.bank_holidays import bank_holidays
from domain.sla_calendar import CalendarRangeError, SlaCalendar
from models.period import Period, Unit

LONDON = ZoneInfo("Europe/London")


def L(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, fold: int = 0
) -> datetime:
    """A Europe/London wall-clock time (fold=1 picks the second 01:xx in October)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=LONDON, fold=fold)


def EOD(year: int, month: int, day: int) -> datetime:
    """23:59:59 local: the close of a day on a 24x7 calendar."""
    return L(year, month, day, 23, 59, 59)


def P(amount: int, unit: Unit) -> Period:
    return Period(unit=unit, amount=amount)


EW = SlaCalendar(
    key="england-and-wales",
    kind="working_days",
    closed_dates=bank_holidays("england_and_wales", 2025, 2028),
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
NI = SlaCalendar(
    key="northern-ireland",
    kind="working_days",
    closed_dates=bank_holidays("northern_ireland", 2025, 2028),
    first_year=2025,
    last_year=2028,
)
H24 = SlaCalendar(key="emergency", kind="24x7")
# An office open 08:30-16:30.
EARLY = SlaCalendar(
    key="early-office",
    kind="working_days",
    opening=time(8, 30),
    closing=time(16, 30),
    closed_dates=bank_holidays("england_and_wales", 2025, 2028),
    first_year=2025,
    last_year=2028,
)
# England and Wales plus a Christmas shutdown on Tue 29 - Thu 31 Dec 2026.
SHUTDOWN = SlaCalendar(
    key="christmas-shutdown",
    kind="working_days",
    closed_dates=bank_holidays("england_and_wales", 2025, 2028)
    | {date(2026, 12, 29), date(2026, 12, 30), date(2026, 12, 31)},
    first_year=2025,
    last_year=2028,
)

Op = Literal["due", "amber", "follow_on", "lag"]


def run(calendar: SlaCalendar, op: Op, instant: datetime, period: Period) -> datetime:
    methods: dict[Op, Callable[[datetime, Period], datetime]] = {
        "due": calendar.due,
        "amber": calendar.amber,
        "follow_on": calendar.follow_on,
        "lag": calendar.lag_start,
    }
    return methods[op](instant, period)


def case(
    name: str, calendar: SlaCalendar, op: Op, instant: datetime, period: Period, expected: datetime
) -> object:
    return pytest.param(calendar, op, instant, period, expected, id=name)


CASES = [
    # --- minutes and hours on the working calendar: only open time counts -----------------
    # Fri 15-17 is 2h, Mon 09-11 the other 2h (the example in docs/domain.md, "Minutes and hours").
    case("4h-fri-1500", EW, "due", L(2026, 1, 9, 15), P(4, "hours"), L(2026, 1, 12, 11)),
    # A count ending exactly at closing is that closing, not Monday's opening.
    case("2h-ends-at-closing", EW, "due", L(2026, 1, 9, 15), P(2, "hours"), L(2026, 1, 9, 17)),
    # Plain 30 minutes inside open time.
    case("30min", EW, "due", L(2026, 1, 13, 10, 30), P(30, "minutes"), L(2026, 1, 13, 11)),
    # Start before opening counts from 09:00 the same day.
    case("1h-before-opening", EW, "due", L(2026, 1, 13, 8), P(1, "hours"), L(2026, 1, 13, 10)),
    # Start at 17:00 exactly is outside [09:00, 17:00): counts from Wed 09:00.
    case("1h-at-1700", EW, "due", L(2026, 1, 13, 17), P(1, "hours"), L(2026, 1, 14, 10)),
    # Saturday start counts from Monday 09:00.
    case("3h-saturday", EW, "due", L(2026, 1, 10, 11), P(3, "hours"), L(2026, 1, 12, 12)),
    # Zero hours from a Saturday: the next opening.
    case("0h-saturday", EW, "due", L(2026, 1, 10, 11), P(0, "hours"), L(2026, 1, 12, 9)),
    # Thu 2 Apr 2026 16-17 (1h), Good Friday and Easter Monday closed, Tue 7 Apr 09-11.
    case("3h-over-easter-2026", EW, "due", L(2026, 4, 2, 16), P(3, "hours"), L(2026, 4, 7, 11)),
    # 1h Thu + 8h Tue ends exactly at Tue's closing.
    case("9h-over-easter", EW, "due", L(2026, 4, 2, 16), P(9, "hours"), L(2026, 4, 7, 17)),
    # Fri 27 Mar 16:00 GMT, 1h Fri, Mon 30 Mar 09:00 BST + 1h: offset changes 0 -> +1.
    case("2h-spring-change", EW, "due", L(2026, 3, 27, 16), P(2, "hours"), L(2026, 3, 30, 10)),
    # Fri 24 Dec 2027 15-17 (2h); 25/26 weekend, 27/28 substitutes; Wed 29 Dec 09-10.
    case("3h-xmas-2027", EW, "due", L(2027, 12, 24, 15), P(3, "hours"), L(2027, 12, 29, 10)),
    # --- days on the working calendar ---------------------------------------------------------
    # Two working days after Tue 13 Jan 2026: Wed 14, Thu 15.
    case("2d-midweek", EW, "due", L(2026, 1, 13, 10), P(2, "days"), L(2026, 1, 15, 17)),
    # Two working days after Thu 15 Jan: Fri 16, Mon 19.
    case("2d-over-weekend", EW, "due", L(2026, 1, 15, 14), P(2, "days"), L(2026, 1, 19, 17)),
    # 0 days: close of the start day.
    case("0d-in-hours", EW, "due", L(2026, 1, 13, 10), P(0, "days"), L(2026, 1, 13, 17)),
    # 0 days before opening: that day still counts.
    case("0d-before-opening", EW, "due", L(2026, 1, 13, 8), P(0, "days"), L(2026, 1, 13, 17)),
    # 0 days at 17:00 exactly: outside working time, close of the next working day.
    case("0d-at-1700", EW, "due", L(2026, 1, 13, 17), P(0, "days"), L(2026, 1, 14, 17)),
    # 0 days on a Saturday: close of Monday.
    case("0d-saturday", EW, "due", L(2026, 1, 10, 10), P(0, "days"), L(2026, 1, 12, 17)),
    # 1 day from Saturday: the first working day after Saturday is Monday.
    case("1d-saturday", EW, "due", L(2026, 1, 10, 10), P(1, "days"), L(2026, 1, 12, 17)),
    # 1 day from Fri 16 Jan 17:00: Monday 19 Jan.
    case("1d-fri-at-1700", EW, "due", L(2026, 1, 16, 17), P(1, "days"), L(2026, 1, 19, 17)),
    # Thu 2 Apr 2026 + 1: Good Friday 3 Apr and Easter Monday 6 Apr closed -> Tue 7 Apr.
    case("1d-easter-2026", EW, "due", L(2026, 4, 2, 10), P(1, "days"), L(2026, 4, 7, 17)),
    # Starting on Good Friday (a bank holiday) with 0 days: close of Tue 7 Apr.
    case("0d-good-friday", EW, "due", L(2026, 4, 3, 10), P(0, "days"), L(2026, 4, 7, 17)),
    # Thu 25 Mar 2027 (GMT) + 2: Fri 26 and Mon 29 closed; Tue 30, Wed 31 (BST).
    case("2d-easter-2027", EW, "due", L(2027, 3, 25, 12), P(2, "days"), L(2027, 3, 31, 17)),
    # Fri 23 Oct 2026 (BST) + 1: Mon 26 Oct, now GMT.
    case("1d-autumn-change", EW, "due", L(2026, 10, 23, 10), P(1, "days"), L(2026, 10, 26, 17)),
    # Fri 1 May 2026 + 1: Mon 4 May bank holiday -> Tue 5 May.
    case("1d-early-may-2026", EW, "due", L(2026, 5, 1, 12), P(1, "days"), L(2026, 5, 5, 17)),
    # Fri 28 May 2027 + 1: Mon 31 May bank holiday -> Tue 1 Jun.
    case("1d-spring-bh-2027", EW, "due", L(2027, 5, 28, 12), P(1, "days"), L(2027, 6, 1, 17)),
    # Fri 28 Aug 2026 + 1: Mon 31 Aug bank holiday -> Tue 1 Sep.
    case("1d-summer-bh-2026", EW, "due", L(2026, 8, 28, 9), P(1, "days"), L(2026, 9, 1, 17)),
    # Thu 24 Dec 2026 + 1: Fri 25, weekend, Mon 28 (substitute) closed -> Tue 29 Dec.
    case("1d-xmas-2026", EW, "due", L(2026, 12, 24, 12), P(1, "days"), L(2026, 12, 29, 17)),
    # Thu 24 Dec 2026 + 4: Tue 29, Wed 30, Thu 31, (Fri 1 Jan closed) Mon 4 Jan 2027.
    case("4d-new-year-2027", EW, "due", L(2026, 12, 24, 12), P(4, "days"), L(2027, 1, 4, 17)),
    # Fri 24 Dec 2027 + 1: 25-26 weekend, Mon 27 and Tue 28 substitutes -> Wed 29 Dec.
    case("1d-xmas-2027", EW, "due", L(2027, 12, 24, 10), P(1, "days"), L(2027, 12, 29, 17)),
    # Fri 31 Dec 2027 + 1: Sat 1 Jan, Sun, Mon 3 Jan 2028 substitute -> Tue 4 Jan 2028.
    case("1d-new-year-2028", EW, "due", L(2027, 12, 31, 10), P(1, "days"), L(2028, 1, 4, 17)),
    # --- weeks -----------------------------------------------------------------------------
    # 2 weeks = 10 working days after Tue 13 Jan 2026 -> Tue 27 Jan.
    case("2w-working", EW, "due", L(2026, 1, 13, 10), P(2, "weeks"), L(2026, 1, 27, 17)),
    # 1 week = 5 working days after Fri 27 Aug 2027: Mon 30 Aug closed; 31, 1, 2, 3, Mon 6 Sep.
    case("1w-summer-bh-2027", EW, "due", L(2027, 8, 27, 10), P(1, "weeks"), L(2027, 9, 6, 17)),
    # 24x7: 7 calendar days, bank holiday irrelevant.
    case("1w-24x7", H24, "due", L(2027, 8, 27, 10), P(1, "weeks"), EOD(2027, 9, 3)),
    # --- months ----------------------------------------------------------------------------
    # Sat 31 Jan 2026 + 1 month = Sat 28 Feb (clamped) -> next working day Mon 2 Mar.
    case("1m-31-jan", EW, "due", L(2026, 1, 31, 10), P(1, "months"), L(2026, 3, 2, 17)),
    # Tue 31 Mar 2026 + 1 month = Thu 30 Apr (clamped).
    case("1m-31-mar", EW, "due", L(2026, 3, 31, 10), P(1, "months"), L(2026, 4, 30, 17)),
    # Leap year: Mon 31 Jan 2028 + 1 month = Tue 29 Feb 2028.
    case("1m-leap-2028", EW, "due", L(2028, 1, 31, 10), P(1, "months"), L(2028, 2, 29, 17)),
    # Tue 3 Mar 2026 + 1 month = Good Friday 3 Apr -> forward past Easter Monday to Tue 7 Apr.
    case("1m-good-friday", EW, "due", L(2026, 3, 3, 10), P(1, "months"), L(2026, 4, 7, 17)),
    # Fri 25 Sep 2026 (BST) + 1 month = Sun 25 Oct -> Mon 26 Oct 17:00 GMT.
    case("1m-autumn", EW, "due", L(2026, 9, 25, 10), P(1, "months"), L(2026, 10, 26, 17)),
    # 24x7: 31 Jan 2026 + 1 month = 28 Feb 2026 (a Saturday counts).
    case("1m-31-jan-24x7", H24, "due", L(2026, 1, 31, 10), P(1, "months"), EOD(2026, 2, 28)),
    # 24x7: 29 Feb 2028 + 12 months = 28 Feb 2029 (clamped; 24x7 has no year range).
    case("12m-leap-day", H24, "due", L(2028, 2, 29, 9), P(12, "months"), EOD(2029, 2, 28)),
    # --- 24x7 days and hours -------------------------------------------------------------------
    # 0 days: 23:59:59 of the start day.
    case("0d-24x7", H24, "due", L(2026, 1, 13, 10), P(0, "days"), EOD(2026, 1, 13)),
    # 0 days from 23:59:59: counted from the start of its minute (23:59), before the close.
    case("0d-24x7-last-second", H24, "due", EOD(2026, 1, 13), P(0, "days"), EOD(2026, 1, 13)),
    # --- precision: a start counts from the start of its minute ---------------------------
    # 15:00:00.014 + 2 working hours = 17:00 the same day (not 09:00:00.014 the next morning).
    case(
        "2h-work-ms-past",
        EW,
        "due",
        L(2026, 1, 13, 15).replace(microsecond=14_000),
        P(2, "hours"),
        L(2026, 1, 13, 17),
    ),
    # 16:59:59 + 1 working minute: from 16:59, so 17:00 the same day.
    case(
        "1m-work-last-second",
        EW,
        "due",
        L(2026, 1, 13, 16, 59, 59),
        P(1, "minutes"),
        L(2026, 1, 13, 17),
    ),
    # A zero target never falls due before its start (23:59:00 would be 59 s before it).
    case("0m-24x7-seconds", H24, "due", EOD(2026, 1, 13), P(0, "minutes"), EOD(2026, 1, 13)),
    # 24x7 hours are elapsed time from the minute: 10:30:45 + 3 hours = 13:30:00.
    case(
        "3h-24x7-seconds",
        H24,
        "due",
        L(2026, 1, 13, 10, 30, 45),
        P(3, "hours"),
        L(2026, 1, 13, 13, 30),
    ),
    # A 2-hour lag from a completion at 15:00:30 on a working calendar starts at 17:00.
    case("2h-lag-seconds", EW, "lag", L(2026, 1, 13, 15, 0, 30), P(2, "hours"), L(2026, 1, 13, 17)),
    # Saturday counts on 24x7: Sat 10 Jan + 2 = Mon 12 Jan.
    case("2d-24x7", H24, "due", L(2026, 1, 10, 10), P(2, "days"), EOD(2026, 1, 12)),
    # Bank holidays count on 24x7: Thu 2 Apr 2026 + 2 = Sat 4 Apr.
    case("2d-24x7-easter", H24, "due", L(2026, 4, 2, 15), P(2, "days"), EOD(2026, 4, 4)),
    # s.202 review request: 21 days beginning with notification day Mon 2 Mar -> day + 20.
    case("s202-21-days", H24, "due", L(2026, 3, 2, 11), P(20, "days"), EOD(2026, 3, 22)),
    # 56 days from Mon 5 Jan 2026: 26 to 31 Jan, 54 to 28 Feb, 56 -> Mon 2 Mar.
    case("56d-prevention", H24, "due", L(2026, 1, 5, 10), P(56, "days"), EOD(2026, 3, 2)),
    # Sat 28 Mar 2026 + 1 day = Sun 29 Mar 23:59:59 BST.
    case("1d-24x7-spring", H24, "due", L(2026, 3, 28, 10), P(1, "days"), EOD(2026, 3, 29)),
    # 24 elapsed hours over the spring change: 12:00 GMT -> 13:00 BST next day.
    case("24h-spring-2026", H24, "due", L(2026, 3, 28, 12), P(24, "hours"), L(2026, 3, 29, 13)),
    # 24 elapsed hours over the autumn change: 12:00 BST -> 11:00 GMT next day.
    case("24h-autumn-2026", H24, "due", L(2026, 10, 24, 12), P(24, "hours"), L(2026, 10, 25, 11)),
    # 00:30 GMT + 1h = 01:30 UTC = 02:30 BST (01:00-02:00 never happens locally).
    case("1h-into-gap", H24, "due", L(2026, 3, 29, 0, 30), P(1, "hours"), L(2026, 3, 29, 2, 30)),
    # Sat 27 Mar 2027 22:00 GMT + 6h = 04:00 UTC = 05:00 BST.
    case("6h-spring-2027", H24, "due", L(2027, 3, 27, 22), P(6, "hours"), L(2027, 3, 28, 5)),
    # Sun 31 Oct 2027 00:30 BST (23:30 UTC) + 3h = 02:30 UTC = 02:30 GMT.
    case(
        "3h-autumn-2027", H24, "due", L(2027, 10, 31, 0, 30), P(3, "hours"), L(2027, 10, 31, 2, 30)
    ),
    # --- amber: counted back -------------------------------------------------------------------
    # Due Tue 7 Apr 2026: back over Easter Monday and Good Friday: Thu 2 (1), Wed 1 Apr (2).
    case("amber-2d-easter", EW, "amber", L(2026, 4, 7, 17), P(2, "days"), L(2026, 4, 1, 17)),
    # Mon 09:00 - 1h = the previous working day's 16:00 (Fri 9 Jan).
    case("amber-1h-mon-0900", EW, "amber", L(2026, 1, 12, 9), P(1, "hours"), L(2026, 1, 9, 16)),
    # Ending exactly at an opening gives that opening.
    case("amber-2h-to-opening", EW, "amber", L(2026, 1, 13, 11), P(2, "hours"), L(2026, 1, 13, 9)),
    # Tue 7 Apr 11:00 - 3h: 2h back to 09:00, then Thu 2 Apr 17:00 - 1h.
    case("amber-3h-easter", EW, "amber", L(2026, 4, 7, 11), P(3, "hours"), L(2026, 4, 2, 16)),
    # Mon 12 Jan 09:15 - 30min: 15min Monday, 15min back from Fri 17:00.
    case(
        "amber-30min", EW, "amber", L(2026, 1, 12, 9, 15), P(30, "minutes"), L(2026, 1, 9, 16, 45)
    ),
    # Mon 30 Mar 2026 (BST) - 1 month = 30 Feb -> 28 Feb (Sat) -> back to Fri 27 Feb (GMT).
    case("amber-1m-clamp", EW, "amber", L(2026, 3, 30, 17), P(1, "months"), L(2026, 2, 27, 17)),
    # Wed 6 May 2026 - 1 month = Easter Monday -> back past Good Friday to Thu 2 Apr.
    case("amber-1m-easter", EW, "amber", L(2026, 5, 6, 17), P(1, "months"), L(2026, 4, 2, 17)),
    # Wed 8 Apr 2026 - 1 week (5 working days): 7, 2, 1, 31 Mar, Mon 30 Mar.
    case("amber-1w", EW, "amber", L(2026, 4, 8, 17), P(1, "weeks"), L(2026, 3, 30, 17)),
    # Amber 0 = due itself.
    case("amber-0", EW, "amber", L(2026, 1, 13, 17), P(0, "days"), L(2026, 1, 13, 17)),
    # 24x7: Sun 29 Mar 23:59:59 BST - 1 day = Sat 28 Mar 23:59:59 GMT.
    case("amber-1d-24x7", H24, "amber", EOD(2026, 3, 29), P(1, "days"), EOD(2026, 3, 28)),
    # 24x7: 12:00 BST (11:00 UTC) - 12 elapsed hours = 23:00 UTC = 23:00 GMT the day before.
    case("amber-12h-24x7", H24, "amber", L(2026, 3, 29, 12), P(12, "hours"), L(2026, 3, 28, 23)),
    # 24x7: 31 Mar - 1 month = 28 Feb (clamped).
    case("amber-1m-24x7", H24, "amber", EOD(2026, 3, 31), P(1, "months"), EOD(2026, 2, 28)),
    # --- follow-on: counted forward from the due instant ---------------------------------------
    # Due Thu 24 Dec 2026 17:00 + 1 day -> Tue 29 Dec.
    case("follow-1d-xmas", EW, "follow_on", L(2026, 12, 24, 17), P(1, "days"), L(2026, 12, 29, 17)),
    # Due Tue 13 Jan 17:00 + 1 day: the working day after the due date.
    case("follow-1d", EW, "follow_on", L(2026, 1, 13, 17), P(1, "days"), L(2026, 1, 14, 17)),
    # Due Fri 9 Jan 17:00 + 2h: closing is outside open time, so Mon 09:00 + 2h.
    case("follow-2h", EW, "follow_on", L(2026, 1, 9, 17), P(2, "hours"), L(2026, 1, 12, 11)),
    # A zero follow-on is the previous instant.
    case("follow-0", EW, "follow_on", L(2026, 1, 9, 17), P(0, "days"), L(2026, 1, 9, 17)),
    # 24x7 weekly follow-on.
    case("follow-1w-24x7", H24, "follow_on", EOD(2027, 9, 3), P(1, "weeks"), EOD(2027, 9, 10)),
    # --- lag -----------------------------------------------------------------------------------
    # 1 day after Fri 9 Jan 15:20: opening of Mon 12 Jan.
    case("lag-1d", EW, "lag", L(2026, 1, 9, 15, 20), P(1, "days"), L(2026, 1, 12, 9)),
    # 2 days after Thu 2 Apr 2026: Good Friday, Easter Monday closed; Tue 7 (1), Wed 8 (2).
    case("lag-2d-easter", EW, "lag", L(2026, 4, 2, 10), P(2, "days"), L(2026, 4, 8, 9)),
    # Lag 0 hours: the completion instant itself, even outside open time.
    case("lag-0h", EW, "lag", L(2026, 1, 9, 18, 30), P(0, "hours"), L(2026, 1, 9, 18, 30)),
    # Lag 0 days on a Saturday: the completion instant itself.
    case("lag-0d", EW, "lag", L(2026, 1, 10, 11), P(0, "days"), L(2026, 1, 10, 11)),
    # Lag 3h from Fri 16:00: 1h Friday, 2h Monday.
    case("lag-3h", EW, "lag", L(2026, 1, 9, 16), P(3, "hours"), L(2026, 1, 12, 11)),
    # Lag 1 week from Fri 27 Aug 2027: 5th working day after (Mon 30 Aug closed) = Mon 6 Sep.
    case("lag-1w", EW, "lag", L(2027, 8, 27, 14), P(1, "weeks"), L(2027, 9, 6, 9)),
    # Lag 1 month from Tue 3 Mar 2026 = Good Friday -> Tue 7 Apr 09:00 BST.
    case("lag-1m", EW, "lag", L(2026, 3, 3, 14), P(1, "months"), L(2026, 4, 7, 9)),
    # 24x7 lag 1 day: 00:00 of the next day (Sun 29 Mar, still GMT at midnight).
    case("lag-1d-24x7", H24, "lag", L(2026, 3, 28, 15), P(1, "days"), L(2026, 3, 29, 0)),
    # 24x7 lag 2h from 00:30 BST on 25 Oct 2026 = 01:30 UTC = the second 01:30 (GMT, fold=1).
    case(
        "lag-2h-24x7",
        H24,
        "lag",
        L(2026, 10, 25, 0, 30),
        P(2, "hours"),
        L(2026, 10, 25, 1, 30, fold=1),
    ),
    # --- Scotland differs --------------------------------------------------------------------
    # Wed 31 Dec 2025 + 1: 1 Jan and 2 Jan (Scotland only) closed -> Mon 5 Jan 2026.
    case("sct-2-jan", SCT, "due", L(2025, 12, 31, 10), P(1, "days"), L(2026, 1, 5, 17)),
    # ... while in England and Wales Fri 2 Jan is a working day.
    case("ew-2-jan", EW, "due", L(2025, 12, 31, 10), P(1, "days"), L(2026, 1, 2, 17)),
    # Fri 27 Nov 2026 + 1: St Andrew's Day Mon 30 Nov closed in Scotland -> Tue 1 Dec.
    case("sct-st-andrew", SCT, "due", L(2026, 11, 27, 10), P(1, "days"), L(2026, 12, 1, 17)),
    # ... but a working day in England and Wales.
    case("ew-st-andrew", EW, "due", L(2026, 11, 27, 10), P(1, "days"), L(2026, 11, 30, 17)),
    # Easter Monday is not a Scottish bank holiday: Thu 2 Apr + 1 -> Mon 6 Apr.
    case("sct-easter-monday", SCT, "due", L(2026, 4, 2, 10), P(1, "days"), L(2026, 4, 6, 17)),
    # Nor is the last Monday in August: Fri 28 Aug 2026 + 1 -> Mon 31 Aug.
    case("sct-31-aug", SCT, "due", L(2026, 8, 28, 10), P(1, "days"), L(2026, 8, 31, 17)),
    # --- Northern Ireland ----------------------------------------------------------------------
    # Mon 16 Mar 2026 + 1: St Patrick's Day Tue 17 Mar closed -> Wed 18 Mar.
    case("ni-st-patrick", NI, "due", L(2026, 3, 16, 10), P(1, "days"), L(2026, 3, 18, 17)),
    # Fri 10 Jul 2026 + 1: 12 Jul is a Sunday, Mon 13 Jul substitute closed -> Tue 14 Jul.
    case("ni-12-jul-2026", NI, "due", L(2026, 7, 10, 10), P(1, "days"), L(2026, 7, 14, 17)),
    # Fri 9 Jul 2027 16:00 + 2h: 1h Fri, Mon 12 Jul closed, Tue 13 Jul 09-10.
    case("ni-12-jul-2027", NI, "due", L(2027, 7, 9, 16), P(2, "hours"), L(2027, 7, 13, 10)),
    # --- non-default opening hours 08:30-16:30 --------------------------------------------------
    # Fri 15:30-16:30 (1h), Mon 08:30-09:30.
    case("early-2h", EARLY, "due", L(2026, 1, 9, 15, 30), P(2, "hours"), L(2026, 1, 12, 9, 30)),
    # 16:30 exactly is closing: 0 days -> close of Wed.
    case("early-0d", EARLY, "due", L(2026, 1, 13, 16, 30), P(0, "days"), L(2026, 1, 14, 16, 30)),
    # Lag 1 day -> opening 08:30 of the next working day.
    case("early-lag-1d", EARLY, "lag", L(2026, 1, 13, 12), P(1, "days"), L(2026, 1, 14, 8, 30)),
    # Start 08:00: counts from 08:30.
    case("early-30min", EARLY, "due", L(2026, 1, 13, 8), P(30, "minutes"), L(2026, 1, 13, 9)),
    # --- extra closure days -----------------------------------------------------------------------
    # Thu 24 Dec 2026 + 1: 25, 28 bank holidays, 29-31 shutdown, 1 Jan -> Mon 4 Jan 2027.
    case("shutdown-1d", SHUTDOWN, "due", L(2026, 12, 24, 12), P(1, "days"), L(2027, 1, 4, 17)),
    # Thu 24 Dec 2026 16:00 + 2h: 1h Thu, Mon 4 Jan 09-10.
    case("shutdown-2h", SHUTDOWN, "due", L(2026, 12, 24, 16), P(2, "hours"), L(2027, 1, 4, 10)),
]


@pytest.mark.parametrize(("calendar", "op", "instant", "period", "expected"), CASES)
def test_hand_computed(
    calendar: SlaCalendar, op: Op, instant: datetime, period: Period, expected: datetime
) -> None:
    result = run(calendar, op, instant, period)
    assert result.tzinfo is UTC
    # Compare in UTC: Python never treats a fold=1 local time as equal to another zone's time.
    assert result == expected.astimezone(UTC), (
        f"got {result.astimezone(LONDON).isoformat()} local, "
        f"expected {expected.astimezone(LONDON).isoformat()}"
    )


def test_enough_hand_computed_cases() -> None:
    assert len(CASES) >= 45


def test_utc_offset_changes_in_working_results() -> None:
    # Spot-check that the table really exercises results whose offset differs from the start.
    start = L(2026, 3, 27, 16)
    result = EW.due(start, P(2, "hours"))
    assert start.utcoffset() == timedelta(0)
    assert result.astimezone(LONDON).utcoffset() == timedelta(hours=1)
    assert result == datetime(2026, 3, 30, 9, tzinfo=UTC)


# --- bank holidays ----------------------------------------------------------------------------


def _weekdays(days: frozenset[date], year: int) -> set[date]:
    return {d for d in days if d.year == year and d.weekday() < 5}


def test_england_and_wales_bank_holidays_match_domain() -> None:
    found = bank_holidays("england_and_wales", 2026, 2027)
    assert _weekdays(found, 2026) == {
        date(2026, 1, 1),
        date(2026, 4, 3),
        date(2026, 4, 6),
        date(2026, 5, 4),
        date(2026, 5, 25),
        date(2026, 8, 31),
        date(2026, 12, 25),
        date(2026, 12, 28),
    }
    assert _weekdays(found, 2027) == {
        date(2027, 1, 1),
        date(2027, 3, 26),
        date(2027, 3, 29),
        date(2027, 5, 3),
        date(2027, 5, 31),
        date(2027, 8, 30),
        date(2027, 12, 27),
        date(2027, 12, 28),
    }
    assert all(2026 <= d.year <= 2027 for d in found)


def test_scotland_and_northern_ireland_differ() -> None:
    sct = bank_holidays("scotland", 2026, 2026)
    ni = bank_holidays("northern_ireland", 2026, 2027)
    assert {date(2026, 1, 2), date(2026, 11, 30)} <= sct
    assert date(2026, 4, 6) not in sct  # no Easter Monday in Scotland
    assert {date(2026, 3, 17), date(2026, 7, 13), date(2027, 3, 17), date(2027, 7, 12)} <= ni


def test_bank_holidays_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="after"):
        bank_holidays("england_and_wales", 2027, 2026)
    with pytest.raises(ValueError, match="unknown nation"):
        bank_holidays("wales", 2026, 2026)  # type: ignore[arg-type]


# --- open time and working days ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (L(2026, 1, 13, 9), True),  # opening is inside [09:00, 17:00)
        (L(2026, 1, 13, 16, 59, 59), True),
        (L(2026, 1, 13, 17), False),  # closing is outside
        (L(2026, 1, 13, 8, 59), False),
        (L(2026, 1, 10, 12), False),  # Saturday
        (L(2026, 4, 3, 12), False),  # Good Friday
    ],
)
def test_is_open(instant: datetime, expected: bool) -> None:
    assert EW.is_open(instant) is expected
    assert H24.is_open(instant) is True


def test_is_working_day() -> None:
    assert EW.is_working_day(date(2026, 4, 7))
    assert not EW.is_working_day(date(2026, 4, 6))
    assert not EW.is_working_day(date(2026, 4, 4))
    assert H24.is_working_day(date(2026, 4, 6))


def test_accepts_any_aware_timezone() -> None:
    # 15:00 UTC on Fri 9 Jan 2026 is 15:00 GMT, given here as 20:00 at +05:00.
    start = datetime(2026, 1, 9, 20, tzinfo=timezone(timedelta(hours=5)))
    assert EW.due(start, P(4, "hours")) == L(2026, 1, 12, 11)


# --- errors -------------------------------------------------------------------------------------


def test_naive_datetime_rejected() -> None:
    for method in (EW.due, EW.amber, EW.follow_on, EW.lag_start, H24.due):
        with pytest.raises(ValueError, match="naive"):
            method(datetime(2026, 1, 13, 10), P(1, "days"))
    with pytest.raises(ValueError, match="naive"):
        EW.is_open(datetime(2026, 1, 13, 10))


def test_range_error_after_last_year() -> None:
    # Fri 29 Dec 2028 + 2 working days needs to know whether early January 2029 is closed.
    with pytest.raises(CalendarRangeError) as raised:
        EW.due(L(2028, 12, 29, 10), P(2, "days"))
    message = str(raised.value)
    assert "england-and-wales" in message
    assert "2029-01-01" in message
    assert raised.value.day == date(2029, 1, 1)


def test_range_error_before_first_year() -> None:
    # 0 days must know whether the start day itself (31 Dec 2024) is a working day.
    with pytest.raises(CalendarRangeError, match="2024-12-31"):
        EW.due(L(2024, 12, 31, 10), P(0, "days"))
    # Counting back from 2 Jan 2025 over 1 Jan 2025 reaches 31 Dec 2024.
    with pytest.raises(CalendarRangeError):
        EW.amber(L(2025, 1, 2, 17), P(2, "days"))


def test_range_only_checked_for_dates_consulted() -> None:
    # 1 day after 31 Dec 2024 only needs 2025's closed days: Thu 2 Jan 2025 (1 Jan closed).
    assert EW.due(L(2024, 12, 31, 10), P(1, "days")) == L(2025, 1, 2, 17)


def test_range_error_is_a_value_error() -> None:
    assert issubclass(CalendarRangeError, ValueError)


def test_24x7_has_no_range_check() -> None:
    bounded = SlaCalendar(key="always", kind="24x7", first_year=2026, last_year=2026)
    assert bounded.due(L(2030, 6, 1, 10), P(1, "days")) == EOD(2030, 6, 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"opening": time(17, 0), "closing": time(9, 0)},
        {"working_weekdays": frozenset()},
        {"working_weekdays": frozenset({7})},
        {"time_zone": "Not/AZone"},
        {"first_year": 2027, "last_year": 2026},
    ],
)
def test_invalid_calendar_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SlaCalendar(key="bad", kind="working_days", **kwargs)  # type: ignore[arg-type]
