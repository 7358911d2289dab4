"""``kneeload ingest`` (the HTTP gateway) and ``kneeload import`` (alias ``import-fit``)."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

import click


@click.command("ingest")
@click.option("--host", default=None, help="Bind address (default KNEELOAD_HTTP_HOST).")
@click.option("--port", type=int, default=None, help="Port (default KNEELOAD_HTTP_PORT).")
@click.option(
    "--workers", type=int, default=None, help="Processes (default KNEELOAD_INGEST_WORKERS)."
)
@click.option(
    "--openapi", "print_openapi", is_flag=True, help="Print the OpenAPI document and exit."
)
def ingest_cmd(
    host: str | None, port: int | None, workers: int | None, print_openapi: bool
) -> None:
    """Run the HTTP ingest gateway: watch samples, activity files, LEVER telemetry over HTTP,
    pain reports and the admin (registry) paths. Replies after Kafka acknowledged."""
    if print_openapi:
        import orjson

        from kneeload.ingest.openapi import build_openapi

        sys.stdout.write(orjson.dumps(build_openapi(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    import logging

    import uvicorn

    from kneeload.settings import get_settings

    s = get_settings()
    logging.basicConfig(level=s.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        "kneeload.ingest.app:create_app",
        factory=True,
        host=host or s.http_host,
        port=port or s.http_port,
        workers=workers or s.ingest_workers,
        loop="uvloop",
        http="httptools",
        log_level=s.log_level.lower(),
        access_log=False,
    )


_IMPORT_HELP = """Import activity history: FIT, TCX and GPX files, folders (recursively), .zip
archives (Garmin/Strava bulk exports, zips inside zips) and .gz-compressed files.

\b
  kneeload import ~/anna-history.zip --athlete ath-anna
  kneeload import exports/ --map team-map.csv --json > summary.json

Each file gets an athlete: a --map CSV (header: athlete, serial or pattern, optional device;
serial = the FIT file's device serial number, pattern = shell pattern on the file's path)
or --athlete. Its device (record ids are DEVICE:EPOCH_MS) is the mapping's, --device, or
the athlete's only registered watch/app. Files are decoded in --jobs processes, then
published per athlete in time order through the gateway core (validation, dead letters,
acks=all), straight to Kafka. Re-running imports nothing twice: ids are deterministic and
a resume ledger (var/import/ledger.sqlite) skips what an earlier, maybe interrupted, run
did. History older than an athlete's stored data minus the worker's lateness horizon is
stored but not counted by the running worker: the summary names the `kneeload
rebuild-state --since DATE` that counts it. GPX has no cadence in its core spec: cadence
comes from extensions (Garmin TrackPointExtension <cad>); a GPX without it yields no
samples (no_cadence), as kneeload never invents a cadence.

With --api-key the files are uploaded to a running HTTP gateway as that device instead
(no Kafka access needed); with --jsonl the samples are printed, nothing is published.
`kneeload import-fit` is the same command."""


@click.command("import", help=_IMPORT_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--athlete",
    "--athlete-id",
    "athlete",
    default=None,
    help="Athlete of every file no mapping rule matches.",
)
@click.option(
    "--map",
    "map_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CSV mapping: athlete, serial and/or pattern, device.",
)
@click.option(
    "--device",
    "--device-id",
    "device",
    envvar="KNEELOAD_DEVICE_ID",
    default=None,
    help="Device of --athlete's files (default: the athlete's only watch/app).",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=None,
    help="Decoding processes (default: the number of CPUs).",
)
@click.option(
    "--cadence-unit",
    type=click.Choice(["auto", "spm", "strides"]),
    default="auto",
    show_default=True,
    help="Unit of TCX <Cadence> / GPX cadence (auto detects).",
)
@click.option(
    "--start-time",
    default=None,
    help="Absolute time of the first record (FIT files with relative times).",
)
@click.option("--session-id", default=None, help="One session id for all samples of a file.")
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Resume ledger (default <var_dir>/import/ledger.sqlite).",
)
@click.option("--no-ledger", is_flag=True, help="Neither read nor write the resume ledger.")
@click.option("--dry-run", is_flag=True, help="Decode and summarise; publish nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option(
    "--summary-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the JSON summary to this file.",
)
@click.option(
    "--jsonl",
    is_flag=True,
    help="Print the normalised samples as JSON lines (per-file summary on stderr).",
)
@click.option(
    "--api-key",
    envvar="KNEELOAD_DEVICE_KEY",
    default=None,
    help="Upload through the HTTP gateway as --device with this key.",
)
@click.option(
    "--url",
    default=None,
    help="Gateway base URL for --api-key (default http://HTTP_HOST:HTTP_PORT).",
)
def import_cmd(
    paths: tuple[Path, ...],
    athlete: str | None,
    map_file: Path | None,
    device: str | None,
    jobs: int | None,
    cadence_unit: str,
    start_time: str | None,
    session_id: str | None,
    ledger_path: Path | None,
    no_ledger: bool,
    dry_run: bool,
    as_json: bool,
    summary_out: Path | None,
    jsonl: bool,
    api_key: str | None,
    url: str | None,
) -> None:
    from kneeload.ingest import importer
    from kneeload.ingest.sources import Mapping, MappingError

    try:
        anchor = datetime.fromisoformat(start_time.upper()) if start_time else None
        if anchor is not None and anchor.tzinfo is None:
            raise ValueError("no timezone")
    except ValueError as exc:
        raise click.BadParameter(
            f"RFC 3339 with a timezone: {exc}", param_hint="--start-time"
        ) from exc
    try:
        mapping = (
            Mapping.load(map_file, athlete=athlete, device=device)
            if map_file
            else Mapping(athlete=athlete, device=device)
        )
    except MappingError as exc:
        raise click.BadParameter(str(exc), param_hint="--map") from exc
    if not mapping.rules and athlete is None:
        raise click.UsageError("give --athlete or a --map file (who do these files belong to?)")
    if api_key and not device:
        raise click.UsageError("uploading with --api-key needs --device (the device of that key)")
    plan = importer.ImportPlan(
        paths=list(paths),
        mapping=mapping,
        cadence_unit=cadence_unit,
        start_time=anchor,
        jobs=jobs or max(1, os.cpu_count() or 1),
        ledger_path=ledger_path,
        use_ledger=not no_ledger and not jsonl,
        mapping_text=map_file.read_text(encoding="utf-8-sig") if map_file else "",
        session_id=session_id,
    )
    if jsonl:
        code = importer.run_jsonl(plan)
    elif api_key:
        code = importer.run_upload(plan, api_key, url, as_json=as_json, summary_out=summary_out)
    else:
        code = importer.run(plan, dry_run=dry_run, as_json=as_json, summary_out=summary_out)
    if code:
        raise SystemExit(code)


def register(group: click.Group) -> None:
    group.add_command(ingest_cmd)
    group.add_command(import_cmd)
    group.add_command(import_cmd, name="import-fit")  # the one-file command it replaced
