"""``kneeload import``: months of history (FIT, TCX, GPX; folders, zips, gzip) into the pipeline.

Three steps, each resumable (:class:`kneeload.ingest.ledger.Ledger`):

1. **Decode** in worker processes (:func:`decode_job`, one file each): the bytes come out of
   their archive (:mod:`kneeload.ingest.sources`), :mod:`kneeload.ingest.activity` decodes
   and normalises them (the same decoder as the gateway's upload path), the file is given
   its athlete and device (mapping by device serial or file pattern, else ``--athlete``), and
   the samples wait in a spool file. The main process only collects small results.
2. **Order**: files are sorted per athlete by their first sample. The stream worker counts
   a sample only within its lateness horizon of the athlete's watermark (latest sample
   time), so history published in time order *before* an athlete's live data is counted
   like live data. Files older than an athlete's stored data minus the horizon are still
   stored, but the running worker does not count them: the summary names them and the
   command that counts them (``kneeload rebuild-state --since DATE``).
3. **Publish** through the gateway core (:meth:`kneeload.ingest.pipeline.Ingestor.activity`:
   schema validation, the athlete's team from the registry, dead letters per reason,
   idempotent ``acks=all`` producer), athletes concurrently, each athlete's files in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import datetime as dt
import hashlib
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from kneeload.ingest import activity as act
from kneeload.ingest.ledger import Ledger
from kneeload.ingest.sources import Mapping, Source, SourceError, read

__all__ = [
    "DecodeJob",
    "FileResult",
    "ImportPlan",
    "decode_job",
    "not_counted",
    "summarise",
]

_WATCH_KINDS = ("watch", "app")
_DEAD_LETTER_FORMATS = ("fit", "tcx", "gpx")


@dataclass(frozen=True, slots=True)
class DecodeJob:
    """Everything a worker process needs for one file (picklable)."""

    source: Source
    mapping: Mapping
    #: athlete -> its registered watch/app device ids; None: no registry check (--jsonl)
    devices: dict[str, tuple[str, ...]] | None
    #: device -> the athlete that owns it
    owners: dict[str, str | None]
    cadence_unit: str
    start_time: dt.datetime | None
    spool_dir: str


@dataclass(slots=True)
class FileResult:
    """What happened to one file; ``status`` decoded → published, or skipped (``reason``)."""

    name: str
    key: str
    status: str  # decoded | published | already_imported | skipped
    reason: str | None = None
    detail: str | None = None
    fmt: str | None = None
    sha256: str | None = None
    athlete_id: str | None = None
    device_id: str | None = None
    matched_by: str | None = None
    serial_number: int | None = None
    records: int = 0
    samples: int = 0
    sessions: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    not_running: int = 0
    paused: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    spool: str | None = None
    resumed: bool = False  # decoded by an earlier run (its spool was waiting)
    decoded_now: bool = False  # decoded by this run
    accepted: int = 0
    duplicates: int = 0
    counted: bool | None = None
    decode_error: bool = False  # the file itself is bad input (dead-lettered when publishing)

    def meta(self) -> dict[str, Any]:
        return asdict(self)


def _skip(src: Source, reason: str, detail: str, **kw: Any) -> FileResult:
    return FileResult(src.name, src.key, "skipped", reason, detail, **kw)


def _resolve(job: DecodeJob, serial: int | None) -> tuple[str | None, str | None, str, str]:
    """``(athlete, device, how, problem)``; problem is '' when the file can be imported."""
    athlete, device, how = job.mapping.resolve(job.source.name, serial)
    if athlete is None:
        return None, None, how, "no_athlete"
    if job.devices is None:  # --jsonl: nothing is published, ids only
        return athlete, device or f"{athlete}.file", how, ""
    if athlete not in job.devices:
        return athlete, device, how, "unknown_athlete"
    if device is None:
        own = job.devices[athlete]
        if len(own) == 1:
            return athlete, own[0], how, ""
        return athlete, None, how, "no_device" if not own else "device_ambiguous"
    if device not in job.owners or job.owners[device] != athlete:
        return athlete, device, how, "device_mismatch"
    return athlete, device, how, ""


_PROBLEMS = {
    "no_athlete": "no mapping rule matches this file and no --athlete was given",
    "unknown_athlete": "the athlete is not in the registry (kneeload registry add-athlete)",
    "no_device": "the athlete has no watch or app in the registry "
    "(kneeload registry add-device ... --kind watch --athlete A), or name one with --device",
    "device_ambiguous": "the athlete has several watches/apps: name one with --device or a "
    "'device' column in the mapping",
    "device_mismatch": "the device is not registered to this athlete",
}


def decode_job(job: DecodeJob) -> FileResult:
    """Read, decode, assign and normalise one file; its samples go to a spool file.
    Runs in a worker process; never raises for bad input."""
    src = job.source
    try:
        data = read(src)
    except SourceError as exc:
        return _skip(src, exc.code, exc.message)
    sha = hashlib.sha256(data).hexdigest()
    fmt = act.sniff_format(data)
    if fmt is None:
        return _skip(src, "unknown_format", "not a FIT file, a TCX or a GPX document", sha256=sha)
    try:
        activity = act.decode(data, fmt, cadence_unit=job.cadence_unit)
    except act.ActivityError as exc:
        return _skip(src, exc.code, exc.message, fmt=fmt, sha256=sha, decode_error=True)
    athlete, device, how, problem = _resolve(job, activity.serial_number)
    base: dict[str, Any] = {
        "fmt": fmt,
        "sha256": sha,
        "athlete_id": athlete,
        "device_id": device,
        "matched_by": how,
        "serial_number": activity.serial_number,
        "records": len(activity.records),
    }
    if problem:
        return _skip(src, problem, _PROBLEMS[problem], **base)
    assert athlete is not None and device is not None
    try:
        norm = act.normalise(activity, device_id=device, start_time=job.start_time)
    except act.ActivityError as exc:
        return _skip(src, exc.code, exc.message, **base, decode_error=True)
    times = [act_ms(s["time"]) for s in norm.samples]
    runs: list[list[Any]] = []
    for s in norm.sessions:
        if runs and runs[-1][0] == s["session_id"] and runs[-1][1] == s["sub_sport"]:
            runs[-1][2] += 1
        else:
            runs.append([s["session_id"], s["sub_sport"], 1])
    spool = Path(job.spool_dir) / (
        hashlib.sha256(f"{src.key}\x1f{athlete}\x1f{device}".encode()).hexdigest()[:32] + ".json"
    )
    tmp = spool.with_suffix(".tmp")
    tmp.write_bytes(
        orjson.dumps(
            {
                "samples": norm.samples,
                "sessions": runs,
                "rejected": norm.rejected,
                "skipped": norm.skipped,
                "summary": norm.summary,
            }
        )
    )
    os.replace(tmp, spool)
    return FileResult(
        src.name,
        src.key,
        "decoded",
        **base,
        samples=len(norm.samples),
        sessions=len({r[0] for r in runs}),
        rejected=dict(Counter(r["reason"] for r in norm.rejected)),
        not_running=norm.skipped.get("not_running", 0),
        paused=norm.skipped.get("paused", 0),
        first_ms=min(times) if times else None,
        last_ms=max(times) if times else None,
        spool=str(spool),
    )


def act_ms(text: str) -> int:
    return round(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def load_spool(path: str) -> act.NormalisedActivity:
    """The normalised activity a worker process left in the spool."""
    d = orjson.loads(Path(path).read_bytes())
    sessions: list[dict[str, Any]] = []
    for sid, sub, n in d["sessions"]:
        sessions.extend({"session_id": sid, "sub_sport": sub} for _ in range(n))
    return act.NormalisedActivity(d["samples"], sessions, d["rejected"], d["skipped"], d["summary"])


# ---------------------------------------------------------------------------- the plan


@dataclass(slots=True)
class ImportPlan:
    """Inputs of one ``kneeload import`` run (the CLI builds it)."""

    paths: list[Path]
    mapping: Mapping
    cadence_unit: str = "auto"
    start_time: dt.datetime | None = None
    jobs: int = max(1, os.cpu_count() or 1)
    ledger_path: Path | None = None
    use_ledger: bool = True
    mapping_text: str = ""
    session_id: str | None = None

    def fingerprint(self) -> str:
        """What decides a file's athlete, device and samples: a different answer imports anew."""
        parts = (
            self.mapping_text,
            self.mapping.athlete or "",
            self.mapping.device or "",
            self.cadence_unit,
            self.start_time.isoformat() if self.start_time else "",
        )
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def decode_all(
    jobs: list[DecodeJob],
    workers: int,
    on_result: Callable[[FileResult], None],
) -> None:
    """Decode ``jobs`` in ``workers`` processes (in this process when 1), calling
    ``on_result`` in the main process as each finishes (bounded number in flight)."""
    if workers <= 1 or len(jobs) <= 1:
        for j in jobs:
            on_result(decode_job(j))
        return
    # fork: workers start at once with the decoder already imported (forkserver and spawn
    # re-import the `kneeload` entry point and its command discovery in every worker)
    ctx = multiprocessing.get_context("fork")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: set[cf.Future[FileResult]] = set()
        it = iter(jobs)
        for j in it:
            pending.add(pool.submit(decode_job, j))
            if len(pending) >= workers * 4:
                done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for f in done:
                    on_result(f.result())
        for f in cf.as_completed(pending):
            on_result(f.result())


