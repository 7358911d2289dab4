"""PNG charts for the HTML reports (matplotlib, Agg backend: no display needed). Each chart
function returns PNG bytes; :func:`data_uri` embeds them so a report is one file.

Charts draw numbers the database already holds (computed in :mod:`kneeload.core` by the
stream worker); nothing here computes a domain figure."""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["data_uri", "distance_ceiling", "load_acwr", "pain", "pmc", "png", "sessions"]

#: ACWR band colours (under / sweet spot / caution / danger)
BAND_COLOURS = ("#dbeafe", "#dcfce7", "#fef9c3", "#fee2e2")


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


def _axes(title: str, width: float = 7.5, height: float = 2.4) -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(True, alpha=0.25)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    ax.tick_params(labelsize=8)
    return fig, ax


def load_acwr(
    days: Sequence[dict[str, Any]],
    bands: tuple[float, float, float],
    span: tuple[dt.date, dt.date],
) -> bytes:
    """Daily estimated PFJ load (bars) with the EWMA ACWR (line, right axis) on its bands."""
    fig, ax = _axes("daily estimated PFJ load (bars) and ACWR (line, EWMA)")
    x = [d["date"] for d in days]
    ax.bar(x, [_f(d["load"]) or 0.0 for d in days], color="#6b7280", alpha=0.6, width=0.8)
    ax.set_ylabel("MPa·s", fontsize=8)
    ax2 = ax.twinx()
    edges = (0.0, *bands, max(2.0, bands[2] + 0.5))
    for lo, hi, colour in zip(edges[:-1], edges[1:], BAND_COLOURS, strict=True):
        ax2.axhspan(lo, hi, color=colour, alpha=0.5, zorder=0)
    pts = [(d["date"], _f(d["acwr"])) for d in days if d.get("acwr") is not None]
    if pts:
        ax2.plot([p[0] for p in pts], [p[1] for p in pts], color="#111827", lw=1.6)
    ax2.set_ylim(0, edges[-1])
    ax2.set_ylabel("ACWR", fontsize=8)
    ax2.tick_params(labelsize=8)
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xlim(span[0] - dt.timedelta(days=1), span[1] + dt.timedelta(days=1))
    return png(fig)


def pmc(days: Sequence[dict[str, Any]], span: tuple[dt.date, dt.date]) -> bytes:
    """Fitness (CTL), fatigue (ATL) and form (TSB) of the estimated PFJ load."""
    fig, ax = _axes("fitness (CTL 42 d) · fatigue (ATL 7 d) · form (TSB = CTL − ATL)")
    rows = [d for d in days if d.get("ctl") is not None]
    x = [d["date"] for d in rows]
    ax.bar(x, [_f(d["tsb"]) or 0.0 for d in rows], color="#f59e0b", alpha=0.45, width=0.8,
           label="form (TSB)")  # fmt: skip
    ax.plot(x, [_f(d["ctl"]) for d in rows], color="#2563eb", lw=1.8, label="fitness (CTL)")
    ax.plot(x, [_f(d["atl"]) for d in rows], color="#dc2626", lw=1.2, label="fatigue (ATL)")
    ax.axhline(0, color="#374151", lw=0.6)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_xlim(span[0] - dt.timedelta(days=1), span[1] + dt.timedelta(days=1))
    return png(fig)


def sessions(
    rows: Sequence[dict[str, Any]],
    span: tuple[dt.date, dt.date],
) -> bytes:
    """Per session: estimated PFJ load per km (points) and BWS (bars, right axis)."""
    fig, ax = _axes("per session: estimated PFJ load per km (dots), BWS % (bars)")
    x = [r["start_time"] for r in rows]
    ax.plot(x, [_f(r["pfj_load_per_km"]) for r in rows], "o", color="#7c3aed", ms=4)
    ax.set_ylabel("MPa·s/km", fontsize=8)
    ax2 = ax.twinx()
    ax2.bar(x, [_f(r["mean_bws_pct"]) or 0.0 for r in rows], color="#10b981", alpha=0.35,
            width=0.5)  # fmt: skip
    ax2.set_ylim(0, 50)
    ax2.set_ylabel("BWS %", fontsize=8)
    ax2.tick_params(labelsize=8)
    ax.set_xlim(
        dt.datetime.combine(span[0], dt.time(), dt.UTC) - dt.timedelta(days=1),
        dt.datetime.combine(span[1], dt.time(), dt.UTC) + dt.timedelta(days=1),
    )
    return png(fig)


def distance_ceiling(
    rows: Sequence[dict[str, Any]],
    span: tuple[dt.date, dt.date],
    ceiling_km: float | None,
    history: Sequence[dict[str, Any]] = (),
) -> bytes:
    """Session distances (bars) with today's session-spike ceiling (dashed line) and, where
    the database keeps it, each day's ceiling (step line)."""
    fig, ax = _axes("session distance (km) and the session-spike ceiling")
    x = [r["start_time"] for r in rows]
    ax.bar(x, [(_f(r["distance_m"]) or 0.0) / 1000 for r in rows], color="#0ea5e9",
           alpha=0.7, width=0.5)  # fmt: skip
    steps = [(dt.datetime.combine(c["date"], dt.time(), dt.UTC), _f(c["ceiling_distance_m"]))
             for c in history if c.get("ceiling_distance_m") is not None]  # fmt: skip
    if steps:
        ax.step([p[0] for p in steps], [(p[1] or 0.0) / 1000 for p in steps], where="post",
                color="#f97316", lw=1.2, label="ceiling that day")  # fmt: skip
        ax.legend(fontsize=7, loc="upper left")
    if ceiling_km is not None:
        ax.axhline(ceiling_km, color="#dc2626", ls="--", lw=1.2)
        ax.annotate(f"ceiling {ceiling_km:.1f} km", (0.01, ceiling_km), xycoords=("axes fraction",
                    "data"), fontsize=7, color="#dc2626", va="bottom")  # fmt: skip
    ax.set_ylabel("km", fontsize=8)
    ax.set_xlim(
        dt.datetime.combine(span[0], dt.time(), dt.UTC) - dt.timedelta(days=1),
        dt.datetime.combine(span[1], dt.time(), dt.UTC) + dt.timedelta(days=1),
    )
    return png(fig)


def pain(days: Sequence[dict[str, Any]], span: tuple[dt.date, dt.date]) -> bytes:
    """Pain (NRS 0–10) the same day and next morning."""
    fig, ax = _axes("pain (NRS 0–10): same day (●) and next morning (▲)", height=1.9)
    same = [(d["date"], _f(d["pain_lag0_nrs"])) for d in days if d.get("pain_lag0_nrs") is not None]
    morning = [(d["date"], _f(d["pain_next_morning_nrs"])) for d in days
               if d.get("pain_next_morning_nrs") is not None]  # fmt: skip
    if same:
        ax.plot([p[0] for p in same], [p[1] for p in same], "o-", color="#9333ea", ms=4, lw=1)
    if morning:
        ax.plot([p[0] for p in morning], [p[1] for p in morning], "^", color="#c026d3", ms=5)
    ax.set_ylim(0, 10)
    ax.set_xlim(span[0] - dt.timedelta(days=1), span[1] + dt.timedelta(days=1))
    return png(fig)
