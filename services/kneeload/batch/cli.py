"""Batch commands: ``kneeload pfj`` and ``kneeload acwr`` (thin wrappers on kneeload.core)."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["acwr_cmd", "pfj_cmd", "register"]

# Heavy modules (polars, numpy, the core) are imported inside the commands: `kneeload --help`
# and every other command must not pay for them (tests/test_startup.py).


#: the options naming an input that a plausibility reason is about
_REASON_OPTIONS = {
    "step_length_m": "--speed-mps / --cadence-spm",
    "gait": "--speed-mps / --cadence-spm",
}


def _show_bounds(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    import orjson

    from kneeload.core.plausibility import DEFAULT_BOUNDS

    rows = [r._asdict() for r in DEFAULT_BOUNDS.table()]
    click.echo(orjson.dumps({"bounds": rows, "source": "docs/science.md §1.5"}).decode())
    ctx.exit()


@click.command("pfj")
@click.option(
    "--bounds",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_bounds,
    help="Print the input plausibility bounds, each with its source, as JSON and exit.",
)
@click.option("--body-mass-kg", type=float, default=None, help="Body mass, kg (30–250).")
@click.option("--speed-mps", type=float, default=None, help="Running speed, m/s (running: 1–7).")
@click.option(
    "--cadence-spm",
    type=float,
    default=None,
    help="Step rate, steps/min (running: 140–240; a strides/min value is doubled and flagged).",
)
@click.option(
    "--ground-contact-ms",
    type=float,
    default=None,
    help="Ground contact time, ms. Estimated from speed and cadence when omitted (the output "
    "says so, with its uncertainty).",
)
@click.option(
    "--grade-pct",
    type=float,
    default=0.0,
    show_default=True,
    help="Incline, %; negative is downhill.",
)
@click.option(
    "--bws-pct",
    type=float,
    default=0.0,
    show_default=True,
    help="Body-weight support, % (0–80).",
)
def pfj_cmd(
    body_mass_kg: float | None,
    speed_mps: float | None,
    cadence_spm: float | None,
    ground_contact_ms: float | None,
    grade_pct: float,
    bws_pct: float,
) -> None:
    """Estimate patellofemoral joint stress for one running condition; print one JSON object.

    Output: peak_pfj_stress_mpa (± the uncertainty an estimated contact adds),
    pfj_impulse_per_step_mpa_s, pfj_load_per_km (MPa·s/km), effective_body_weight_n,
    peak_vgrf_bw, step_length_m, ground_contact_ms, an "estimated" flag for every value, the
    assumptions used and the parameters. A MODEL ESTIMATE (docs/science.md §1.3), not a
    measurement.

    Inputs outside the model's plausibility bounds (see --bounds) give no estimate: the
    command fails (exit 2) naming the input, the reason code and the bound — e.g. 12 m/s at
    140 spm: "step_length_implausible: step length 5.14 m implausible (> 2.5 m)". Walking
    (e.g. 96 spm at 1.3 m/s) is not estimated with the running model.

    Example: kneeload pfj --body-mass-kg 75 --speed-mps 3.4 --cadence-spm 170 --bws-pct 20
    """
    import orjson

    from kneeload.core.pfj import ImplausibleInputError, estimate_pfj

    for name, value in (
        ("--body-mass-kg", body_mass_kg),
        ("--speed-mps", speed_mps),
        ("--cadence-spm", cadence_spm),
    ):
        if value is None:
            raise click.MissingParameter(param_hint=name, param_type="option")
    assert body_mass_kg is not None and speed_mps is not None and cadence_spm is not None
    try:
        est = estimate_pfj(
            speed_mps, cadence_spm, body_mass_kg, ground_contact_ms, grade_pct, bws_pct
        )
    except ImplausibleInputError as exc:
        option = _REASON_OPTIONS.get(exc.field, "--" + exc.field.replace("_", "-"))
        raise click.BadParameter(
            f"no PFJ estimate — {exc.reason}: {exc.rule} (bounds: kneeload pfj --bounds, "
            "docs/science.md §1.5)",
            param_hint=option,
        ) from exc
    click.echo(orjson.dumps(est.to_dict()).decode())


@click.command("acwr")
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    required=True,
    help="Daily loads, columns athlete_id,date,load (.csv or .parquet; '-' reads CSV from stdin).",
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write here instead of stdout; .parquet writes Parquet, anything else CSV.",
)
@click.option(
    "--method",
    type=click.Choice(["ewma", "rac", "rau", "all"]),
    default="ewma",
    show_default=True,
    help="ewma: exponentially weighted (λ=2/(N+1)); rac: rolling average coupled; "
    "rau: rolling average uncoupled; all: every method, columns suffixed _ewma/_rac/_rau.",
)
@click.option(
    "--acute-days",
    type=click.IntRange(min=1),
    default=7,
    show_default=True,
    help="Acute window, days.",
)
@click.option(
    "--chronic-days",
    type=click.IntRange(min=2),
    default=28,
    show_default=True,
    help="Chronic window, days.",
)
@click.option(
    "--min-chronic-days",
    type=click.IntRange(min=0),
    default=None,
    help="Coverage rule: the ratio is empty (with acwr_reason) until an athlete has this many days "
    "of history. Default: --chronic-days. 0 switches the rule off.",
)
def acwr_cmd(
    input_path: Path,
    output_path: Path | None,
    method: str,
    acute_days: int,
    chronic_days: int,
    min_chronic_days: int | None,
) -> None:
    """Acute:chronic workload ratio per athlete and day (a trend, not an injury threshold).

    Days with no row inside an athlete's first..last date count as zero load; rows of
    the same day are summed. Output: athlete_id,date,load,acute,chronic,acwr,acwr_reason
    (CSV on stdout unless --output).

    Example: kneeload acwr --input daily.csv --method all --output acwr.parquet
    """
    if not acute_days < chronic_days:
        raise click.BadParameter(
            f"{acute_days} must be shorter than --chronic-days ({chronic_days})",
            param_hint="--acute-days",
        )
    from kneeload.batch.acwr_io import read_daily_loads, run_acwr, write_csv_stdout
    from kneeload.core.acwr import AcwrConfig

    config = AcwrConfig(
        acute_days=acute_days, chronic_days=chronic_days, min_chronic_days=min_chronic_days
    )
    df = read_daily_loads(input_path)
    try:
        out = run_acwr(df, method, config)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--input") from exc
    if output_path is None:
        write_csv_stdout(out)
    elif output_path.suffix.lower() in (".parquet", ".pq"):
        out.write_parquet(output_path)
    else:
        out.write_csv(output_path)


def register(group: click.Group) -> None:
    """Add ``pfj`` and ``acwr`` to the ``kneeload`` command group."""
    group.add_command(pfj_cmd)
    group.add_command(acwr_cmd)