def mark_duplicates(results: Iterable[FileResult], published: set[tuple[str, str, str]]) -> None:
    """The same file (by digest) for the same athlete and device is imported once: a copy in
    a zip and in a folder, or one imported by an earlier run, is skipped."""
    seen = set(published)
    for r in sorted(results, key=lambda r: r.name):
        if r.status != "decoded" or r.sha256 is None:
            continue
        k = (r.sha256, r.athlete_id or "", r.device_id or "")
        if k in seen:
            r.status, r.reason = "skipped", "duplicate_file"
            r.detail = "the same file was already imported for this athlete and device"
        seen.add(k)


def not_counted(
    results: Iterable[FileResult], watermarks: dict[str, dt.datetime], horizon_s: float
) -> dict[str, dict[str, Any]]:
    """Per athlete, files the running worker will store but not count: their first sample
    is older than the athlete's stored data minus the lateness horizon."""
    out: dict[str, dict[str, Any]] = {}
    for r in results:
        if r.status not in ("decoded", "published") or r.athlete_id is None or r.first_ms is None:
            continue
        wm = watermarks.get(r.athlete_id)
        late = wm is not None and r.first_ms < wm.timestamp() * 1000 - horizon_s * 1000
        r.counted = not late
        if late:
            a = out.setdefault(r.athlete_id, {"files": 0, "first": r.first_ms, "watermark": wm})
            a["files"] += 1
            a["first"] = min(a["first"], r.first_ms)
    for a in out.values():
        a["since"] = dt.datetime.fromtimestamp(a.pop("first") / 1000, dt.UTC).date().isoformat()
        a["watermark"] = a["watermark"].isoformat()
    return out


