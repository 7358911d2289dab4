"""The fleet views read into polars lazy frames: PostgreSQL → Arrow → polars through ADBC.

Why ADBC (``adbc-driver-postgresql``, the Apache Arrow project's libpq driver): it reads a
query with PostgreSQL's binary COPY straight into Arrow columns, which polars takes
without a copy through the Arrow C stream interface — no pyarrow, no Python object per
value, and the column types come from PostgreSQL (timestamptz stays a UTC datetime,
real stays a float, booleans stay booleans). On 1,000,000 unit-status rows (8 columns)
on this machine: ADBC 1.10 s, psycopg ``COPY … TO STDOUT (FORMAT csv)`` + ``pl.read_csv``
2.57 s (and every boolean came back a string), psycopg ``fetchall`` + ``pl.DataFrame``
4.84 s (medians of 3); connectorx needs pyarrow at run time. README "Fleet report" has the
figures; ``loadtests/bench_fleet_report.py`` measures the report against a plain read.

Only the public ``kneeload_api`` views are read, so a clinic role's report holds what
row-level security lets it see. Query values are literals quoted by psycopg's
:mod:`psycopg.sql` (ADBC's parameter binding needs pyarrow for arrays and NULLs). Long
reads are split into ``chunk_days`` slices of time, one query each, so a progress bar can
follow them; the slices are concatenated lazily.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
from psycopg import sql

from kneeload.core.outcomes import FLARE_KINDS

__all__ = ["FleetFrames", "Source", "read_fleet", "sources"]

#: hook called after each query: (source name, rows read, queries done, queries in all)
Progress = Callable[[str, int, int, int], None]


@dataclass(frozen=True, slots=True)
class Source:
    """One query of the read; chunked on ``time_column`` (the bound is passed to ``query``)."""

    name: str
    query: Callable[[sql.Composable], sql.Composable]  # the time bound -> the query
    time_column: str | None = None  # chunked on this column when set
    dates: bool = False  # the time column is a date


@dataclass(frozen=True, slots=True)
class FleetFrames:
    """The fleet's rows for a period, one lazy frame per view."""

    units: pl.LazyFrame  # unit_id, clinic_id, clinic_name
    states: pl.LazyFrame  # unit_id, clinic_id, time, online, in_use, last_seen
    sessions: pl.LazyFrame  # fleet_sessions (closed) in the period
    calibration: pl.LazyFrame  # fleet_calibration_daily
    bws: pl.LazyFrame  # fleet_bws_distribution
    pain: pl.LazyFrame  # next-morning pain reports of the athletes who trained on the units
    flares: pl.LazyFrame  # pain alert episodes of those athletes
    rows: dict[str, int]


def _clinic_filter(clinics: Sequence[str] | None, column: str = "clinic_id") -> sql.Composable:
    if clinics is None:
        return sql.SQL("true")
    return sql.SQL("{} = ANY({})").format(sql.Identifier(column), sql.Literal(list(clinics)))


def sources(
    clinics: Sequence[str] | None, t0: dt.datetime, t1: dt.datetime, pain_until: dt.datetime
) -> list[Source]:
    """The queries of a fleet read of [t0, t1) for ``clinics`` (None: every clinic the
    role may see)."""
    cf = _clinic_filter(clinics)
    lt0, lt1 = sql.Literal(t0), sql.Literal(t1)
    athletes = sql.SQL(
        "athlete_id IN (SELECT athlete_id FROM kneeload_api.fleet_sessions "
        "WHERE start_time >= {} AND start_time < {} AND {})"
    ).format(lt0, lt1, cf)
    return [
        Source("units", lambda b: sql.SQL(
            "SELECT unit_id, clinic_id, clinic_name FROM kneeload_api.fleet_status WHERE {}"
        ).format(cf)),
        Source("states_before", lambda b: sql.SQL(
            "SELECT DISTINCT ON (unit_id) unit_id, clinic_id, time, online, in_use, last_seen "
            "FROM kneeload_api.fleet_unit_states WHERE time < {} AND {} "
            "ORDER BY unit_id, time DESC"
        ).format(lt0, cf)),
        Source("states", lambda b: sql.SQL(
            "SELECT unit_id, clinic_id, time, online, in_use, last_seen "
            "FROM kneeload_api.fleet_unit_states WHERE {} AND {}"
        ).format(b, cf), "time"),
        Source("sessions", lambda b: sql.SQL(
            "SELECT unit_id, clinic_id, session_id, athlete_id, start_time, end_time, "
            "duration_s, distance_m, mean_bws_pct, pfj_load_mpa_s, pfj_load_per_km "
            "FROM kneeload_api.fleet_sessions WHERE status = 'closed' AND {} AND {}"
        ).format(b, cf), "start_time"),
        Source("calibration", lambda b: sql.SQL(
            "SELECT unit_id, clinic_id, date, samples, bias_pp::float8 AS bias_pp, "
            "mae_pp::float8 AS mae_pp, trend_pp_per_day::float8 AS trend_pp_per_day, "
            "out_of_tolerance, tolerance_pp FROM kneeload_api.fleet_calibration_daily "
            "WHERE {} AND {}"
        ).format(b, cf)),  # one query: the view's 14-day trend is computed over every day
        Source("bws", lambda b: sql.SQL(
            "SELECT unit_id, clinic_id, date, bws_band_low_pct, bws_band_high_pct, "
            "minutes::float8 AS minutes, athletes FROM kneeload_api.fleet_bws_distribution "
            "WHERE {} AND {}"
        ).format(b, cf), "date", dates=True),
        Source("pain", lambda b: sql.SQL(
            "SELECT athlete_id, time, pain_nrs::float8 AS pain_nrs "
            "FROM kneeload_api.pain_responses "
            "WHERE context = 'next_morning' AND time >= {} AND time <= {} AND {}"
        ).format(lt0, sql.Literal(pain_until), athletes)),
        Source("flares", lambda b: sql.SQL(
            "SELECT athlete_id, episode_id, kind, opened_at FROM kneeload_api.alert_episodes "
            "WHERE kind = ANY({}) AND opened_at >= {} AND opened_at <= {} AND {}"
        ).format(sql.Literal(list(FLARE_KINDS)), lt0, sql.Literal(pain_until), athletes)),
    ]  # fmt: skip


