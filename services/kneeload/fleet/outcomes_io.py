"""Outcomes per unit and per clinic from the fleet frames (:mod:`kneeload.fleet.frames`).

Thin glue around :mod:`kneeload.core.outcomes`: polars groups the rows (sessions on the
group's units per athlete, the athlete's next-morning pain reports and pain flares), the
core computes every figure. An athlete counts in every unit they trained on and in every
clinic of those units.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import polars as pl

from kneeload.core.outcomes import (
    AthleteOutcome,
    GroupOutcome,
    OutcomeConfig,
    SessionOnUnit,
    athlete_outcome,
    group_outcomes,
    rank_groups,
)

__all__ = ["OUTCOME_COLUMNS", "outcome_frame", "outcomes_by_group"]

OUTCOME_COLUMNS = (
    "level",
    "group_id",
    "athletes",
    "sessions",
    "pain_n",
    "pain_first_mean_nrs",
    "pain_last_mean_nrs",
    "pain_change_nrs",
    "bws_n",
    "bws_reached",
    "bws_median_days",
    "bws_reached_share",
    "pfj_n",
    "pfj_load_per_km_median",
    "flares_n",
    "flares",
    "athletes_with_flare",
    "flares_per_athlete",
    "min_n",
    "withheld",
    "rank_pain_change",
    "rank_pfj_load_per_km",
)


def _by_athlete(df: pl.DataFrame, col: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for a, v in zip(df["athlete_id"].to_list(), df[col].to_list(), strict=True):
        out[a].append(v)
    return out


def outcomes_by_group(
    sessions: pl.LazyFrame,
    pain: pl.LazyFrame,
    flares: pl.LazyFrame,
    period: tuple[dt.datetime, dt.datetime],
    cfg: OutcomeConfig,
) -> tuple[list[GroupOutcome], list[GroupOutcome], list[AthleteOutcome]]:
    """(per unit, per clinic, per athlete and unit) outcomes of the sessions that start in
    ``period``; pain and flares are those of the athlete, counted in the athlete's time
    on the group's units (:func:`kneeload.core.outcomes.athlete_outcome`)."""
    s = (
        sessions.filter(pl.col("start_time").is_between(*period, closed="left"))
        .select(
            "unit_id",
            "clinic_id",
            "athlete_id",
            "start_time",
            "end_time",
            "mean_bws_pct",
            "pfj_load_per_km",
        )
        .sort("start_time")
        .collect()
    )
    nm = pain.select("athlete_id", "time", "pain_nrs").sort("time").collect()
    fl = flares.select("athlete_id", "opened_at").collect()
    pain_of = defaultdict(list, {a: list(zip(*v, strict=True)) for a, v in _pairs(nm).items()})
    flares_of = _by_athlete(fl, "opened_at")
    runs: dict[tuple[str, str, str], list[SessionOnUnit]] = defaultdict(list)
    for unit, clinic, athlete, st, en, bws, per_km in s.iter_rows():
        sess = SessionOnUnit(st, en, bws, per_km)
        runs[("unit", unit, athlete)].append(sess)
        runs[("clinic", clinic or "(no clinic)", athlete)].append(sess)
    per: dict[tuple[str, str], list[AthleteOutcome]] = defaultdict(list)
    unit_athletes: list[AthleteOutcome] = []
    for (level, gid, athlete), ss in runs.items():
        a = athlete_outcome(athlete, ss, pain_of[athlete], flares_of.get(athlete, []), period, cfg)
        if a is not None:
            per[(level, gid)].append(a)
            if level == "unit":
                unit_athletes.append(a)
    units = [
        group_outcomes(g, per[("unit", g)], cfg.min_n) for (lv, g) in sorted(per) if lv == "unit"
    ]
    clinics = [
        group_outcomes(g, per[("clinic", g)], cfg.min_n)
        for (lv, g) in sorted(per)
        if lv == "clinic"
    ]
    return units, clinics, unit_athletes


def _pairs(df: pl.DataFrame) -> dict[str, tuple[list[dt.datetime], list[float]]]:
    out: dict[str, tuple[list[dt.datetime], list[float]]] = {}
    for a, t, p in df.iter_rows():
        ts, ps = out.setdefault(a, ([], []))
        ts.append(t)
        ps.append(float(p))
    return out


def outcome_frame(level: str, groups: Sequence[GroupOutcome]) -> pl.DataFrame:
    """One row per group with every figure, its n, what is withheld and the ranks (None
    for a group whose figure is withheld: it is never ranked)."""
    r_pain = rank_groups(groups, "pain_change_nrs")
    r_pfj = rank_groups(groups, "pfj_load_per_km_median")
    rows = [
        (level, *g, ",".join(g.withheld()), r_pain[g.group_id], r_pfj[g.group_id]) for g in groups
    ]
    schema = {
        "level": pl.String, "group_id": pl.String, "athletes": pl.Int64, "sessions": pl.Int64,
        "pain_n": pl.Int64, "pain_first_mean_nrs": pl.Float64, "pain_last_mean_nrs": pl.Float64,
        "pain_change_nrs": pl.Float64, "bws_n": pl.Int64, "bws_reached": pl.Int64,
        "bws_median_days": pl.Float64, "bws_reached_share": pl.Float64, "pfj_n": pl.Int64,
        "pfj_load_per_km_median": pl.Float64, "flares_n": pl.Int64, "flares": pl.Int64,
        "athletes_with_flare": pl.Int64, "flares_per_athlete": pl.Float64, "min_n": pl.Int64,
        "withheld": pl.String, "rank_pain_change": pl.Int64, "rank_pfj_load_per_km": pl.Int64,
    }  # fmt: skip
    assert tuple(schema) == OUTCOME_COLUMNS
    return pl.DataFrame(rows, schema=schema, orient="row")
