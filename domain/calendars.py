"""Turn a pinned calendar snapshot into the arithmetic object. Pure: the workflow imports it."""

from __future__ import annotations

from domain.sla_calendar import SlaCalendar
from models.definition import CalendarSnapshot

# Keyed by the snapshot object's identity (the snapshot is kept in the value, so the id cannot
# be reused while the entry lives): the planner asks for the same few calendars on every call.
_cache: dict[int, tuple[CalendarSnapshot, SlaCalendar]] = {}
_CACHE_LIMIT = 512


def sla_calendar(snapshot: CalendarSnapshot) -> SlaCalendar:
    """The SlaCalendar for a snapshot, built once per snapshot object."""
    hit = _cache.get(id(snapshot))
    if hit is not None and hit[0] is snapshot:
        return hit[1]
    calendar = SlaCalendar(
        key=snapshot.key,
        kind=snapshot.kind,
        time_zone=snapshot.time_zone,
        opening=snapshot.opening,
        closing=snapshot.closing,
        working_weekdays=frozenset(snapshot.working_weekdays),
        closed_dates=frozenset(snapshot.closed_dates),
        first_year=snapshot.first_year,
        last_year=snapshot.last_year,
        minute_precision=snapshot.minute_precision,
    )
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[id(snapshot)] = (snapshot, calendar)
    return calendar
