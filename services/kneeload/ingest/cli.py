"""``kneeload ingest`` (the HTTP gateway) and ``kneeload import-fit``."""

from __future__ import annotations

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


@click.command("import-fit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--athlete-id", required=True, help="Athlete the activity belongs to.")
@click.option(
    "--jsonl", is_flag=True, help="Print the normalised samples as JSON lines (no upload)."
)
@click.option(
    "--device-id",
    envvar="KNEELOAD_DEVICE_ID",
    default=None,
    help="Device uploading (record ids derive from it). Env KNEELOAD_DEVICE_ID.",
)
@click.option(
    "--api-key",
    envvar="KNEELOAD_DEVICE_KEY",
    default=None,
    help="The device's API key. Env KNEELOAD_DEVICE_KEY.",
)
@click.option(
    "--url",
    default=None,
    help="Gateway base URL (default http://KNEELOAD_HTTP_HOST:KNEELOAD_HTTP_PORT).",
)
@click.option(
    "--start-time",
    default=None,
    help="Absolute time of the first record (FIT files with relative times).",
)
@click.option(
    "--session-id",
    default=None,
    help="Session id for all samples (default: derived from the file).",
)
@click.option(
    "--cadence-unit",
    type=click.Choice(["auto", "spm", "strides"]),
    default="auto",
    show_default=True,
    help="TCX only: unit of <Cadence>.",
)
def import_fit_cmd(
    file: Path,
    athlete_id: str,
    jsonl: bool,
    device_id: str | None,
    api_key: str | None,
    url: str | None,
    start_time: str | None,
    session_id: str | None,
    cadence_unit: str,
) -> None:
    """Decode a FIT (or TCX) FILE. With --jsonl print the samples the upload path would
    publish, one JSON object per line (summary and rejections on stderr); otherwise upload
    it to a running gateway as --device-id (a watch or app of --athlete-id)."""
    import orjson

    from kneeload.ingest import activity as act

    data = file.read_bytes()
    if jsonl:
        import time

        from kneeload.contracts import sample_contract
        from kneeload.ingest.pipeline import time_error
        from kneeload.settings import get_settings

        try:
            anchor = datetime.fromisoformat(start_time.upper()) if start_time else None
            norm = act.normalise(
                act.decode(data, cadence_unit=cadence_unit),
                device_id=device_id or f"{athlete_id}.file",
                start_time=anchor,
            )
        except act.ActivityError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from exc
        contract, now, skew = (
            sample_contract(),
            time.time(),
            get_settings().ingest_max_future_skew_s,
        )
        out = sys.stdout
        invalid = 0
        for sample in norm.samples:
            errs = contract.errors(sample) or (
                [e] if (e := time_error(sample["time"], "/time", now, skew)) else []
            )
            if errs:
                invalid += 1
                click.echo(
                    f"rejected {sample['record_id']}: "
                    + "; ".join(f"{x.path} {x.code}" for x in errs),
                    err=True,
                )
                continue
            out.write(orjson.dumps(sample).decode() + "\n")
        reasons: dict[str, int] = {}
        for r in norm.rejected:
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
        summary = {**norm.summary, "rejected_by_reason": reasons, "schema_invalid": invalid}
        click.echo(orjson.dumps(summary).decode(), err=True)
        return
    import httpx

    from kneeload.settings import get_settings

    if not device_id or not api_key:
        raise click.UsageError(
            "uploading needs --device-id and --api-key (or KNEELOAD_DEVICE_ID / KNEELOAD_DEVICE_KEY)"  # noqa: E501
        )
    s = get_settings()
    base = (url or f"http://{s.http_host}:{s.http_port}").rstrip("/")
    fmt = act.sniff_format(data)
    ctype = "application/vnd.garmin.tcx+xml" if fmt == "tcx" else "application/vnd.ant.fit"
    params = {
        k: v
        for k, v in (
            ("start_time", start_time),
            ("session_id", session_id),
            ("cadence_unit", cadence_unit),
        )
        if v
    }
    try:
        resp = httpx.post(
            f"{base}/v1/activities",
            content=data,
            params=params,
            timeout=120,
            headers={"X-Device-Id": device_id, "X-Api-Key": api_key, "Content-Type": ctype},
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(f"gateway at {base} not reachable: {exc}") from exc
    try:
        body = resp.json()
    except ValueError:
        body = {"raw": resp.text[:2000]}
    body_for_user = (
        {k: v for k, v in body.items() if k != "results"} if isinstance(body, dict) else body
    )
    if isinstance(body, dict) and body.get("athlete_id") not in (None, athlete_id):
        click.echo("warning: gateway answered for another athlete", err=True)
    click.echo(
        orjson.dumps(
            {
                "status": resp.status_code,
                **(body_for_user if isinstance(body_for_user, dict) else {"body": body_for_user}),
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )
    if resp.status_code >= 400:
        raise SystemExit(1)


def register(group: click.Group) -> None:
    group.add_command(ingest_cmd)
    group.add_command(import_fit_cmd)
