# ruff: noqa: E501  (HTML template and SQL strings read better unwrapped)
"""The demo's summary: console, ``out/demo-summary.json`` and ``out/team-overview.html``.

Every number comes from the running pipeline (the gateways' replies and the database's
public views); the simulator's own expectation (:mod:`kneeload.demo.expect`) is shown
beside the final ACWR for comparison only. Whether each planted situation was caught
is decided from those numbers, and the exit code says so.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from kneeload.demo import services as svc
from kneeload.demo.sim import Scenario

__all__ = ["build_summary", "check_planted", "finish", "render_html"]

SPIKE_KINDS = {"session_spike"}  # the default overload rule (issue #14)
ACWR_KINDS = {"acwr_high"}
WOW_KINDS = {"load_spike_wow", "weekly_load_jump"}
OFFLINE_KINDS = {"unit_offline", "unit_silent"}


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return float(o)
    if isinstance(o, dt.timedelta):
        return o.total_seconds()
    return str(o)


def _dump(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def _f(x: Any) -> float | None:
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _iso(t: Any) -> str | None:
    if t is None:
        return None
    return t.isoformat() if hasattr(t, "isoformat") else str(t)


# ---------------------------------------------------------------------- planted


def check_planted(sc: Scenario, summary: dict[str, Any], db: dict[str, Any]) -> dict[str, Any]:
    """Was each planted situation caught? Evidence from the pipeline's own output."""
    p = sc.planted
    alerts = summary["alerts"]

    def kinds_for(athlete: str | None = None, unit: str | None = None) -> Counter[str]:
        return Counter(
            a["kind"]
            for a in alerts
            if (athlete and a["athlete_id"] == athlete) or (unit and a["unit_id"] == unit)
        )

    out: dict[str, Any] = {}
    k = kinds_for(athlete=p.load_spike_athlete)
    w0 = sc.config.start + dt.timedelta(days=7 * p.load_spike_week - 1)
    w1 = w0 + dt.timedelta(days=10)
    week6 = sorted(
        a["event_time"]
        for a in alerts
        if a["athlete_id"] == p.load_spike_athlete
        and a["kind"] in ACWR_KINDS | WOW_KINDS | SPIKE_KINDS
        and a["event_time"]
        and w0 <= dt.datetime.fromisoformat(a["event_time"]) <= w1
    )
    out["load_spike"] = {
        "athlete_id": p.load_spike_athlete,
        "week": p.load_spike_week + 1,
        "caught": bool(week6),
        "evidence": {
            "alerts": dict(k),
            "first": week6[0] if week6 else None,
            "acwr_high": bool(sum(k[x] for x in ACWR_KINDS)),
            "session_spike": bool(sum(k[x] for x in SPIKE_KINDS)),
        },
    }
    k = kinds_for(athlete=p.pain_athlete)
    sugg = [s for s in db.get("bws_suggestions", []) if s["athlete_id"] == p.pain_athlete]
    step_up = [
        s
        for s in sugg
        if (_f(s.get("suggested_bws_pct")) or 0.0) > (_f(s.get("current_bws_pct")) or 100.0)
    ]
    out["pain"] = {
        "athlete_id": p.pain_athlete,
        "unit_id": p.pain_unit,
        "caught": k["pain_high"] > 0 and k["pain_not_settled"] > 0 and bool(step_up),
        "evidence": {
            "alerts": dict(k),
            "bws_step_up_suggestions": len(step_up),
            "example": {
                kk: step_up[-1].get(kk)
                for kk in (
                    "time",
                    "action",
                    "current_bws_pct",
                    "suggested_bws_pct",
                    "suggestion_reason",
                )
            }
            if step_up
            else None,
        },
    }
    k = kinds_for(unit=p.silent_unit)
    refused = [a for a in db.get("dead_lettered_alerts", []) if a.get("unit_id") == p.silent_unit]
    out["silent_unit"] = {
        "unit_id": p.silent_unit,
        "silent_from": p.silent_from.isoformat(),
        "caught": bool(sum(k[x] for x in OFFLINE_KINDS)),
        "evidence": {
            "alerts_refused_by_sink_or_notifier": refused[:2],
            "alerts": dict(k),
            "fleet": next(
                (
                    {
                        kk: _iso(v) if isinstance(v, dt.datetime) else v
                        for kk, v in f.items()
                        if kk in ("online", "last_seen")
                    }
                    for f in db.get("fleet", [])
                    if f["unit_id"] == p.silent_unit
                ),
                None,
            ),
        },
    }
    if p.drift_unit:
        k = kinds_for(unit=p.drift_unit)
        fleet = (summary.get("fleet_report") or {}).get("units", {}).get(p.drift_unit, {})
        out["drifting_unit"] = {
            "unit_id": p.drift_unit,
            "drift_from": p.drift_from.isoformat() if p.drift_from else None,
            # caught twice: the worker's alert, and the fleet report's drift figures
            "caught": k["unit_calibration_drift"] > 0
            and (fleet.get("days_out_of_tolerance") or 0) > 0,
            "evidence": {"alerts": dict(k), "fleet_report": fleet},
        }
    m = summary.get("malformed") or {}
    dl = sum(db.get("dead_letters", {}).values())
    out["malformed"] = {
        "athlete_id": p.malformed_athlete,
        "caught": bool(m)
        and m.get("rejected") == m.get("planted_invalid")
        and m.get("accepted") == m.get("planted_valid")
        and m.get("batch_status") == 207
        and dl >= summary["events_rejected"],
        "evidence": {**m, "dead_letters_in_db": dl},
    }
    late = summary.get("late_fit") or {}
    b, a = late.get("before") or {}, late.get("after") or {}
    out["late_fit"] = {
        "athlete_id": p.late_fit_athlete,
        "session_id": p.late_fit_session,
        "date": p.late_fit_date.isoformat(),
        "caught": bool(a)
        and (
            not b
            or (
                a.get("revision", 0) > b.get("revision", 0)
                and _f(a.get("acwr")) != _f(b.get("acwr"))
            )
        ),
        "evidence": {
            "acwr_before": _f(b.get("acwr")),
            "acwr_after": _f(a.get("acwr")),
            "load_before": _f(b.get("load")),
            "load_after": _f(a.get("load")),
            "revision_before": b.get("revision"),
            "revision_after": a.get("revision"),
            "corrected": a.get("corrected"),
            "upload": late.get("upload"),
        },
    }
    return out


