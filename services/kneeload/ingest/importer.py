"""``kneeload import`` runs: straight to Kafka (:func:`run`), through a gateway
(:func:`run_upload`) or as JSON lines (:func:`run_jsonl`). The steps themselves are in
:mod:`kneeload.ingest.history`; here they are put in order with progress bars, the resume
ledger and the summary."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from kneeload.ingest import activity as act
from kneeload.ingest import history as h
from kneeload.ingest.history import DecodeJob, FileResult, ImportPlan
from kneeload.ingest.ledger import Ledger
from kneeload.ingest.sources import Source, SourceError, discover, read
from kneeload.registry.view import RegistryUnavailableError

__all__ = ["ImportPlan", "run", "run_jsonl", "run_upload"]


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _paths(settings: Any, plan: ImportPlan) -> tuple[Path, Path]:
    ledger = plan.ledger_path or settings.var_dir / "import" / "ledger.sqlite"
    spool = ledger.parent / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    return ledger, spool


def _decode(
    plan: ImportPlan,
    sources: list[Source],
    ledger: Ledger | None,
    spool: Path,
    registry: tuple[dict[str, tuple[str, ...]], dict[str, str | None]] | None,
    progress: Progress | None,
) -> list[FileResult]:
    """Results for every source: from the ledger where an earlier run got that far, else
    decoded now (worker processes), recorded in the ledger as they finish."""
    results: dict[str, FileResult] = {}
    todo: list[DecodeJob] = []
    for src in sources:
        known = ledger.get(src.key) if ledger else None
        if known is not None:
            status, meta = known
            r = FileResult(**{**meta, "decoded_now": False, "resumed": False})
            if status == "published":
                if r.status != "skipped":  # a file that yielded nothing stays skipped
                    r.status = "already_imported"
                results[src.key] = r
                continue
            if r.spool and Path(r.spool).exists():
                r.resumed = True
                results[src.key] = r
                continue
        devices, owners = registry if registry else (None, {})
        todo.append(
            DecodeJob(
                src, plan.mapping, devices, owners, plan.cadence_unit, plan.start_time, str(spool)
            )
        )
    task = (
        progress.add_task("decoding", total=len(sources), completed=len(results), note="")
        if progress
        else None
    )
    counts = {"samples": 0}

    def done(r: FileResult) -> None:
        r.decoded_now = True
        results[r.key] = r
        counts["samples"] += r.samples
        if ledger is not None and r.status == "decoded":
            ledger.mark(r.key, "decoded", r.meta())
        if progress is not None and task is not None:
            progress.update(task, advance=1, note=f"{counts['samples']:,} samples")

    h.decode_all(todo, plan.jobs, done)
    return [results[s.key] for s in sources]


def run(
    plan: ImportPlan,
    *,
    dry_run: bool = False,
    as_json: bool = False,
    summary_out: Path | None = None,
    settings: Any = None,
    console: Console | None = None,
) -> int:
    """Decode, order and publish (straight to Kafka); print the summary. Exit code 0 when
    every found activity file was imported or already was, 1 otherwise (see the summary)."""
    from kneeload.settings import get_settings

    s = settings or get_settings()
    console = console or Console(stderr=True)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    sources, passed = discover(plan.paths)
    ledger_path, spool = _paths(s, plan)
    target = f"{s.kafka_bootstrap}|{s.topic_prefix}"
    ledger = Ledger(ledger_path, target, plan.fingerprint()) if plan.use_ledger else None
    try:
        try:
            devices, owners, records = asyncio.run(h.registry_snapshot(s))
        except RegistryUnavailableError as exc:
            console.print(f"[red]{exc}[/]")
            return 2
        timings["registry"] = time.monotonic() - t0
        with _progress(console) as progress:
            t1 = time.monotonic()
            results = _decode(plan, sources, ledger, spool, (devices, owners), progress)
            timings["decode"] = time.monotonic() - t1
            h.mark_duplicates(results, ledger.published_digests() if ledger else set())
            marks = h.watermarks(s, (r.athlete_id for r in results if r.athlete_id))
            late = h.not_counted(results, marks, s.worker_lateness_horizon_s)
            if not dry_run:
                t2 = time.monotonic()
                todo = [r for r in results if r.status == "decoded"]
                task = progress.add_task("publishing", total=len(todo), note="")
                n = {"samples": 0}

                def advance(r: FileResult) -> None:
                    n["samples"] += r.accepted
                    progress.update(task, advance=1, note=f"{n['samples']:,} new samples")

                by_key = {src.key: src for src in sources}
                asyncio.run(
                    h.publish(
                        s, results, by_key, records, ledger, advance, session_id=plan.session_id
                    )
                )
                timings["publish"] = time.monotonic() - t2
                for r in results:  # copies of imported files: settled, like a publish
                    if r.reason == "duplicate_file" and ledger is not None:
                        ledger.mark(r.key, "published", r.meta())
                        if r.spool:
                            Path(r.spool).unlink(missing_ok=True)
    finally:
        if ledger is not None:
            ledger.close()
    timings["total"] = time.monotonic() - t0
    summary = h.summarise(results, passed, late, timings, mode="dry_run" if dry_run else "publish")
    return _report(summary, console, as_json, summary_out)


def _report(summary: dict[str, Any], console: Console, as_json: bool, out: Path | None) -> int:
    data = orjson.dumps(summary, option=orjson.OPT_INDENT_2, default=str)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data + b"\n")
    console.print(h.table(summary))
    if summary.get("next_step"):
        late = summary["not_counted_by_worker"]
        console.print(
            f"[yellow]{sum(a['files'] for a in late.values())} file(s) of "
            f"{', '.join(sorted(late))} are older than the data already stored minus the "
            f"worker's lateness horizon: stored, not yet counted. Next: {summary['next_step']}[/]"
        )
    if as_json:
        sys.stdout.write(data.decode() + "\n")
    bad = {k: v for k, v in summary["skipped"].items() if k != "duplicate_file"}
    return 1 if bad else 0


def run_jsonl(plan: ImportPlan) -> int:
    """Print the samples each file yields, one JSON object per line (as the gateway would
    publish them, schema-checked); one JSON summary line per file on stderr."""
    import tempfile

    from kneeload.contracts import sample_contract
    from kneeload.ingest.pipeline import time_error
    from kneeload.settings import get_settings

    sources, passed = discover(plan.paths)
    contract, skew = sample_contract(), get_settings().ingest_max_future_skew_s
    code = 0
    with tempfile.TemporaryDirectory(prefix="kneeload-import-") as tmp:
        results = _decode(plan, sources, None, Path(tmp), None, None)
        for r in results:
            if r.status != "decoded" or r.spool is None:
                sys.stderr.write(
                    orjson.dumps({"file": r.name, "skipped": r.reason, "detail": r.detail}).decode()
                    + "\n"
                )
                code = 1
                continue
            norm = h.load_spool(r.spool)
            invalid = 0
            now = time.time()
            out = sys.stdout
            for sample in norm.samples:
                errs = contract.errors(sample) or (
                    [e] if (e := time_error(sample["time"], "/time", now, skew)) else []
                )
                if errs:
                    invalid += 1
                    sys.stderr.write(
                        f"rejected {sample['record_id']}: "
                        + "; ".join(f"{x.path} {x.code}" for x in errs)
                        + "\n"
                    )
                    continue
                out.write(orjson.dumps(sample).decode() + "\n")
            summary = {
                **norm.summary,
                "file": r.name,
                "athlete_id": r.athlete_id,
                "device_id": r.device_id,
                "rejected_by_reason": r.rejected,
                "schema_invalid": invalid,
            }
            sys.stderr.write(orjson.dumps(summary).decode() + "\n")
    for name, reason, detail in passed:
        sys.stderr.write(
            orjson.dumps({"file": name, "skipped": reason, "detail": detail}).decode() + "\n"
        )
        code = 1
    return code


def run_upload(
    plan: ImportPlan,
    api_key: str,
    url: str | None,
    *,
    as_json: bool = False,
    summary_out: Path | None = None,
) -> int:
    """Upload each file to a running gateway (``POST /v1/activities``) as ``--device``:
    the gateway decodes and publishes. For machines without Kafka access."""
    import httpx

    from kneeload.settings import get_settings

    s = get_settings()
    console = Console(stderr=True)
    base = (url or f"http://{s.http_host}:{s.http_port}").rstrip("/")
    device = plan.mapping.device
    assert device is not None
    sources, passed = discover(plan.paths)
    results: list[FileResult] = []
    t0 = time.monotonic()
    ctypes = {
        "fit": "application/vnd.ant.fit",
        "tcx": "application/vnd.garmin.tcx+xml",
        "gpx": "application/gpx+xml",
    }
    params = {
        k: v
        for k, v in (
            ("start_time", plan.start_time.isoformat() if plan.start_time else None),
            ("session_id", plan.session_id),
            ("cadence_unit", plan.cadence_unit),
        )
        if v
    }
    with _progress(console) as progress, httpx.Client(timeout=120) as client:
        task = progress.add_task("uploading", total=len(sources), note="")
        for src in sources:
            r = FileResult(
                src.name, src.key, "published", device_id=device, athlete_id=plan.mapping.athlete
            )
            try:
                data = read(src)
                fmt = act.sniff_format(data)
                resp = client.post(
                    f"{base}/v1/activities",
                    content=data,
                    params=params,
                    headers={
                        "X-Device-Id": device,
                        "X-Api-Key": api_key,
                        "Content-Type": ctypes.get(fmt or "", "application/octet-stream"),
                    },
                )
                body = (
                    resp.json()
                    if resp.headers.get("content-type", "").startswith("application/json")
                    else {}
                )
            except SourceError as exc:
                r.status, r.reason, r.detail = "skipped", exc.code, exc.message
            except httpx.HTTPError as exc:
                raise SystemExit(f"gateway at {base} not reachable: {exc}") from exc
            else:
                summ = body.get("summary") or {}
                r.fmt, r.sha256 = summ.get("format"), summ.get("file_sha256")
                r.samples = int(summ.get("samples") or 0)
                r.rejected = {
                    k: v["count"] for k, v in (summ.get("rejected_records") or {}).items()
                }
                if resp.status_code >= 400:
                    err = body.get("error") or {}
                    r.status = "skipped"
                    r.reason = err.get("code") or f"http_{resp.status_code}"
                    r.detail = err.get("message") or resp.text[:200]
                else:
                    r.accepted, r.duplicates = (
                        int(body.get("accepted", 0)),
                        int(body.get("duplicates", 0)),
                    )
                    r.sessions = 1 if r.samples else 0
            results.append(r)
            progress.update(task, advance=1)
    summary = h.summarise(results, passed, {}, {"total": time.monotonic() - t0}, mode="upload")
    return _report(summary, console, as_json, summary_out)