def _slices(
    t0: dt.datetime, t1: dt.datetime, chunk_days: float
) -> list[tuple[dt.datetime, dt.datetime]]:
    out = []
    step = dt.timedelta(days=chunk_days)
    a = t0
    while a < t1:
        out.append((a, min(a + step, t1)))
        a += step
    return out or [(t0, t1)]


def _bound(src: Source, lo: dt.datetime, hi: dt.datetime, last: bool) -> sql.Composable:
    col = sql.Identifier(src.time_column or "time")
    if src.dates:
        d_lo = lo.date()
        d_hi = hi.date() if not last else (hi - dt.timedelta(microseconds=1)).date()
        op = sql.SQL("<=") if last else sql.SQL("<")
        return sql.SQL("{c} >= {a} AND {c} {op} {b}").format(
            c=col, a=sql.Literal(d_lo), op=op, b=sql.Literal(d_hi)
        )
    return sql.SQL("{c} >= {a} AND {c} < {b}").format(c=col, a=sql.Literal(lo), b=sql.Literal(hi))


def read_fleet(
    url: str,
    clinics: Sequence[str] | None,
    first: dt.date,
    last: dt.date,
    *,
    pain_after_h: float = 36.0,
    chunk_days: float = 7.0,
    progress: Progress | None = None,
) -> FleetFrames:
    """Read the fleet views for local days ``first`` … ``last`` (padded to cover every time
    zone) into lazy frames. ``pain_after_h``: pain reports and flares are read this long
    after the period (the next-morning report of its last sessions)."""
    import adbc_driver_postgresql.dbapi as adbc

    t0 = dt.datetime.combine(first, dt.time(), dt.UTC) - dt.timedelta(hours=14)
    t1 = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC) + dt.timedelta(
        hours=12
    )
    pain_until = t1 + dt.timedelta(hours=pain_after_h)
    srcs = sources(clinics, t0, t1, pain_until)
    plan: list[tuple[Source, str]] = []
    for s in srcs:
        if s.time_column is None:
            plan.append((s, s.query(sql.SQL("true")).as_string(None)))
            continue
        sl = _slices(t0, t1, chunk_days)
        for i, (lo, hi) in enumerate(sl):
            plan.append((s, s.query(_bound(s, lo, hi, i == len(sl) - 1)).as_string(None)))
    parts: dict[str, list[pl.DataFrame]] = {s.name: [] for s in srcs}
    rows: dict[str, int] = dict.fromkeys(parts, 0)
    with adbc.connect(url) as conn, conn.cursor() as cur:
        for k, (s, text) in enumerate(plan, 1):
            cur.execute(text)
            df = _frame(cur.fetch_arrow())
            parts[s.name].append(df)
            rows[s.name] += df.height
            if progress is not None:
                progress(s.name, df.height, k, len(plan))

    def lazy(*names: str) -> pl.LazyFrame:
        frames = [f for n in names for f in parts[n]]
        nonempty = [f for f in frames if f.height] or frames[:1]
        return pl.concat(nonempty, how="diagonal_relaxed").lazy()

    return FleetFrames(
        lazy("units"),
        lazy("states_before", "states"),
        lazy("sessions"),
        lazy("calibration"),
        lazy("bws"),
        lazy("pain"),
        lazy("flares"),
        rows,
    )


def _frame(stream: Any) -> pl.DataFrame:
    """An Arrow stream as a polars frame, time zones named "UTC" (PostgreSQL says Etc/UTC
    or UTC depending on the session; one name keeps concatenations and joins simple)."""
    df = pl.DataFrame(stream)
    casts = {
        c: pl.Datetime("us", "UTC")
        for c, t in df.schema.items()
        if isinstance(t, pl.Datetime) and t.time_zone is not None
    }
    return df.with_columns([pl.col(c).dt.convert_time_zone("UTC") for c in casts]) if casts else df
