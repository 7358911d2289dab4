"""Store the fleet report's computed figures for the clinic dashboard (``kneeload fleet refresh``).

Grafana panels run SQL, and the minutes per state within opening hours and the outcomes are
computed by :mod:`kneeload.core` in Python, so :func:`store` writes them to
``kneeload.fleet_unit_days`` and ``kneeload.fleet_outcomes`` (migration 0021), replacing the
refreshed units' days and groups in one transaction (COPY for the rows). The dashboard reads
them through ``kneeload_api.fleet_utilisation_daily`` and ``kneeload_api.fleet_outcomes``.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from kneeload.fleet.outcomes_io import OUTCOME_COLUMNS
from kneeload.fleet.report import FleetReport
from kneeload.fleet.utilisation_io import COLUMNS as DAY_COLUMNS

__all__ = ["store"]


def store(conn: Any, report: FleetReport) -> tuple[int, int]:
    """Replace the report's unit-days and outcome groups; returns (days, groups) written."""
    units = report.units["unit_id"].to_list()
    clinic_of = dict(report.units.select("unit_id", "clinic_id").iter_rows())
    outcomes = pl.concat([report.outcomes_units, report.outcomes_clinics])
    groups = outcomes.select("level", "group_id").rows()
    with conn.transaction():
        conn.execute(
            "DELETE FROM kneeload.fleet_unit_days "
            "WHERE unit_id = ANY(%s) AND date BETWEEN %s AND %s",
            (units, report.first, report.last),
        )
        with conn.cursor().copy(
            f"COPY kneeload.fleet_unit_days ({', '.join(DAY_COLUMNS)}) FROM STDIN"
        ) as cp:
            for row in report.utilisation.iter_rows():
                cp.write_row(row)
        conn.execute(
            "DELETE FROM kneeload.fleet_outcomes WHERE (level = 'unit' AND group_id = ANY(%s)) "
            "OR (level = 'clinic' AND group_id = ANY(%s))",
            (
                [g for lv, g in groups if lv == "unit"] + units,
                [g for lv, g in groups if lv == "clinic"] + (report.clinics or []),
            ),
        )
        cols = (*OUTCOME_COLUMNS, "clinic_id", "period_from", "period_to")
        with conn.cursor().copy(
            f"COPY kneeload.fleet_outcomes ({', '.join(cols)}) FROM STDIN"
        ) as cp:
            for rec in outcomes.to_dicts():
                gid = rec["group_id"]
                clinic = gid if rec["level"] == "clinic" else clinic_of.get(gid)
                cp.write_row(
                    [*(rec[c] for c in OUTCOME_COLUMNS), clinic, report.first, report.last]
                )
    return report.utilisation.height, outcomes.height
