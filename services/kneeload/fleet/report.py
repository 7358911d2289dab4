"""The fleet report: a clinic manager's units side by side, as one self-contained HTML page
with PNG charts and CSV/Parquet exports of every table.

Read: the public views through :func:`kneeload.fleet.frames.read_fleet` (polars lazy
frames over ADBC). Computed: minutes per state by :mod:`kneeload.core.utilisation`
(via :func:`kneeload.fleet.utilisation_io.utilisation_rows`), outcomes by
:mod:`kneeload.core.outcomes`; calibration figures are the worker's
(:mod:`kneeload.core.fleet`, through ``fleet_calibration_daily``). polars only groups and
sums what those give; no domain formula lives here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from kneeload.core.outcomes import OutcomeConfig
from kneeload.core.utilisation import OpeningHours
from kneeload.fleet.frames import FleetFrames, Progress, read_fleet
from kneeload.fleet.outcomes_io import outcome_frame, outcomes_by_group
from kneeload.fleet.utilisation_io import COLUMNS as UTILISATION_COLUMNS
from kneeload.fleet.utilisation_io import utilisation_rows

__all__ = ["FleetReport", "ReportError", "build", "load", "state_changes", "write"]


class ReportError(RuntimeError):
    """The report cannot be made (nothing visible for the clinics asked); says why."""


@dataclass
class FleetReport:
    clinics: list[str] | None
    first: dt.date
    last: dt.date
    generated_at: dt.datetime
    units: pl.DataFrame  # unit_id, clinic_id, clinic_name
    utilisation: pl.DataFrame  # one row per unit and local day
    unit_summary: pl.DataFrame  # one row per unit
    calibration: pl.DataFrame  # fleet_calibration_daily rows of the period
    bws: pl.DataFrame  # unit_id, band, minutes
    outcomes_units: pl.DataFrame
    outcomes_clinics: pl.DataFrame
    rows_read: dict[str, int]
    cfg: OutcomeConfig
    hours: Mapping[str | None, OpeningHours]
    charts: dict[str, str] = field(default_factory=dict)  # name -> data URI

    @property
    def tables(self) -> dict[str, pl.DataFrame]:
        """The exported tables, by file stem."""
        return {
            "units": self.unit_summary,
            "utilisation_daily": self.utilisation,
            "calibration_daily": self.calibration,
            "bws_distribution": self.bws,
            "outcomes_by_unit": self.outcomes_units,
            "outcomes_by_clinic": self.outcomes_clinics,
        }


def load(
    url: str,
    clinics: Sequence[str] | None,
    first: dt.date,
    last: dt.date,
    hours: Mapping[str | None, OpeningHours],
    cfg: OutcomeConfig,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> FleetReport:
    """Read and compute the report for local days ``first`` … ``last``."""
    frames = read_fleet(
        url, clinics, first, last, pain_after_h=cfg.next_day_window_h, progress=progress
    )
    return build(frames, clinics, first, last, hours, cfg, now)


def _period(first: dt.date, last: dt.date) -> tuple[dt.datetime, dt.datetime]:
    return (
        dt.datetime.combine(first, dt.time(), dt.UTC),
        dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC),
    )


def build(
    f: FleetFrames,
    clinics: Sequence[str] | None,
    first: dt.date,
    last: dt.date,
    hours: Mapping[str | None, OpeningHours],
    cfg: OutcomeConfig,
    now: dt.datetime | None = None,
) -> FleetReport:
    """The report's tables from the frames (pure apart from the clock)."""
    units = f.units.unique("unit_id").sort("unit_id").collect()
    if units.height == 0:
        raise ReportError(
            f"no LEVER units for clinic {', '.join(clinics)} (unknown, or not one you may see)"
            if clinics
            else "no LEVER units you may see (none registered, or no clinic granted to you)"
        )
    states = state_changes(f.states).collect()
    sess = f.sessions.select("unit_id", "clinic_id", "start_time", "athlete_id").collect()
    util_rows = utilisation_rows(states.iter_rows(), sess.iter_rows(), first, last, hours, now)
    utilisation = pl.DataFrame(
        [r.values() for r in util_rows],
        schema={
            "unit_id": pl.String,
            "clinic_id": pl.String,
            "date": pl.Date,
            "open_min": pl.Float64,
            "in_use_min": pl.Float64,
            "idle_min": pl.Float64,
            "offline_min": pl.Float64,
            "unknown_min": pl.Float64,
            "in_use_outside_hours_min": pl.Float64,
            "utilisation_pct": pl.Float64,
            "sessions": pl.Int64,
            "athletes": pl.Int64,
        },
        orient="row",
    )
    assert tuple(utilisation.columns) == UTILISATION_COLUMNS
    calibration = (
        f.calibration.filter(pl.col("date").is_between(first, last)).sort("unit_id", "date")
    ).collect()
    bws = (
        f.bws.filter(pl.col("date").is_between(first, last))
        .group_by("unit_id", "bws_band_low_pct", "bws_band_high_pct")
        .agg(pl.col("minutes").sum())
        .sort("unit_id", "bws_band_low_pct")
        .collect()
    )
    period = _period(first, last)
    by_unit, by_clinic, _ = outcomes_by_group(f.sessions, f.pain, f.flares, period, cfg)
    return FleetReport(
        list(clinics) if clinics else None,
        first,
        last,
        dt.datetime.now(dt.UTC),
        units,
        utilisation,
        _unit_summary(units, utilisation, calibration, f.sessions, period),
        calibration,
        bws,
        outcome_frame("unit", by_unit),
        outcome_frame("clinic", by_clinic),
        dict(f.rows),
        cfg,
        hours,
    )


