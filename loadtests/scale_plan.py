"""Recompute the capacity plan (loadtests/SCALE_PLAN.md) from a ``make bench`` result.

Every measured input comes from ``loadtests/results/latest.json`` (or ``--results``); every
other number is one of the labelled assumptions below. Retention comes from the code that
sets it: Kafka topics from :mod:`kneeload.topics.catalogue`, PostgreSQL tables from the
``-- @time_partitioned`` lines of the migrations. The tables between the ``generated``
markers of SCALE_PLAN.md are rewritten by ``--write``; the prose around them is kept.

Usage::

    python loadtests/scale_plan.py                 # print the generated section
    python loadtests/scale_plan.py --write         # rewrite it in loadtests/SCALE_PLAN.md
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "loadtests" / "results" / "latest.json"
PLAN = ROOT / "loadtests" / "SCALE_PLAN.md"
MIGRATIONS = ROOT / "services" / "kneeload" / "storage" / "migrations"
BEGIN, END = "<!-- generated:begin (loadtests/scale_plan.py) -->", "<!-- generated:end -->"

# --- assumptions (not measured; labelled as such in the output) ----------------------
HOURS_PER_DAY = 1.0  #: a runner streams 1 Hz for about an hour a day (5–6 runs of 50–70 min a week)
PEAK_SHARE = 0.15  #: share of runners streaming at once at the evening / team-practice peak
DESIGN_FACTOR = 3.0  #: design rate = 3 × peak (whole runs synced at once, FIT uploads in bursts)
UTILISATION = 0.5  #: every tier sized to use at most half of what it measured
KAFKA_RF = 3  #: replication factor in production (the bench runs RF 1)
KAFKA_HEADROOM = 1.3  #: disk headroom on brokers
CHANGELOG_DAYS = 1.0  #: a compacted changelog holds about a day of writes before compaction
RUNNERS = (1_000, 2_000, 10_000, 100_000)
TIERS = ("ingest", "worker", "sink", "kafka", "postgres")
#: where raw samples are stored: one row per batch on plain since migration 0029 (rows counted
#: in samples by the bench), one row per sample on TimescaleDB
RAW_TABLES = ("kneeload.watch_sample_batches", "kneeload.watch_samples")


@dataclass(frozen=True, slots=True)
class Inputs:
    """The measured figures the plan uses (one ``make bench`` run)."""

    run_id: str
    commit: str
    cpus: int
    e2e_samples_per_s: float
    raw_samples_per_s: float
    cpu_us_per_sample: dict[str, float]  #: per tier, inside the full pipeline
    kafka_bytes_per_sample: dict[str, float]  #: per topic (bench-only topics excluded)
    pg_bytes_per_sample: dict[str, float]  #: per table, incl. indexes, per raw sample
    tsdb_raw_compressed_bytes_per_sample: float | None


def _topic_logical(name: str) -> str:
    return name.split(".", 1)[1] if name.startswith("kneeload.") else name


def load_inputs(path: Path) -> Inputs:
    """Read the figures the plan needs from a ``latest.json``; a missing one is an error."""
    d = json.loads(path.read_text())
    comps = d["components"]
    e2e = comps["e2e"]["result"]
    thr = e2e["throughput"]
    samples = float(thr["samples"])
    kafka = {
        _topic_logical(k): float(v)
        for k, v in e2e["kafka_bytes_per_sample"].items()
        if not k.startswith("baseline.") and v
    }
    # tables the run measured (a view, like plain's watch_samples since 0029, has no bytes)
    sizes = {k: v for k, v in e2e["table_sizes"].items() if v.get("bytes")}
    stored = max((float(sizes[t]["rows"]) for t in RAW_TABLES if t in sizes), default=samples)
    pg = {k: float(v["bytes"]) / stored for k, v in sizes.items()}
    storage = comps.get("storage", {}).get("result", {})
    # the plan is for plain PostgreSQL: the per-sample tables as the storage and sample_load
    # benches measured them on plain (e2e's database has the flavour the stack runs)
    plain_raw = storage.get("plain_bytes_per_sample")
    if plain_raw:
        pg = {k: v for k, v in pg.items() if k not in RAW_TABLES}
        pg["kneeload.watch_sample_batches"] = float(plain_raw)
    derived = comps.get("sample_load", {}).get("result", {}).get("bytes_per_sample_after")
    if derived:
        pg["kneeload.sample_load_batches"] = float(derived)
    cpus = int(comps.get("ingest", {}).get("result", {}).get("cpus") or 2)
    return Inputs(
        run_id=str(d["run_id"]),
        commit=str(d["commit"]),
        cpus=cpus,
        e2e_samples_per_s=float(e2e["end_to_end_samples_per_s"]),
        raw_samples_per_s=float(e2e["raw_samples_per_s"]),
        cpu_us_per_sample={t: float(thr["cpu_us_per_sample"][t]) for t in TIERS},
        kafka_bytes_per_sample=kafka,
        pg_bytes_per_sample=pg,
        tsdb_raw_compressed_bytes_per_sample=storage.get("timescale_bytes_per_sample_compressed"),
    )


def kafka_retention_days() -> dict[str, float]:
    """Retention in days per logical topic, from the topic catalogue (changelogs: assumption)."""
    from kneeload.settings import Settings
    from kneeload.topics.catalogue import catalogue

    out: dict[str, float] = {}
    for t in catalogue(Settings()):
        out[t.logical_name] = t.retention_ms / 86_400_000 if t.retention_ms > 0 else CHANGELOG_DAYS
    return out


_TP = re.compile(r"^--\s*@time_partitioned\s+(\S+)\s+\S+\s+\S+(?:\s+retention=(\d+)\s+days)?", re.M)


def pg_retention_days() -> dict[str, float | None]:
    """Retention in days per time-partitioned table, from the migrations (None: kept forever)."""
    out: dict[str, float | None] = {}
    for f in sorted(MIGRATIONS.glob("*.sql")):
        for m in _TP.finditer(f.read_text()):
            out[m.group(1)] = float(m.group(2)) if m.group(2) else None
    return out


def _topic_days(topic: str, kafka_days: dict[str, float]) -> float:
    """A catalogue topic's retention; the worker's changelogs are compacted (assumption)."""
    return kafka_days.get(topic, CHANGELOG_DAYS)


def _table_days(table: str, pg_days: dict[str, float | None]) -> float:
    days = pg_days.get(table)
    if days is None:  # not partitioned (watch_batches) or kept forever: count the raw retention
        return pg_days.get("kneeload.watch_samples") or 180.0
    return days


@dataclass(frozen=True, slots=True)
class Plan:
    """Capacity for one team size."""

    runners: int
    peak_samples_per_s: float
    design_samples_per_s: float
    samples_per_day: float
    cores: dict[str, float]  #: per tier at the design rate and the utilisation cap
    kafka_mb_per_s: float
    kafka_disk_gb: float  #: with replication and headroom
    pg_gb_per_day: float
    pg_full_retention_gb: float
    pg_full_retention_tsdb_gb: float | None


def plan_for(
    runners: int, x: Inputs, kafka_days: dict[str, float], pg_days: dict[str, float | None]
) -> Plan:
    """The arithmetic of the plan for one team size (see the module's assumptions)."""
    peak = runners * PEAK_SHARE
    design = peak * DESIGN_FACTOR
    per_day = runners * HOURS_PER_DAY * 3600.0
    cores = {t: design * us / 1e6 / UTILISATION for t, us in x.cpu_us_per_sample.items()}
    kafka_b = sum(x.kafka_bytes_per_sample.values())
    kafka_day_b = sum(b * _topic_days(t, kafka_days) for t, b in x.kafka_bytes_per_sample.items())
    pg_b = sum(x.pg_bytes_per_sample.values())
    pg_full = sum(b * _table_days(t, pg_days) for t, b in x.pg_bytes_per_sample.items())
    tsdb: float | None = None
    raw = next((t for t in RAW_TABLES if t in x.pg_bytes_per_sample), "")
    if x.tsdb_raw_compressed_bytes_per_sample is not None and raw:
        tsdb = pg_full - (x.pg_bytes_per_sample[raw] - x.tsdb_raw_compressed_bytes_per_sample) * (
            _table_days(raw, pg_days)
        )
    return Plan(
        runners=runners,
        peak_samples_per_s=peak,
        design_samples_per_s=design,
        samples_per_day=per_day,
        cores=cores,
        kafka_mb_per_s=design * kafka_b / 1e6,
        kafka_disk_gb=per_day * kafka_day_b * KAFKA_RF * KAFKA_HEADROOM / 1e9,
        pg_gb_per_day=per_day * pg_b / 1e9,
        pg_full_retention_gb=per_day * pg_full / 1e9,
        pg_full_retention_tsdb_gb=None if tsdb is None else per_day * tsdb / 1e9,
    )


def _n(v: float, digits: int = 0) -> str:
    return f"{v:,.{digits}f}"


def _gb(v: float) -> str:
    return f"{v / 1000:,.2f} TB" if v >= 1000 else f"{v:,.1f} GB"


def _row(label: str, cells: list[str]) -> str:
    return f"| {label} | " + " | ".join(cells) + " |"


def render(
    x: Inputs, plans: list[Plan], kafka_days: dict[str, float], pg_days: dict[str, float | None]
) -> str:
    """The generated Markdown: measured inputs, per-runner-hour figures, the plan table."""
    cpu_total = sum(x.cpu_us_per_sample.values())
    kafka_b = sum(x.kafka_bytes_per_sample.values())
    pg_b = sum(x.pg_bytes_per_sample.values())
    lines = [
        BEGIN,
        "",
        f"Generated from `make bench` run `{x.run_id}` (commit `{x.commit}`) by "
        "`loadtests/scale_plan.py`; do not edit between the markers.",
        "",
        "### Measured inputs",
        "",
        "| what | figure |",
        "|---|---|",
        f"| whole pipeline on this box ({x.cpus} cores, one process per service) | "
        f"**{_n(x.e2e_samples_per_s)} samples/s** = {_n(x.e2e_samples_per_s / x.cpus)} per core "
        f"(raw produce → consume → COPY of the same run {_n(x.raw_samples_per_s)}/s) |",
        f"| CPU per sample inside the full pipeline | **{cpu_total:.1f} µs** = "
        + ", ".join(f"{t} {x.cpu_us_per_sample[t]:.1f}" for t in TIERS)
        + f" → {_n(1e6 / cpu_total)} samples/s per fully busy core |",
        f"| Kafka bytes written per sample (all topics, RF 1) | **{kafka_b:.1f} B** = "
        + ", ".join(
            f"{t} {b:.1f}"
            for t, b in sorted(x.kafka_bytes_per_sample.items(), key=lambda kv: -kv[1])
        )
        + " |",
        f"| PostgreSQL bytes per sample (plain, incl. indexes) | **{pg_b:.1f} B** = "
        + ", ".join(
            f"{t.split('.')[-1]} {b:.1f}"
            for t, b in sorted(x.pg_bytes_per_sample.items(), key=lambda kv: -kv[1])
        )
        + " |",
    ]
    if x.tsdb_raw_compressed_bytes_per_sample is not None:
        lines.append(
            f"| raw samples on TimescaleDB, compressed | "
            f"{x.tsdb_raw_compressed_bytes_per_sample:.1f} B per sample |"
        )
    lines += [
        f"| per runner-hour (3,600 samples) | CPU {cpu_total * 3600 / 1e6:.3f} core-s; Kafka "
        f"{kafka_b * 3600 / 1e6:.2f} MB written; PostgreSQL {pg_b * 3600 / 1e6:.2f} MB stored |",
        "",
        "Retention used (from the code): Kafka "
        + ", ".join(
            f"{t} {_topic_days(t, kafka_days):g} d" for t in sorted(x.kafka_bytes_per_sample)
        )
        + f" (changelogs compacted: {CHANGELOG_DAYS:g} d of writes, assumption); PostgreSQL "
        + ", ".join(
            f"{t.split('.')[-1]} {_table_days(t, pg_days):g} d"
            for t in sorted(x.pg_bytes_per_sample)
        )
        + ".",
        "",
        "### The plan",
        "",
        f"Assumptions: {HOURS_PER_DAY:g} h of 1 Hz data per runner per day; {PEAK_SHARE:.0%} of "
        f"runners at once at the peak; design rate {DESIGN_FACTOR:g} × peak; every tier at ≤ "
        f"{UTILISATION:.0%} of its measured CPU; Kafka RF {KAFKA_RF} with {KAFKA_HEADROOM - 1:.0%}"
        " disk headroom.",
        "",
        "| | " + " | ".join(f"{p.runners:,} runners" for p in plans) + " |",
        "|---|" + "---|" * len(plans),
        "| peak / design samples/s | "
        + " | ".join(f"{_n(p.peak_samples_per_s)} / {_n(p.design_samples_per_s)}" for p in plans)
        + " |",
        "| samples per day | "
        + " | ".join(f"{p.samples_per_day / 1e6:,.1f} M" for p in plans)
        + " |",
    ]
    for t in TIERS:
        lines.append(f"| cores for {t} | " + " | ".join(f"{p.cores[t]:.2f}" for p in plans) + " |")
    lines += [
        "| **cores in all** (at design rate, ≤ 50 % busy) | "
        + " | ".join(f"**{sum(p.cores.values()):.2f}**" for p in plans)
        + " |",
        "| Kafka ingress at design rate | "
        + " | ".join(f"{p.kafka_mb_per_s:.2f} MB/s" for p in plans)
        + " |",
        f"| Kafka disk (RF {KAFKA_RF}, retention above, headroom) | "
        + " | ".join(_gb(p.kafka_disk_gb) for p in plans)
        + " |",
        "| PostgreSQL growth, plain | "
        + " | ".join(f"{p.pg_gb_per_day:,.2f} GB/day" for p in plans)
        + " |",
        "| PostgreSQL at full retention, plain | "
        + " | ".join(_gb(p.pg_full_retention_gb) for p in plans)
        + " |",
    ]
    if all(p.pg_full_retention_tsdb_gb is not None for p in plans):
        lines.append(
            "| same with raw samples compressed on TimescaleDB (measured ratio) | "
            + " | ".join(_gb(p.pg_full_retention_tsdb_gb or 0.0) for p in plans)
            + " |"
        )
    lines += ["", END]
    return "\n".join(lines)


def splice(doc: str, generated: str) -> str:
    """Replace the generated section of ``doc`` (markers included); append it if absent."""
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        return head + generated + tail
    return doc.rstrip("\n") + "\n\n" + generated + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--results", type=Path, default=RESULTS, help="a make bench latest.json")
    ap.add_argument(
        "--write",
        action="store_true",
        help=f"rewrite the generated section of {PLAN.relative_to(ROOT)}",
    )
    args = ap.parse_args(argv)
    try:
        x = load_inputs(args.results)
    except (OSError, KeyError, ValueError) as exc:
        print(
            f"scale_plan: cannot read the bench figures from {args.results}: {exc!r}",
            file=sys.stderr,
        )
        return 2
    kafka_days, pg_days = kafka_retention_days(), pg_retention_days()
    plans = [plan_for(n, x, kafka_days, pg_days) for n in RUNNERS]
    text = render(x, plans, kafka_days, pg_days)
    if args.write:
        PLAN.write_text(splice(PLAN.read_text(), text))
        print(f"wrote {PLAN.relative_to(ROOT)} from run {x.run_id}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