# ---------------------------------------------------------------------- summary


def build_summary(
    ctx: Any,
    sc: Scenario,
    opts: Any,
    result: dict[str, Any],
    started_at: dt.datetime,
    fleet: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from kneeload.demo.expect import expected
    from kneeload.demo.quality import alert_quality, ground_truth, spike_sessions

    c = result.get("counters")
    db = result.get("db", {})
    alerts = [
        {
            "kind": a["kind"],
            "severity": a["severity"],
            "athlete_id": a["athlete_id"],
            "unit_id": a["unit_id"],
            "event_time": _iso(a["event_time"]),
            "message": a["message"],
            "episode_id": a.get("episode_id"),
            "episode_transition": a.get("episode_transition"),
            "in_progress": bool(a.get("in_progress")),
        }
        for a in db.get("alerts", [])
    ]
    final_rows = sorted(db.get("acwr_final", {}).items())
    acwr_final = {aid: _f(r.get("acwr")) for aid, r in final_rows}
    exp = expected(sc)
    exp_final: dict[str, float | None] = {}
    for aid, r in final_rows:
        e = exp.get(aid)
        day = r.get("date")
        exp_final[aid] = e.acwr(day) if e is not None and day in e.days else None
    t = result.get("timings", {})
    sessions = db.get("sessions", {})
    samples_in_db = int(sessions.get("samples", 0))
    stream_s = float(t.get("stream_s") or 0) or None
    e2e_s = float(t.get("end_to_end_s") or 0) or None
    summary: dict[str, Any] = {
        "run_id": ctx.run_id,
        "started_at": started_at.isoformat(),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(),
        "topic_prefix": ctx.prefix,
        "database": f"kneeload_{opts.name}",
        "storage": db.get("storage", {}),
        "scenario": {
            "seed": sc.config.seed,
            "athletes": len(sc.athletes),
            "units": len(sc.units),
            "weeks": sc.config.weeks,
            "start": sc.config.start.isoformat(),
            "end": sc.config.end.isoformat(),
            "sessions": len(sc.sessions),
            "watch_samples": sc.sample_count(),
            "lever_messages": sc.unit_message_count(),
            "pain_reports": len(sc.pain),
        },
        "events_ingested": c.ingested if c else 0,
        "events_ingested_by_kind": {
            "watch_samples": c.watch_accepted,
            "fit_samples": c.fit_accepted,
            "lever_mqtt_messages": c.mqtt_published,
            "pain_reports": c.pain_accepted,
            "duplicates": c.watch_duplicates,
        }
        if c
        else {},
        "events_rejected": c.rejected if c else 0,
        "events_rejected_by_reason": dict(c.rejected_by_reason) if c else {},
        "dead_letters_in_db": db.get("dead_letters", {}),
        "sessions": int(sessions.get("total", 0)),
        "sessions_detail": sessions,
        "alerts": alerts,
        "alerts_by_kind": dict(Counter(a["kind"] for a in alerts)),
        "acwr_final": acwr_final,
        "acwr_final_date": {aid: _iso(r.get("date")) for aid, r in final_rows},
        "acwr_final_expected": exp_final,
        "dead_lettered_alerts": db.get("dead_lettered_alerts", []),
        "bws_suggestions": [
            {
                k: _iso(v) if isinstance(v, dt.datetime) else _f(v) if isinstance(v, Decimal) else v
                for k, v in s.items()
            }
            for s in db.get("bws_suggestions", [])
        ][-20:],
        "malformed": result.get("malformed", {}),
        "late_fit": result.get("late_fit", {}),
        "throughput": {
            "stream_wall_s": round(stream_s, 2) if stream_s else None,
            "drain_wall_s": round(float(t.get("drain_s", 0)), 2),
            "ingest_samples_per_s": round(c.watch_accepted / stream_s) if c and stream_s else None,
            "end_to_end_samples_per_s": round(samples_in_db / e2e_s) if e2e_s else None,
            "samples_in_sessions_db": samples_in_db,
        },
        "timings_s": {k: round(v, 2) for k, v in t.items() if k != "services_start_s"},
        "notifications": {
            p.stem: sum(1 for _ in p.open("rb")) for p in sorted(ctx.paths.inbox.glob("*.jsonl"))
        },
    }
    summary["fleet_report"] = fleet or {}
    summary["planted"] = check_planted(sc, summary, db)
    spikes = spike_sessions(sc)
    summary["ground_truth"] = {s.name: s.as_dict() for s in [*ground_truth(sc), *spikes]}
    from kneeload.demo.run import DIGEST_KINDS, DIGEST_TRANSITIONS

    summary["alert_quality"] = alert_quality(sc, alerts, spikes, DIGEST_TRANSITIONS, DIGEST_KINDS)
    status = svc.service_status(ctx.paths)
    summary["services"] = {
        "state": "stopped" if opts.stop_services else "running",
        "processes": status,
        "logs": str(ctx.paths.logs),
        "stop_services": "kneeload demo stop"
        + ("" if opts.name == "demo" else f" --name {opts.name}"),
        "stop_stack": "make down",
        "environment": str(ctx.paths.env_file),
    }
    return summary


# ------------------------------------------------------------------------ HTML

_BAND = [(0.0, 0.8, "#dbeafe"), (0.8, 1.3, "#dcfce7"), (1.3, 1.5, "#fef9c3"), (1.5, 2.5, "#fee2e2")]


def _band(acwr: float | None) -> tuple[str, str]:
    if acwr is None:
        return "n/a", "#e5e7eb"
    if acwr < 0.8:
        return "under", "#bfdbfe"
    if acwr < 1.3:
        return "sweet spot", "#bbf7d0"
    if acwr < 1.5:
        return "caution", "#fde68a"
    return "danger", "#fca5a5"


def _svg_athlete(
    series: list[dict[str, Any]], alerts: list[dict[str, Any]], start: dt.date, days: int
) -> str:
    """ACWR (line, with bands) over daily load (bars), alert ticks on top; 560×120."""
    w, h, top, pad = 560, 120, 14, 2
    ymax = 2.5
    x = lambda i: pad + (w - 2 * pad) * i / max(1, days - 1)  # noqa: E731
    y = lambda v: top + (h - top - 14) * (1 - min(v, ymax) / ymax)  # noqa: E731
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'role="img" aria-label="ACWR and daily load">'
    ]
    for lo, hi, color in _BAND:
        parts.append(
            f'<rect x="0" y="{y(hi):.1f}" width="{w}" height="{y(lo) - y(hi):.1f}" fill="{color}"/>'
        )
    loads = [(_f(r.get("load")) or 0.0) for r in series]
    lmax = max(loads) if loads and max(loads) > 0 else 1.0
    bw = max(1.0, (w - 2 * pad) / max(1, days) - 1)
    for r in series:
        i = (r["date"] - start).days
        if 0 <= i < days:
            v = (_f(r.get("load")) or 0.0) / lmax
            bh = (h - top - 14) * 0.45 * v
            fill = "#6b7280" if not r.get("corrected") else "#7c3aed"
            parts.append(
                f'<rect x="{x(i) - bw / 2:.1f}" y="{h - 14 - bh:.1f}" width="{bw:.1f}" height="{bh:.1f}" '
                f'fill="{fill}" opacity="0.55"/>'
            )
    pts = [
        (x((r["date"] - start).days), y(_f(r["acwr"])))
        for r in series
        if _f(r.get("acwr")) is not None and 0 <= (r["date"] - start).days < days
    ]
    if pts:
        d = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
        parts.append(f'<polyline points="{d}" fill="none" stroke="#111827" stroke-width="1.8"/>')
    for a in alerts:
        t = a.get("event_time")
        if not t:
            continue
        i = (dt.datetime.fromisoformat(t).date() - start).days
        color = {
            "acwr_high": "#dc2626",
            "load_spike_wow": "#ea580c",
            "weekly_load_jump": "#ea580c",
            "pain_high": "#9333ea",
            "pain_not_settled": "#c026d3",
        }.get(a["kind"], "#2563eb")
        parts.append(
            f'<rect x="{x(i) - 2:.1f}" y="1" width="4" height="10" fill="{color}">'
            f"<title>{html.escape(a['kind'])} {html.escape(t[:10])}</title></rect>"
        )
    for v in (0.8, 1.3, 1.5):
        parts.append(
            f'<text x="{w - 4}" y="{y(v) - 2:.1f}" font-size="9" text-anchor="end" fill="#374151">{v}</text>'
        )
    for wk in range(0, days, 7):
        parts.append(
            f'<text x="{x(wk):.1f}" y="{h - 2}" font-size="9" fill="#6b7280">w{wk // 7 + 1}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(sc: Scenario, summary: dict[str, Any], db: dict[str, Any]) -> str:
    """A self-contained team overview a coach can open (inline SVG, no scripts)."""
    start = sc.config.start.date()
    days = (sc.config.end.date() - start).days + 1
    series = db.get("acwr_series", {})
    overview = {r["athlete_id"]: r for r in db.get("team_overview", [])}
    by_ath: dict[str, list[dict[str, Any]]] = {}
    for a in summary["alerts"]:
        if a["athlete_id"]:
            by_ath.setdefault(a["athlete_id"], []).append(a)
    rows = []
    for a in sc.athletes:
        ov = overview.get(a.athlete_id, {})
        acwr = summary["acwr_final"].get(a.athlete_id)
        label, color = _band(acwr)
        al = by_ath.get(a.athlete_id, [])
        kinds = Counter(x["kind"] for x in al)
        pain = ov.get("latest_pain_nrs")
        rows.append(f"""
<tr><td><b>{html.escape(a.display_name)}</b><br><span class="muted">{html.escape(a.athlete_id)} · {html.escape(a.time_zone)}
 · {a.body_mass_kg:g} kg{(" · LEVER " + html.escape(a.unit_id)) if a.unit_id else ""}</span></td>
<td style="background:{color}" class="num">{"" if acwr is None else f"{acwr:.2f}"}<br><span class="muted">{label}</span></td>
<td class="num">{"" if pain is None else pain}<br><span class="muted">{html.escape(str(ov.get("pain_trend") or ""))}</span></td>
<td>{"<br>".join(f"{html.escape(k)} × {n}" for k, n in sorted(kinds.items())) or "—"}</td>
<td>{_svg_athlete(series.get(a.athlete_id, []), al, start, days)}</td></tr>""")
    fleet_rows = []
    for f in db.get("fleet", []):
        online = f.get("online")
        fleet_rows.append(
            f"<tr><td>{html.escape(str(f['unit_id']))}</td><td>{'🟢 online' if online else '🔴 offline'}</td>"
            f"<td>{html.escape(str(f.get('assigned_athlete_id') or ''))}</td>"
            f"<td>{html.escape(str(_iso(f.get('last_seen')) or '')[:16])}</td>"
            f"<td class='num'>{'' if f.get('bws_pct') is None else f.get('bws_pct')}</td></tr>"
        )
    planted_rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{'✅ caught' if v['caught'] else '❌ missed'}</td>"
        f"<td><code>{html.escape(orjson.dumps(v.get('evidence'), default=_default).decode()[:400])}</code></td></tr>"
        for name, v in summary["planted"].items()
    )
    alert_rows = "".join(
        f"<tr><td>{html.escape((a['event_time'] or '')[:16])}</td><td>{html.escape(a['kind'])}</td>"
        f"<td>{html.escape(a['severity'])}</td><td>{html.escape(a['athlete_id'] or a['unit_id'] or '')}</td>"
        f"<td>{html.escape(a['message'][:160])}</td></tr>"
        for a in summary["alerts"][-60:]
    )
    est_rows = "".join(
        f"<tr><td>{html.escape(str(e['athlete_id']))}</td><td class='num'>{int(e['sessions'])}</td>"
        f"<td class='num'>{int(e['samples']):,}</td><td class='num'>{int(e['estimated']):,}</td>"
        f"<td class='num'>{int(e['contact_estimated']):,}</td>"
        f"<td class='num'>{int(e['cadence_corrected']):,}</td>"
        f"<td class='num'>{int(e['walking']):,}</td><td class='num'>{int(e['without_estimate']):,}</td>"
        f"<td class='muted'>{html.escape(str(e.get('example') or '—'))[:300]}</td></tr>"
        for e in db.get("estimates", [])
    )
    tp = summary["throughput"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kneeload — team overview</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#111827}} table{{border-collapse:collapse;margin:8px 0 24px}}
td,th{{border-bottom:1px solid #e5e7eb;padding:6px 10px;vertical-align:middle;text-align:left}}
.num{{text-align:center;font-variant-numeric:tabular-nums}} .muted{{color:#6b7280;font-size:12px}}
code{{font-size:11px}} h1{{margin-bottom:0}}
</style></head><body>
<h1>{html.escape(sc.config.team_id)} — team overview</h1>
<p class="muted">kneeload demo run {html.escape(summary["run_id"])} · event time {start} → {sc.config.end:%Y-%m-%d %H:%M} UTC ·
generated {html.escape(summary["finished_at"][:19])} UTC.
Every PFJ figure is a model <b>estimate</b>; ACWR is a configurable trend (EWMA, Williams et al. 2017), not a validated
injury threshold. Bands: under &lt; 0.8 ≤ sweet spot &lt; 1.3 ≤ caution &lt; 1.5 ≤ danger.</p>
<p>{summary["events_ingested"]:,} events ingested · {summary["events_rejected"]} rejected ·
{summary["sessions"]:,} sessions · {len(summary["alerts"])} alerts ·
{tp.get("ingest_samples_per_s") or 0:,} samples/s into the gateway</p>
<h2>Athletes</h2>
<p class="muted">Chart: EWMA ACWR (line) over 8 weeks on the bands; daily estimated PFJ load (bars; purple = corrected by
late data); alert ticks on top (red ACWR, orange week-over-week, purple pain).</p>
<table><tr><th>athlete</th><th>ACWR (last day)</th><th>latest pain</th><th>alerts</th><th>ACWR and daily load</th></tr>
{"".join(rows)}</table>
<h2>Estimates — what was measured and what was estimated</h2>
<p class="muted">PFJ stress, PFJ load, step length and vertical load are always <b>estimated</b> (a model, not a
measurement). Ground contact is measured by the watch unless counted as estimated here (from speed and cadence,
±10 %, docs/science.md §1.4). A cadence sent in strides/min is doubled and counted. Samples outside the model's
plausibility bounds and walking get no estimate: they are kept and counted with the reason (§1.5).</p>
<table><tr><th>athlete</th><th>sessions</th><th>samples</th><th>with PFJ estimate</th><th>contact estimated</th>
<th>cadence doubled</th><th>walking</th><th>without estimate</th><th>why (largest session)</th></tr>{est_rows}</table>
<h2>Clinic fleet</h2>
<table><tr><th>unit</th><th>status</th><th>assigned</th><th>last seen (UTC)</th><th>BWS %</th></tr>{"".join(fleet_rows)}</table>
<h2>Planted situations</h2><table><tr><th>situation</th><th>result</th><th>evidence</th></tr>{planted_rows}</table>
<h2>Latest alerts</h2><table><tr><th>event time</th><th>kind</th><th>severity</th><th>who</th><th>message</th></tr>
{alert_rows}</table>
</body></html>
"""


# ------------------------------------------------------------------------ console


def _print_quality(console: Console, q: dict[str, Any] | None) -> None:
    """The alert_quality block: per kind, per planted situation, healthy athletes."""
    if not q:
        return
    qt = Table(title="alert quality (episodes against the simulator's ground truth)")
    for col in ("kind", "episodes", "true positives", "precision", "recall"):
        qt.add_column(col, justify="left" if col == "kind" else "right")
    for kind, v in q["per_kind"].items():
        qt.add_row(
            kind,
            str(v["episodes"]),
            str(v["true_positives"]),
            "—" if v["precision"] is None else f"{v['precision']:.2f}",
            "—" if v["recall"] is None else f"{v['recall']:.2f}",
        )
    console.print(qt)
    for name, v in q["per_situation"].items():
        ok = "[green]" if v["caught"] and v["meets_target"] else "[red]"
        live = "" if "caught_live" not in v else f", caught while running {v['caught_live']}"
        console.print(
            f"  {ok}{name}[/]: caught {v['caught']}{live}, {v['episodes']} episodes, "
            f"{v['notifications']} notifications pushed "
            f"(target ≤ {q['targets']['per_situation_max']:g}), "
            f"{v.get('in_digest', 0)} in the daily digest"
        )
    h = q["healthy"]
    ok = "[green]" if h["meets_target"] else "[red]"
    console.print(
        f"  {ok}healthy athletes[/]: {h['episodes_per_athlete_week']} episodes and "
        f"{h['notifications_per_athlete_week']} notifications per athlete-week "
        f"(target ≤ {q['targets']['per_healthy_athlete_week_max']:g})"
    )


def print_summary(
    console: Console, summary: dict[str, Any], json_path: Path, html_path: Path
) -> None:
    console.rule("[bold]summary")
    t = Table(show_header=False, box=None)
    ing = summary["events_ingested_by_kind"]
    t.add_row(
        "events ingested",
        f"{summary['events_ingested']:,}  "
        f"(watch samples {ing.get('watch_samples', 0):,}, FIT samples {ing.get('fit_samples', 0):,}, "
        f"LEVER MQTT {ing.get('lever_mqtt_messages', 0):,}, pain {ing.get('pain_reports', 0):,})",
    )
    t.add_row(
        "events rejected",
        f"{summary['events_rejected']}  {summary['events_rejected_by_reason']}  "
        f"dead letters in DB: {summary['dead_letters_in_db']}",
    )
    sd = summary["sessions_detail"]
    t.add_row(
        "sessions",
        f"{summary['sessions']:,} ({sd.get('closed', 0):,} closed, "
        f"{sd.get('on_lever_units', 0):,} on LEVER units)",
    )
    tp = summary["throughput"]
    t.add_row(
        "throughput",
        f"{tp.get('ingest_samples_per_s') or 0:,} samples/s into the gateway over "
        f"{tp.get('stream_wall_s')} s; {tp.get('end_to_end_samples_per_s') or 0:,} samples/s to sessions in "
        f"the database (drain {tp.get('drain_wall_s')} s)",
    )
    t.add_row("notifications", str(summary["notifications"]))
    console.print(t)
    at = Table(title="alerts by kind")
    at.add_column("kind")
    at.add_column("n", justify="right")
    at.add_column("athlete or unit")
    who: dict[str, Counter[str]] = {}
    for a in summary["alerts"]:
        who.setdefault(a["kind"], Counter())[a["athlete_id"] or a["unit_id"] or "?"] += 1
    for kind, c in sorted(who.items()):
        at.add_row(kind, str(sum(c.values())), ", ".join(f"{k}×{n}" for k, n in c.most_common()))
    console.print(at)
    ac = Table(title="EWMA ACWR on the last day (pipeline vs simulator expectation)")
    ac.add_column("athlete")
    ac.add_column("pipeline", justify="right")
    ac.add_column("expected", justify="right")
    for aid, v in summary["acwr_final"].items():
        e = summary["acwr_final_expected"].get(aid)
        ac.add_row(aid, "—" if v is None else f"{v:.2f}", "—" if e is None else f"{e:.2f}")
    console.print(ac)
    fr = summary.get("fleet_report") or {}
    if fr.get("units"):
        ft = Table(title=f"fleet ({fr['page']})")
        for col in ("unit", "clinic", "utilisation %", "downtime %", "sessions",
                    "days out of calibration", "latest bias pp"):  # fmt: skip
            ft.add_column(col, justify="left" if col in ("unit", "clinic") else "right")
        for unit, u in fr["units"].items():
            ft.add_row(unit, str(u["clinic_id"]), _cell(u["utilisation_pct"]),
                       _cell(u["downtime_pct"]), str(u["sessions"]),
                       str(u["days_out_of_tolerance"]), _cell(u["latest_bias_pp"], 2))  # fmt: skip
        console.print(ft)
        shown = sum(1 for g in fr["outcomes"].values() if not g["withheld"])
        console.print(
            f"outcomes: {len(fr['outcomes'])} units and clinics, {shown} with every figure "
            f"shown (n ≥ {fr['min_n']} athletes), the others withheld and unranked"
        )
    pt = Table(title="planted situations")
    pt.add_column("situation")
    pt.add_column("caught")
    pt.add_column("evidence")
    for name, v in summary["planted"].items():
        ev = orjson.dumps(v.get("evidence"), default=_default).decode()
        pt.add_row(name, "[green]yes[/]" if v["caught"] else "[red]NO[/]", ev[:150])
    console.print(pt)
    _print_quality(console, summary.get("alert_quality"))
    s = summary["services"]
    console.print(f"\nwrote [bold]{json_path}[/] and [bold]{html_path}[/] (open it in a browser)")
    if s["state"] == "running":
        console.print(
            f"the stack and the demo services stay up for exploration: "
            f"{', '.join(n for n, p in s['processes'].items() if p['running'])} (logs in {s['logs']}).\n"
            f'  explore:        set -a; . {s["environment"]}; set +a; psql "$KNEELOAD_DATABASE_URL" '
            "-c 'select * from kneeload_api.team_overview'\n"
            f"  stop services:  .venv/bin/{s['stop_services']}\n  stop the stack: make down"
        )
    else:
        console.print(
            "the demo services were stopped; the stack stays up — stop it with `make down`."
        )


def _cell(v: Any, digits: int = 1) -> str:
    return "—" if v is None else f"{float(v):.{digits}f}"


def team_report(ctx: Any, sc: Scenario, out_dir: Path, console: Console) -> Path | None:
    """The team report a coach of a real team gets (`kneeload report team`), on the demo's
    database: the same command, the demo's team and period."""
    import psycopg

    from kneeload.reports.team import ReportError, load, write

    try:
        with psycopg.connect(ctx.settings.database_url, connect_timeout=10) as conn:
            report = load(conn, sc.config.team_id, sc.config.start.date(), sc.config.end.date())
        page = write(report, out_dir)
    except (psycopg.Error, ReportError) as exc:
        console.print(f"[red]team report not written: {exc}[/]")
        return None
    console.print(
        f"wrote [bold]{page}[/] (`kneeload report team --team {sc.config.team_id} "
        f"--from {sc.config.start.date()} --to {sc.config.end.date()}`)"
    )
    return page


def fleet_report(ctx: Any, sc: Scenario, out: Path, console: Console) -> dict[str, Any]:
    """`kneeload fleet report --all` on the demo's database for the scenario's period:
    out/fleet/ (page, charts, CSV/Parquet) and out/fleet-report.html (the same self-contained
    page); the figures are also stored for the clinic dashboard (`kneeload fleet refresh`).
    Returns the summary's fleet figures ({} when the report could not be made)."""
    import shutil

    import psycopg

    from kneeload.core.outcomes import OutcomeConfig
    from kneeload.fleet.report import ReportError, load, write
    from kneeload.fleet.store import store
    from kneeload.fleet.utilisation_io import clinic_hours

    s = ctx.settings
    first, last = sc.config.start.date(), sc.config.end.date()
    try:
        hours = clinic_hours(s.fleet_opening_hours, s.fleet_timezone, s.fleet_clinic_opening_hours)
        cfg = OutcomeConfig(s.fleet_outcome_window_days, s.fleet_bws_target_pct,
                            s.fleet_outcome_min_n)  # fmt: skip
        report = load(s.database_url, None, first, last, hours, cfg)
        page = write(report, out / "fleet")
        shutil.copyfile(page, out / "fleet-report.html")
        with psycopg.connect(s.database_url, connect_timeout=10) as conn:
            store(conn, report)
    except (ReportError, ValueError, psycopg.Error) as exc:
        console.print(f"[red]fleet report not written: {exc}[/]")
        return {}
    console.print(
        f"wrote [bold]{out / 'fleet-report.html'}[/] (`kneeload fleet report --all --from "
        f"{first} --to {last} --out {out / 'fleet'}`; figures stored for the clinic dashboard)"
    )
    units = {
        r["unit_id"]: {
            k: r[k]
            for k in (
                "clinic_id",
                "utilisation_pct",
                "downtime_pct",
                "sessions",
                "athletes",
                "days_out_of_tolerance",
                "latest_bias_pp",
                "max_abs_bias_pp",
            )
        }
        for r in report.unit_summary.to_dicts()
    }
    groups = report.outcomes_units.to_dicts() + report.outcomes_clinics.to_dicts()
    return {
        "page": str(out / "fleet-report.html"),
        "units": units,
        "outcomes": {
            f"{g['level']}:{g['group_id']}": {
                k: g[k]
                for k in (
                    "athletes",
                    "pain_change_nrs",
                    "bws_median_days",
                    "pfj_load_per_km_median",
                    "flares",
                    "withheld",
                )
            }
            for g in groups
        },
        "min_n": cfg.min_n,
    }


def finish(
    ctx: Any,
    sc: Scenario,
    opts: Any,
    console: Console,
    result: dict[str, Any],
    started_at: dt.datetime,
) -> int:
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fleet = fleet_report(ctx, sc, out, console)
    summary = build_summary(ctx, sc, opts, result, started_at, fleet)
    json_path, html_path = out / "demo-summary.json", out / "team-overview.html"
    json_path.write_bytes(_dump(summary))
    html_path.write_text(render_html(sc, summary, result.get("db", {})))
    print_summary(console, summary, json_path, html_path)
    team_report(ctx, sc, out / "team-report", console)
    missed = [n for n, v in summary["planted"].items() if not v["caught"]]
    if missed:
        console.print(f"[red bold]planted situations NOT caught: {', '.join(missed)}[/]")
        return 1
    console.print("[green bold]every planted situation was caught[/]")
    return 0