def state_changes(states: pl.LazyFrame) -> pl.LazyFrame:
    """Each unit's statuses reduced to the first of every run of the same state (online,
    in use), in time order.

    The worker repeats an unchanged status every 30 s; :func:`~kneeload.core.utilisation.
    state_intervals` merges consecutive intervals of one state, so dropping the repeats
    gives the same intervals (a hypothesis property in tests/core checks it) while the
    core sees a row per change instead of per status — 2.6 million statuses of 100 units
    × 90 days are about 110,000 changes.
    """
    cols = ("unit_id", "clinic_id", "time", "online", "in_use", "last_seen")
    prev_online = pl.col("online").shift(1).over("unit_id")
    prev_in_use = pl.col("in_use").shift(1).over("unit_id")
    return (
        states.select(*cols)
        .sort("unit_id", "time")
        .filter(
            prev_online.is_null()
            | (pl.col("online") != prev_online)
            | (pl.col("in_use") != prev_in_use)
        )
    )


def _unit_summary(
    units: pl.DataFrame,
    util: pl.DataFrame,
    cal: pl.DataFrame,
    sessions: pl.LazyFrame,
    period: tuple[dt.datetime, dt.datetime],
) -> pl.DataFrame:
    """Per unit: minutes per state over the period, utilisation of the known open time,
    sessions and distinct athletes, calibration days out of tolerance and the latest
    bias and trend."""
    u = util.group_by("unit_id").agg(
        pl.col("clinic_id").drop_nulls().first(),
        pl.col(
            "open_min",
            "in_use_min",
            "idle_min",
            "offline_min",
            "unknown_min",
            "in_use_outside_hours_min",
        ).sum(),
    )
    known = pl.col("open_min") - pl.col("unknown_min")
    u = u.with_columns(
        pl.when(known > 0)
        .then((100 * pl.col("in_use_min") / known).round(1))
        .otherwise(None)
        .alias("utilisation_pct"),
        pl.when(known > 0)
        .then((100 * pl.col("offline_min") / known).round(1))
        .otherwise(None)
        .alias("downtime_pct"),
    )
    s = (
        sessions.filter(pl.col("start_time").is_between(*period, closed="left"))
        .group_by("unit_id")
        .agg(pl.len().alias("sessions"), pl.col("athlete_id").n_unique().alias("athletes"))
        .collect()
    )
    c = cal.group_by("unit_id").agg(
        pl.col("out_of_tolerance").sum().cast(pl.Int64).alias("days_out_of_tolerance"),
        pl.len().alias("days_with_calibration"),
        pl.col("bias_pp").sort_by("date").last().alias("latest_bias_pp"),
        pl.col("trend_pp_per_day").sort_by("date").last().alias("latest_trend_pp_per_day"),
        pl.col("bias_pp").abs().max().alias("max_abs_bias_pp"),
    )
    base = units.select("unit_id", "clinic_id", "clinic_name")
    out = (
        base.join(u.drop("clinic_id"), on="unit_id", how="full", coalesce=True)
        .join(s, on="unit_id", how="left")
        .join(c, on="unit_id", how="left")
        .with_columns(
            pl.col("sessions").fill_null(0),
            pl.col("athletes").fill_null(0),
            pl.col("days_out_of_tolerance").fill_null(0),
            pl.col("days_with_calibration").fill_null(0),
        )
    )
    return out.sort("clinic_id", "unit_id", nulls_last=True)


def write(report: FleetReport, out_dir: Path) -> Path:
    """``out_dir/fleet-report.html`` (self-contained: charts embedded), ``charts/*.png``
    and ``data/<table>.csv`` + ``.parquet``."""
    from kneeload.reports import fleet_charts
    from kneeload.reports.charts import data_uri
    from kneeload.reports.html import render

    pngs = fleet_charts.draw(report)
    (out_dir / "charts").mkdir(parents=True, exist_ok=True)
    (out_dir / "data").mkdir(parents=True, exist_ok=True)
    for name, data in pngs.items():
        (out_dir / "charts" / f"{name}.png").write_bytes(data)
    report.charts = {name: data_uri(data) for name, data in pngs.items()}
    for stem, df in report.tables.items():
        df.write_csv(out_dir / "data" / f"{stem}.csv")
        df.write_parquet(out_dir / "data" / f"{stem}.parquet")
    page = out_dir / "fleet-report.html"
    page.write_text(
        render("fleet.html.j2", r=report, rows=_rows, exports=sorted(report.tables)),
        encoding="utf-8",
    )
    return page


def _rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    return df.to_dicts()
