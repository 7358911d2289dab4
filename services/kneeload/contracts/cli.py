"""``kneeload contracts``: list schemas, check JSON files, benchmark the validators."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("contracts")
def contracts_group() -> None:
    """Event contracts (JSON Schemas under schemas/)."""


@contracts_group.command("list")
def list_cmd() -> None:
    """List the schemas and the topics that carry them."""
    from kneeload.contracts import schema_names, schemas_dir
    from kneeload.topics import catalogue

    carriers: dict[str, list[str]] = {}
    for t in catalogue():
        carriers.setdefault(t.schema, []).append(t.full_name)
    click.echo(f"schemas in {schemas_dir()}:")
    for name in schema_names():
        click.echo(f"  {name:<22} {', '.join(carriers.get(name, [])) or '-'}")


@contracts_group.command("check")
@click.argument("schema")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def check_cmd(schema: str, files: tuple[Path, ...]) -> None:
    """Validate JSON FILES against SCHEMA (a name from `kneeload contracts list`, or
    watch_sample_batch#sample for one sample). Exit status 1 if any is invalid."""
    import orjson

    from kneeload.contracts import ContractError, SchemaNotFoundError, get_contract

    try:
        contract = get_contract(schema)
    except SchemaNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    bad = 0
    for path in files:
        try:
            contract.decode(path.read_bytes())
        except ContractError as exc:
            bad += 1
            click.echo(f"INVALID {path}")
            click.echo(orjson.dumps(exc.as_dicts(), option=orjson.OPT_INDENT_2).decode())
        else:
            click.echo(f"valid   {path}")
    if bad:
        raise SystemExit(1)


@contracts_group.command("bench")
@click.option("--samples", default=100, show_default=True, help="Samples per batch.")
@click.option("--rounds", default=200, show_default=True, help="Batches validated per validator.")
def bench_cmd(samples: int, rounds: int) -> None:
    """Rough µs per sample: fast vs reference validator on a valid watch batch."""
    from kneeload.contracts.bench import run

    for line in run(samples=samples, rounds=rounds):
        click.echo(line)


def register(group: click.Group) -> None:
    group.add_command(contracts_group)
