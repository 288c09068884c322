"""UK bank holidays per nation, for building the closed days of a working calendar.

Configuration code resolves a calendar's closed days with this module once, and the result is
pinned on the case (see models.definition.CalendarSnapshot). Workflow code never imports this
module: the `holidays` package is data that changes between releases, and a running case must
keep the closed days it started with.
"""

from __future__ import annotations

from datetime import date
from typing import Literal, get_args

import holidays

Nation = Literal["england_and_wales", "scotland", "northern_ireland"]

NATIONS: tuple[Nation, ...] = get_args(Nation)

# England and Wales share one list of bank holidays; the package keys it as ENG (WLS is the
# same list under another code).
_SUBDIVISION: dict[Nation, str] = {
    "england_and_wales": "ENG",
    "scotland": "SCT",
    "northern_ireland": "NIR",
}


def bank_holidays(nation: Nation, first_year: int, last_year: int) -> frozenset[date]:
    """The bank holidays of `nation` in the years `first_year`..`last_year` inclusive.

    The set includes holidays that fall on a weekend as well as their substitute weekdays
    (e.g. 26 Dec 2026, a Saturday, and 28 Dec 2026, its substitute); the weekend dates are
    harmless because a working calendar is closed at weekends anyway.
    """
    if nation not in _SUBDIVISION:
        raise ValueError(f"unknown nation {nation!r}; expected one of {', '.join(NATIONS)}")
    if first_year > last_year:
        raise ValueError(f"first_year {first_year} is after last_year {last_year}")
    years = range(first_year, last_year + 1)
    found = holidays.country_holidays("GB", subdiv=_SUBDIVISION[nation], years=years)
    # The package can pull in neighbouring years' observed days; keep exactly the asked range
    # so the caller's [first_year, last_year] promise is true.
    return frozenset(day for day in found if first_year <= day.year <= last_year)
