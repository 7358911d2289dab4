"""Grafana's PostgreSQL macros and template variables, expanded as Grafana expands them.

Sources: Grafana's PostgreSQL data source documentation ("Macros") and its macro engine
(``pkg/tsdb/grafana-postgresql-datasource/macros.go``): macros are matched by
``\\$(\\w+)\\(([^)]*)\\)``, arguments split on commas and trimmed; times are UTC RFC 3339;
``$__timeGroup`` on plain PostgreSQL is ``floor(extract(epoch from col)/s)*s`` (TimescaleDB
mode: ``time_bucket('<s>.000s',col)``); ``$__interval`` / ``$__interval_ms`` are replaced
by the query interval before the macros. Template variables follow the SQL data sources'
interpolation: a single value is inserted with ``'`` doubled (the query quotes it:
``'$team'``); a multi-value / include-all variable becomes ``'a','b'`` (used with IN).

This exists so tests can run every panel's SQL against the real database exactly as
Grafana would send it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = ["MacroError", "TimeRange", "expand", "format_interval", "parse_interval"]

_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
_VAR = re.compile(r"\$\{([A-Za-z0-9_]+)(?::([a-z]+))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class MacroError(ValueError):
    pass


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    interval: timedelta = timedelta(minutes=1)
    timescaledb: bool = False
    variables: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    multi: frozenset[str] = frozenset()


def parse_interval(text: str) -> timedelta:
    m = re.fullmatch(r"\s*'?(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)'?\s*", text)
    if not m:
        raise MacroError(f"error parsing interval {text}")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def format_interval(d: timedelta) -> str:
    """Grafana's gtime.FormatInterval: the largest whole unit (y, d, h, m, s, ms)."""
    ms = int(d.total_seconds() * 1000)
    for unit, size in (("y", 31536000000), ("d", 86400000), ("h", 3600000), ("m", 60000),
                       ("s", 1000)):  # fmt: skip
        if ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _rfc3339(t: datetime) -> str:
    # Go's time.RFC3339Nano: trailing zeros of the fraction dropped, UTC as Z
    t = t.astimezone(UTC)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        base += ("." + f"{t.microsecond:06d}").rstrip("0")
    return base + "Z"


def _seconds(d: timedelta) -> str:
    s = d.total_seconds()
    return str(int(s)) if s == int(s) else repr(s)  # Go's %v of a float64


def _macro(name: str, args: list[str], tr: TimeRange) -> str:
    frm, to = _rfc3339(tr.start), _rfc3339(tr.end)
    need = f"missing time column argument for macro {name}"
    if name == "__time":
        if not args or not args[0]:
            raise MacroError(need)
        return f'{args[0]} AS "time"'
    if name == "__timeEpoch":
        if not args or not args[0]:
            raise MacroError(need)
        return f'extract(epoch from {args[0]}) as "time"'
    if name == "__timeFilter":
        if not args or not args[0]:
            raise MacroError(need)
        return f"{args[0]} BETWEEN '{frm}' AND '{to}'"
    if name == "__timeFrom":
        return f"'{frm}'"
    if name == "__timeTo":
        return f"'{to}'"
    if name in ("__timeGroup", "__timeGroupAlias"):
        if len(args) < 2:
            raise MacroError(f"macro {name} needs time column and interval and optional fill value")
        iv = parse_interval(args[1].strip("'"))
        if tr.timescaledb:
            out = f"time_bucket('{iv.total_seconds():.3f}s',{args[0]})"
        else:
            s = _seconds(iv)
            out = f"floor(extract(epoch from {args[0]})/{s})*{s}"
        return out + ' AS "time"' if name == "__timeGroupAlias" else out
    if name == "__unixEpochFilter":
        return (
            f"{args[0]} >= {int(tr.start.timestamp())} AND {args[0]} <= {int(tr.end.timestamp())}"
        )
    if name == "__unixEpochFrom":
        return str(int(tr.start.timestamp()))
    if name == "__unixEpochTo":
        return str(int(tr.end.timestamp()))
    raise MacroError(f"unknown macro {name!r}")


def _quote(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


def _variable(name: str, tr: TimeRange) -> str | None:
    if name not in tr.variables:
        return None
    value = tr.variables[name]
    if isinstance(value, str) and name not in tr.multi:
        return value.replace("'", "''")
    values = [value] if isinstance(value, str) else list(value)
    return ",".join(_quote(v) for v in values)


def expand(sql: str, tr: TimeRange) -> str:
    """``sql`` as Grafana's PostgreSQL data source would run it for ``tr``."""
    # 1. dashboard template variables and the interval globals (frontend interpolation)
    sql = sql.replace("$__interval_ms", str(int(tr.interval.total_seconds() * 1000)))
    sql = sql.replace("$__interval", format_interval(tr.interval))

    def var(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        if name.startswith("__"):
            return m.group(0)  # a macro, handled below
        got = _variable(name, tr)
        if got is None:
            raise MacroError(f"template variable ${name} has no value")
        return got

    sql = _VAR.sub(var, sql)
    # 2. the data source's macros (backend)
    sql = sql.replace("$__unixEpochFrom()", str(int(tr.start.timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(tr.end.timestamp())))

    def macro(m: re.Match[str]) -> str:
        name, raw = m.group(1), m.group(2)
        args = [a.strip(" ") for a in raw.split(",")]
        if name == "__timeGroup":  # pre-5.3 compatibility: a ',' right after means Alias
            idx = sql.find(m.group(0))
            if idx >= 0 and sql[idx + len(m.group(0)) : idx + len(m.group(0)) + 1] == ",":
                name = "__timeGroupAlias"
        return _macro(name, args, tr)

    out = _MACRO.sub(macro, sql)
    if "$__" in out:
        raise MacroError(f"unexpanded macro in: {out}")
    return out
