"""Event-time helpers: RFC 3339 ↔ epoch milliseconds, local calendar days."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = dt.UTC


@lru_cache(maxsize=8192)
def _utc_minute_ms(prefix: str) -> int:
    """``YYYY-MM-DDTHH:MM`` (UTC) → epoch ms; cached (~60 samples share a minute)."""
    return round(dt.datetime.fromisoformat(prefix + ":00+00:00").timestamp() * 1000)


_SECONDS_MS = {f"{i:02d}": i * 1000 for i in range(60)}


def parse_ms(text: str) -> int:
    """RFC 3339 text (with offset or Z) → epoch milliseconds.

    Fast path for the hot case (every watch sample) ``YYYY-MM-DDTHH:MM:SS[.fff]Z``:
    the minute is cached, the seconds looked up; anything else goes through
    :meth:`datetime.fromisoformat`. Same results (tested against it).
    """
    n = len(text)
    if text[-1:] == "Z" and (n == 20 or (n == 24 and text[19] == ".")):
        sec = _SECONDS_MS.get(text[17:19])
        if sec is not None and text[16] == ":":
            ms = _utc_minute_ms(text[:16]) + sec
            if n == 20:
                return ms
            frac = text[20:23]
            if frac.isdigit():
                return ms + int(frac)
    d = dt.datetime.fromisoformat(text)
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return round(d.timestamp() * 1000)


def iso(ms: int) -> str:
    """Epoch milliseconds → RFC 3339 UTC text (``...Z``, milliseconds only when needed)."""
    d = dt.datetime.fromtimestamp(ms / 1000, UTC)
    if ms % 1000:
        return d.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return d.isoformat(timespec="seconds").replace("+00:00", "Z")


def to_dt(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, UTC)


@lru_cache(maxsize=1024)
def zone(name: str | None) -> dt.tzinfo:
    """The named zone, UTC when unknown or missing."""
    if not name or name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


class DayCalendar:
    """Local dates of epoch-ms instants in one zone, cached by day span (hot path)."""

    __slots__ = ("_end", "_iso", "_start", "tz")

    def __init__(self, tz_name: str | None) -> None:
        self.tz = zone(tz_name)
        self._start = 1
        self._end = 0
        self._iso = ""

    def date_iso(self, ms: int) -> str:
        if self._start <= ms < self._end:
            return self._iso
        d = dt.datetime.fromtimestamp(ms / 1000, self.tz).date()
        self._start = self.midnight_ms(d)
        self._end = self.midnight_ms(d + dt.timedelta(days=1))
        self._iso = d.isoformat()
        return self._iso

    def span(self) -> tuple[int, int]:
        """[start, end) epoch ms of the day of the last :meth:`date_iso` call."""
        return self._start, self._end

    def midnight_ms(self, d: dt.date) -> int:
        """Local midnight at the start of ``d`` as epoch ms."""
        return round(dt.datetime.combine(d, dt.time(0), tzinfo=self.tz).timestamp() * 1000)

    def end_of_day_ms(self, date_iso: str) -> int:
        """Local midnight at the END of the day ``date_iso``."""
        return self.midnight_ms(dt.date.fromisoformat(date_iso) + dt.timedelta(days=1))
