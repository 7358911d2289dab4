"""PNG charts of the fleet report: units side by side (matplotlib, Agg backend).

Each function draws figures the report already holds (computed in :mod:`kneeload.core`);
nothing here computes a domain figure. A chart with no data says so in the image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import polars as pl

from kneeload.reports.charts import png

if TYPE_CHECKING:
    from kneeload.fleet.report import FleetReport

__all__ = ["draw"]

STATE_COLOURS = {
    "in_use_min": ("#2563eb", "in use"),
    "idle_min": ("#93c5fd", "online idle"),
    "offline_min": ("#dc2626", "offline"),
    "unknown_min": ("#d1d5db", "unknown (not yet heard of)"),
}


def _height(n: int) -> float:
    return max(2.2, 0.6 + 0.24 * n)


def _empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this period", ha="center", va="center",
            transform=ax.transAxes, color="#6b7280")  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def utilisation(summary: pl.DataFrame) -> bytes:
    """Hours in use, idle, offline and unknown within opening hours, one bar per unit."""
    s = summary.filter(pl.col("open_min").is_not_null()).sort("unit_id", descending=True)
    fig, ax = plt.subplots(figsize=(8.0, _height(s.height)))
    ax.set_title("opening hours per unit: in use · idle · offline · unknown (h)", fontsize=10,
                 loc="left")  # fmt: skip
    if s.height == 0:
        _empty(ax, "unit status")
        return png(fig)
    y = list(range(s.height))
    left = [0.0] * s.height
    for col, (colour, label) in STATE_COLOURS.items():
        hrs = [(v or 0.0) / 60 for v in s[col].to_list()]
        ax.barh(y, hrs, left=left, color=colour, label=label, height=0.75)
        left = [a + b for a, b in zip(left, hrs, strict=True)]
    for yi, pct, x in zip(y, s["utilisation_pct"].to_list(), left, strict=True):
        ax.text(x, yi, f" {pct:.0f} %" if pct is not None else " –", va="center", fontsize=7)
    ax.set_yticks(y, s["unit_id"].to_list(), fontsize=7)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=7, loc="upper center", ncols=4, bbox_to_anchor=(0.5, -0.08 if s.height >
              8 else -0.2))  # fmt: skip
    ax.grid(True, axis="x", alpha=0.25)
    return png(fig)


def downtime(util: pl.DataFrame) -> bytes:
    """Offline minutes within opening hours per unit and day (heat map)."""
    units = sorted(util["unit_id"].unique().to_list()) if util.height else []
    days = sorted(util["date"].unique().to_list()) if util.height else []
    fig, ax = plt.subplots(figsize=(8.0, _height(len(units))))
    ax.set_title("downtime: offline minutes within opening hours, per unit and day", fontsize=10,
                 loc="left")  # fmt: skip
    if not units:
        _empty(ax, "unit status")
        return png(fig)
    grid = (
        util.pivot(on="date", index="unit_id", values="offline_min", aggregate_function="sum")
        .sort("unit_id")
        .select("unit_id", *[str(d) for d in days])
    )
    z = grid.drop("unit_id").fill_null(0.0).to_numpy()
    im = ax.imshow(z, aspect="auto", cmap="Reds", vmin=0, interpolation="nearest")
    ax.set_yticks(range(len(units)), grid["unit_id"].to_list(), fontsize=7)
    step = max(1, len(days) // 10)
    ax.set_xticks(range(0, len(days), step), [days[i].strftime("%d %b") for i in
                  range(0, len(days), step)], fontsize=7, rotation=45, ha="right")  # fmt: skip
    fig.colorbar(im, ax=ax, label="min", shrink=0.8)
    return png(fig)


def drift(cal: pl.DataFrame, tolerance_pp: float | None) -> bytes:
    """Daily support bias per unit (measured − commanded, pp); units ever out of
    tolerance in colour and named, the others grey; the tolerance band shaded."""
    fig, ax = plt.subplots(figsize=(8.0, 3.0))
    ax.set_title("calibration drift: daily bias (measured − commanded support, pp)", fontsize=10,
                 loc="left")  # fmt: skip
    if cal.height == 0:
        _empty(ax, "calibration data (running samples with a measured support)")
        return png(fig)
    if tolerance_pp is not None:
        ax.axhspan(-tolerance_pp, tolerance_pp, color="#dcfce7", alpha=0.6, zorder=0,
                   label=f"±{tolerance_pp:g} pp tolerance")  # fmt: skip
    bad = set(cal.filter(pl.col("out_of_tolerance"))["unit_id"].to_list())
    for (unit,), g in cal.sort("date").group_by("unit_id", maintain_order=True):
        drifting = unit in bad
        ax.plot(g["date"].to_list(), g["bias_pp"].to_list(), marker="o" if drifting else ".",
                ms=3, lw=1.6 if drifting else 0.8, color=None if drifting else "#9ca3af",
                alpha=1.0 if drifting else 0.6, label=str(unit) if drifting else None)  # fmt: skip
    ax.axhline(0, color="#374151", lw=0.6)
    ax.grid(True, alpha=0.25)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7, loc="upper left")
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=10))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    return png(fig)


def bws_distribution(bws: pl.DataFrame) -> bytes:
    """Share of each unit's running minutes per 10-point BWS band (stacked bars)."""
    units = sorted(bws["unit_id"].unique().to_list(), reverse=True) if bws.height else []
    fig, ax = plt.subplots(figsize=(8.0, _height(len(units))))
    ax.set_title("BWS distribution: share of running minutes per support band", fontsize=10,
                 loc="left")  # fmt: skip
    if not units:
        _empty(ax, "minutes on units")
        return png(fig)
    totals = bws.group_by("unit_id").agg(pl.col("minutes").sum().alias("total"))
    share = bws.join(totals, on="unit_id").with_columns(
        (100 * pl.col("minutes") / pl.col("total")).alias("share")
    )
    bands = sorted(share["bws_band_low_pct"].unique().to_list())
    cmap = plt.get_cmap("viridis", max(len(bands), 2))
    left = dict.fromkeys(units, 0.0)
    for i, band in enumerate(bands):
        b = dict(share.filter(pl.col("bws_band_low_pct") == band).select("unit_id", "share")
                 .iter_rows())  # fmt: skip
        vals = [float(b.get(u, 0.0)) for u in units]
        ax.barh(range(len(units)), vals, left=[left[u] for u in units], color=cmap(i),
                label=f"{band}–{band + 10} %", height=0.75)  # fmt: skip
        for u, v in zip(units, vals, strict=True):
            left[u] += v
    ax.set_yticks(range(len(units)), units, fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of minutes", fontsize=8)
    ax.legend(fontsize=7, ncols=min(len(bands), 6), loc="upper center",
              bbox_to_anchor=(0.5, -0.12 if len(units) > 8 else -0.25))  # fmt: skip
    return png(fig)


OUTCOME_PANELS = (
    ("pain_change_nrs", "pain_n", "next-morning pain\nlast − first 2 weeks (NRS)"),
    ("bws_median_days", "bws_n", "days to ≤ target BWS\n(Kaplan–Meier median)"),
    ("pfj_load_per_km_median", "pfj_n", "median est. PFJ load\nper km (MPa·s/km)"),
    ("flares_per_athlete", "flares_n", "pain flares\nper athlete"),
)


def outcomes(table: pl.DataFrame, level: str, min_n: int) -> bytes:
    """Four outcome figures per group, each bar labelled with its n; a withheld figure
    (n below the minimum) is drawn as its n only, never as a bar."""
    groups = table.sort("group_id", descending=True)
    n = groups.height
    fig, axes = plt.subplots(1, 4, figsize=(11.0, _height(n) + 0.6), sharey=True)
    fig.suptitle(f"outcomes by {level} (n = athletes; withheld below n = {min_n})",
                 fontsize=10, x=0.01, ha="left")  # fmt: skip
    fig.subplots_adjust(top=max(0.55, 1.0 - 0.9 / (_height(n) + 0.6)), wspace=0.08)
    labels = groups["group_id"].to_list()
    for ax, (col, ncol, title) in zip(axes, OUTCOME_PANELS, strict=True):
        ax.set_title(title, fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
        ax.grid(True, axis="x", alpha=0.25)
        if n == 0:
            _empty(ax, "athletes")
            continue
        vals = groups[col].to_list()
        ns = groups[ncol].to_list()
        ax.barh(range(n), [v if v is not None else 0.0 for v in vals], color="#7c3aed",
                height=0.7)  # fmt: skip
        for i, (v, k) in enumerate(zip(vals, ns, strict=True)):
            text = f" n={k}" if v is not None else f" n={k}: withheld"
            ax.text(0.02, i, text, va="center", fontsize=6.5, transform=ax.get_yaxis_transform(),
                    color="#111827" if v is not None else "#b91c1c")  # fmt: skip
        ax.axvline(0, color="#374151", lw=0.6)
    axes[0].set_yticks(range(n), labels, fontsize=7)
    return png(fig)


def draw(report: FleetReport) -> dict[str, bytes]:
    """Every chart of the report, by name."""
    tol = report.calibration["tolerance_pp"].max() if report.calibration.height else None
    return {
        "utilisation": utilisation(report.unit_summary),
        "downtime": downtime(report.utilisation),
        "drift": drift(report.calibration, None if tol is None else float(str(tol))),
        "bws-distribution": bws_distribution(report.bws),
        "outcomes-units": outcomes(report.outcomes_units, "unit", report.cfg.min_n),
        "outcomes-clinics": outcomes(report.outcomes_clinics, "clinic", report.cfg.min_n),
    }
