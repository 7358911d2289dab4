"""``kneeload acwr``'s file I/O and column layout (polars), apart from the command so that
the command line starts without importing polars."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
import polars as pl

from kneeload.core.acwr import METHODS, AcwrConfig, Method, acwr_frame

__all__ = ["read_daily_loads", "run_acwr", "write_csv_stdout"]


def read_daily_loads(path: Path) -> pl.DataFrame:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        df = pl.read_parquet(path)
    elif suffix == ".csv" or path == Path("-"):
        src: Any = sys.stdin.buffer if path == Path("-") else path
        df = pl.read_csv(src, schema_overrides={"athlete_id": pl.String, "load": pl.Float64})
    else:
        raise click.BadParameter(f"{path}: use a .csv or .parquet file", param_hint="--input")
    missing = {"athlete_id", "date", "load"} - set(df.columns)
    if missing:
        raise click.BadParameter(
            f"{path}: missing column(s) {', '.join(sorted(missing))}; need athlete_id,date,load",
            param_hint="--input",
        )
    if df.schema["date"] == pl.String:
        try:
            df = df.with_columns(pl.col("date").str.to_date())
        except pl.exceptions.PolarsError as exc:
            raise click.BadParameter(
                f"{path}: date must be YYYY-MM-DD ({exc})", param_hint="--input"
            ) from exc
    return df


def run_acwr(
    df: pl.DataFrame, method: str = "ewma", config: AcwrConfig | None = None
) -> pl.DataFrame:
    """What ``kneeload acwr`` computes: the CLI's column layout on top of :func:`acwr_frame`.

    One method → ``athlete_id,date,load,acute,chronic,acwr,acwr_reason``; ``all`` →
    the same columns suffixed ``_ewma``, ``_rac``, ``_rau``.
    """
    methods: tuple[Method, ...] = METHODS if method == "all" else (method,)  # type: ignore[assignment]
    out = acwr_frame(df, config or AcwrConfig(), methods)
    if method != "all":
        m = method
        out = out.rename(
            {
                f"acute_{m}": "acute",
                f"chronic_{m}": "chronic",
                f"acwr_{m}": "acwr",
                f"acwr_reason_{m}": "acwr_reason",
            }
        )
    return out


def write_csv_stdout(df: pl.DataFrame) -> None:
    """CSV bytes straight to stdout (no whole-file string); a reader that stops early
    (``| head``) ends the command quietly, as Unix filters do."""
    sys.stdout.flush()
    try:
        df.write_csv(sys.stdout.buffer)
        sys.stdout.buffer.flush()
    except OSError as exc:  # polars reports a closed pipe as a plain OSError
        if not isinstance(exc, BrokenPipeError) and "Broken pipe" not in str(exc):
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        sys.exit(141)  # 128 + SIGPIPE, what the shell reports for a filter cut off by head