def rebuild_hint(late: dict[str, dict[str, Any]]) -> str | None:
    if not late:
        return None
    since = min(a["since"] for a in late.values())
    return (
        "stop every `kneeload worker`, run `kneeload rebuild-state --since "
        f"{since}`, then start the workers again: the stored history is counted"
    )


# ---------------------------------------------------------------------------- summary


def summarise(
    results: list[FileResult],
    passed: list[tuple[str, str, str]],
    late: dict[str, dict[str, Any]],
    timings: dict[str, float],
    *,
    mode: str,
) -> dict[str, Any]:
    """The machine-readable summary (``--json``); :func:`table` renders it for people."""
    skipped = Counter(r.reason for r in results if r.status == "skipped")
    skipped.update(reason for _, reason, _ in passed)
    rejected: Counter[str] = Counter()
    athletes: dict[str, dict[str, Any]] = {}
    for r in results:
        rejected.update(r.rejected if r.status in ("published", "decoded") else {})
        if r.status not in ("published", "already_imported", "decoded") or not r.athlete_id:
            continue
        a = athletes.setdefault(
            r.athlete_id,
            {"files": 0, "sessions": 0, "samples": 0, "first": None, "last": None},
        )
        a["files"] += 1
        a["sessions"] += r.sessions
        a["samples"] += r.samples
        for k, v, pick in (("first", r.first_ms, min), ("last", r.last_ms, max)):
            if v is not None:
                a[k] = v if a[k] is None else pick(a[k], v)
    for a in athletes.values():
        for k in ("first", "last"):
            if a[k] is not None:
                a[k] = dt.datetime.fromtimestamp(a[k] / 1000, dt.UTC).isoformat()
    by = Counter(r.status for r in results)
    done = [r for r in results if r.status in ("published", "decoded")]
    return {
        "mode": mode,
        "files": {
            "found": len(results) + len(passed),
            "imported": by["published"] + (by["decoded"] if mode != "publish" else 0),
            "already_imported": by["already_imported"],
            "skipped": sum(skipped.values()),
            "decoded_now": sum(1 for r in results if r.decoded_now),
            "resumed_from_ledger": sum(1 for r in results if r.resumed),
        },
        "sessions": sum(r.sessions for r in done),
        "samples": sum(r.samples for r in done),
        "samples_accepted": sum(r.accepted for r in done),
        "samples_duplicate": sum(r.duplicates for r in done),
        "records_rejected": dict(sorted(rejected.items())),
        "records_not_running": sum(r.not_running for r in done),
        "records_paused": sum(r.paused for r in done),
        "skipped": dict(sorted(skipped.items())),
        "athletes": dict(sorted(athletes.items())),
        "not_counted_by_worker": late,
        "next_step": rebuild_hint(late),
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "file_results": [
            {k: v for k, v in r.meta().items() if k not in ("key", "spool")} for r in results
        ]
        + [{"name": n, "status": "skipped", "reason": why, "detail": d} for n, why, d in passed],
    }


