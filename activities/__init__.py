"""Temporal activities: allocation, alerts, recording. All of a case's I/O lives here, and
every activity is idempotent, because Temporal retries them."""

from activities.casework import CaseworkActivities

__all__ = ["CaseworkActivities"]