def table(summary: dict[str, Any]) -> Any:
    """The end-of-run summary as rich tables (files, sessions, samples, skipped by reason)."""
    from rich.console import Group
    from rich.table import Table

    f = summary["files"]
    t = Table(title="kneeload import", show_header=False, title_justify="left")
    t.add_row("files found", f"{f['found']:,}")
    t.add_row("imported", f"{f['imported']:,}")
    t.add_row("already imported (ledger)", f"{f['already_imported']:,}")
    t.add_row("skipped", f"{f['skipped']:,}")
    t.add_row("decoded now / resumed", f"{f['decoded_now']:,} / {f['resumed_from_ledger']:,}")
    t.add_row("sessions", f"{summary['sessions']:,}")
    t.add_row(
        "samples",
        f"{summary['samples']:,} ({summary['samples_accepted']:,} new, "
        f"{summary['samples_duplicate']:,} already there)",
    )
    if summary["records_rejected"]:
        t.add_row(
            "records rejected",
            ", ".join(f"{k} {v:,}" for k, v in summary["records_rejected"].items()),
        )
    t.add_row(
        "records not running / paused",
        f"{summary['records_not_running']:,} / {summary['records_paused']:,}",
    )
    parts: list[Any] = [t]
    if summary["skipped"]:
        s = Table(title="skipped files by reason", title_justify="left")
        s.add_column("reason")
        s.add_column("files", justify="right")
        s.add_column("example")
        examples: dict[str, str] = {}
        for r in summary["file_results"]:
            if r.get("status") == "skipped" and r.get("reason") not in examples:
                examples[r["reason"]] = f"{r['name']}: {r.get('detail') or ''}"[:120]
        for reason, n in summary["skipped"].items():
            s.add_row(reason, f"{n:,}", examples.get(reason, ""))
        parts.append(s)
    if summary["athletes"]:
        a = Table(title="per athlete", title_justify="left")
        for col in ("athlete", "files", "sessions", "samples", "from", "to"):
            a.add_column(
                col, justify="right" if col in ("files", "sessions", "samples") else "left"
            )
        for aid, v in summary["athletes"].items():
            a.add_row(
                aid,
                f"{v['files']:,}",
                f"{v['sessions']:,}",
                f"{v['samples']:,}",
                (v["first"] or "")[:10],
                (v["last"] or "")[:10],
            )
        parts.append(a)
    return Group(*parts)


async def registry_snapshot(
    settings: Any,
) -> tuple[dict[str, tuple[str, ...]], dict[str, str | None], dict[str, dict[str, Any]]]:
    """(athlete → watch/app devices, device → owner, device records) from the registry."""
    from kneeload.registry.view import RegistryView

    async with RegistryView(settings, client_id="kneeload-import-registry") as view:
        devices = {k: dict(v) for k, v in view.devices.items()}
        athletes = list(view.athletes)
    own: dict[str, list[str]] = {a: [] for a in athletes}
    for did, d in sorted(devices.items()):
        if d.get("kind") in _WATCH_KINDS and d.get("athlete_id") in own:
            own[d["athlete_id"]].append(did)
    owners = {did: d.get("athlete_id") for did, d in devices.items()}
    return {a: tuple(v) for a, v in own.items()}, owners, devices


def watermarks(settings: Any, athletes: Iterable[str]) -> dict[str, dt.datetime]:
    """Latest stored session end per athlete (the worker's watermark, as far as the database
    knows it); empty when the database cannot be reached."""
    import psycopg

    ids = sorted(set(athletes))
    if not ids:
        return {}
    try:
        with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT athlete_id, max(end_time) FROM kneeload.sessions "
                "WHERE athlete_id = ANY(%s) GROUP BY athlete_id",
                (ids,),
            ).fetchall()
    except psycopg.Error:
        return {}
    return {a: t for a, t in rows if t is not None}


async def publish(
    settings: Any,
    results: list[FileResult],
    sources: dict[str, Source],
    devices: dict[str, dict[str, Any]],
    ledger: Ledger | None,
    advance: Callable[[FileResult], None],
    *,
    session_id: str | None = None,
    concurrency: int = 4,
) -> None:
    """Publish decoded files through the gateway core, each athlete's in time order."""
    from kneeload.ingest.pipeline import Ingestor
    from kneeload.registry.kafkaio import make_producer
    from kneeload.registry.view import RegistryView

    by_athlete: dict[str, list[FileResult]] = {}
    for r in results:
        if r.status == "decoded":
            by_athlete.setdefault(r.athlete_id or "", []).append(r)
    view = RegistryView(settings, client_id="kneeload-import-registry")
    producer = make_producer(settings, client_id="kneeload-import")
    await view.start()
    await producer.start()
    gate = asyncio.Semaphore(concurrency)
    try:
        ing = Ingestor(settings, view, producer)

        async def one_athlete(files: list[FileResult]) -> None:
            async with gate:
                for r in sorted(files, key=lambda r: (r.first_ms or 0, r.name)):
                    await _publish_file(ing, r, devices, ledger, session_id)
                    advance(r)

        await asyncio.gather(*(one_athlete(v) for _, v in sorted(by_athlete.items())))
        for r in results:  # activity files that cannot be decoded: kept as dead letters
            if r.decode_error and r.fmt in _DEAD_LETTER_FORMATS and r.key in sources:
                try:
                    payload: bytes | None = read(sources[r.key])
                except SourceError:
                    payload = None
                await ing.dead_letter(
                    r.fmt or "fit",
                    r.reason or "corrupt",
                    f"{r.name}: {r.detail}",
                    payload,
                    key=r.device_id or r.athlete_id or r.name[-256:],
                )
    finally:
        await producer.stop()
        await view.stop()


async def _publish_file(
    ing: Any,
    r: FileResult,
    devices: dict[str, dict[str, Any]],
    ledger: Ledger | None,
    session_id: str | None,
) -> None:
    assert r.spool is not None and r.device_id is not None
    norm = load_spool(r.spool)
    device = {**devices[r.device_id], "device_id": r.device_id, "athlete_id": r.athlete_id}
    res = await ing.activity(device, norm, r.fmt or "fit", None, session_id=session_id)
    if res.outcome is None:
        r.status, r.reason = "skipped", res.error
        why = ", ".join(f"{k} {v}" for k, v in sorted(r.rejected.items()))
        if r.not_running:
            why = ", ".join(x for x in (why, f"not running {r.not_running}") if x)
        r.detail = f"the file yields no running samples with cadence ({why or 'no records'})"
    else:
        r.status = "published"
        r.accepted = res.outcome.count("accepted")
        r.duplicates = res.outcome.count("duplicate")
    if ledger is not None:
        ledger.mark(r.key, "published", r.meta())
    with contextlib.suppress(FileNotFoundError):
        os.unlink(r.spool)
