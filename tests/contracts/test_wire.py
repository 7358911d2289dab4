"""The internal wire format (``kneeload.contracts.wire``) against ``schemas/``: every example
of every schema, and generated events, decode to exactly what went in (keys, absent keys,
``int``/``float``/``bool``/``None`` types); JSON already on a topic still decodes."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kneeload import contracts
from kneeload.contracts import wire

from .conftest import example_files, read_json

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "loadtests"))
import baseline_raw as br


def same(a: Any, b: Any) -> bool:
    """Equal with identical types all the way down (``1 != 1.0 != True`` here)."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is float and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def roundtrip(event: Any) -> Any:
    data = wire.encode(event)
    assert data[0] == wire.MAGIC and data[1] == wire.VERSION
    return wire.decode(data)


@pytest.mark.parametrize(
    ("name", "path"), example_files(), ids=[f"{n}/{p.name}" for n, p in example_files()]
)
def test_every_schema_example_round_trips(name: str, path: Path) -> None:
    event = read_json(path)
    back = roundtrip(event)
    assert same(back, event)
    assert contracts.is_valid(name, back) == contracts.is_valid(name, event)


def _multi(event: dict[str, Any], n: int = 5) -> dict[str, Any]:
    """``event`` with ``n`` samples made from its first (distinct ids and times)."""
    s0 = event["samples"][0]
    out = []
    for i in range(n):
        s = dict(s0)
        s["record_id"] = f"{s0['record_id']}-{i}"
        out.append(s)
    return {**event, "samples": out}


@pytest.mark.parametrize("name", ["watch_sample_batch", "sample_load"])
def test_batches_round_trip_by_column(name: str) -> None:
    """The per-sample topics' examples as many-sample batches (stored by column), also with
    rows lacking keys other rows have (ragged) and mixed int/float columns."""
    examples = [
        read_json(p) for n, p in example_files() if n == name and p.name.startswith("valid-")
    ]
    assert examples
    samples = [s for e in examples for s in e["samples"]]
    event = {**examples[0], "samples": samples}
    for ev in (_multi(examples[0]), event, {**event, "samples": samples * 3}):
        back = roundtrip(ev)
        assert same(back, ev)
        assert contracts.is_valid(name, back) == contracts.is_valid(name, ev)
    ragged = _multi(examples[0])
    ragged["samples"][1] = {k: v for k, v in ragged["samples"][1].items() if k != "time"}
    ragged["samples"][2]["extra"] = {"nested": [1, 2.5, None, "x"]}
    ragged["samples"][3]["cadence_spm"] = 170  # int among floats
    assert same(roundtrip(ragged), ragged)


def test_bench_batch_is_compact_and_exact() -> None:
    import random

    rng = random.Random(3)
    ev = br.gateway_event(
        "ath00001", "w00001", br.make_samples("w00001", 1_764_835_200_000, 100, rng), 1
    )
    data = wire.encode(ev)
    assert same(wire.decode(data), ev)
    assert len(data) / 100 < 60  # JSON: ~272 B per sample
    assert len(orjson.dumps(ev)) / len(data) > 4


def test_json_from_before_the_upgrade_still_decodes() -> None:
    """A topic may hold JSON messages produced before frames: read the same."""
    for name, path in example_files():
        event = read_json(path)
        assert same(wire.decode(orjson.dumps(event)), event), (name, path)
    assert wire.decode_checked(b'{"a":"x\\"y"}') == ({"a": 'x"y'}, True)


def test_bad_input_raises_a_json_error() -> None:
    for bad in (b"", b"\xc1", b"\xc1\x02\x90", b"\xc1\x01\xff\xff", b"{nope", b"\x00\x01"):
        with pytest.raises(contracts.JSONError):
            wire.decode(bad)
    with pytest.raises(wire.WireError, match="version 2"):
        wire.decode(b"\xc1\x02" + msgspec.msgpack.encode([{}]))
    # a frame whose columns do not match its row count
    body = wire.Frame({"a": 1}, "samples", wire.Rows(3, ["x"], [wire.Plain([1, 2])], False))
    with pytest.raises(wire.WireError):
        wire.decode(bytes((wire.MAGIC, wire.VERSION)) + msgspec.msgpack.encode(body))


def test_special_characters_are_flagged() -> None:
    """``decode_checked`` says when a string holds what JSON escapes (the sink's slow path)."""
    base = read_json(next(p for n, p in example_files() if n == "watch_sample_batch"))
    ev = _multi(base)
    assert wire.decode_checked(wire.encode(ev))[1] is False
    for bad in ('a"b', "a\\b", "a\nb", "a\x01"):
        for where in ("envelope", "column", "const"):
            e = _multi(base)
            if where == "envelope":
                e["sub_sport"] = bad
            elif where == "column":
                e["samples"][2]["sources"] = "power_w=" + bad
            else:
                for s in e["samples"]:
                    s["sources"] = "power_w=" + bad
            doc, special = wire.decode_checked(wire.encode(e))
            assert special and same(doc, e), (bad, where)
    # a row separator the sink looks for in the raw bytes is never split
    e = _multi(base)
    for i, s in enumerate(e["samples"]):
        s["sources"] = f"power_w=a],[b{i}"
    assert b"],[" in wire.encode(e)


# --------------------------------------------------------------------------- generated


def _value(prop: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of one sample property per its schema: in range, any of its JSON types."""
    types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    out: list[st.SearchStrategy[Any]] = []
    lo = prop.get("minimum", prop.get("exclusiveMinimum", -1e6))
    hi = prop.get("maximum", prop.get("exclusiveMaximum", 1e6))
    for t in types:
        if t == "null":
            out.append(st.none())
        elif t == "integer":
            out.append(st.integers(int(lo), int(hi)))
        elif t == "number":
            decimals = st.integers(0, 4).flatmap(
                lambda d: st.floats(lo, hi).map(lambda x: round(x, d) if d < 4 else x)
            )
            out.append(decimals | st.integers(math.ceil(lo), int(hi)))
        elif t == "boolean":
            out.append(st.booleans())
        elif t == "string":
            if "enum" in prop:
                out.append(st.sampled_from(prop["enum"]))
            else:
                out.append(st.text(max_size=12) | st.sampled_from(["2026-12-04T08:00:00.000Z"]))
    return st.one_of(out)


def _sample_strategy(name: str, ref: str) -> st.SearchStrategy[dict[str, Any]]:
    sch = contracts.load_schema(name)["$defs"][ref]
    req = set(sch["required"])
    fields = {
        k: (_value(p) if k in req else st.one_of(st.just(wire.ABSENT), _value(p)))
        for k, p in sch["properties"].items()
    }
    return st.fixed_dictionaries(fields).map(
        lambda d: {k: v for k, v in d.items() if v is not wire.ABSENT}
    )


@pytest.mark.parametrize(
    ("name", "ref"), [("watch_sample_batch", "sample"), ("sample_load", "load_sample")]
)
def test_generated_batches_round_trip(name: str, ref: str) -> None:
    base = read_json(
        next(p for n, p in example_files() if n == name and p.name.startswith("valid"))
    )
    strategy = st.lists(_sample_strategy(name, ref), min_size=1, max_size=30)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(samples=strategy, constant=st.booleans())
    def check(samples: list[dict[str, Any]], constant: bool) -> None:
        if constant:  # one repeated sample: every column constant
            samples = [samples[0]] * len(samples)
        ev = {**base, "samples": samples}
        assert same(roundtrip(ev), ev)

    check()


class _Row(msgspec.Struct):
    record_id: str
    cadence_spm: int | float
    speed_mps: int | float
    heart_rate_bpm: int | None = None
    missing: str | None = "default"


class _Batch(msgspec.Struct):
    batch_id: str
    samples: list[_Row]


def test_decode_typed_builds_the_same_structs_as_converting_the_dicts() -> None:
    """The sink's path: a batch frame's columns straight into msgspec rows (a subclass of the
    row type, same fields), equal to converting the decoded dicts; None where it does not apply
    (JSON, ragged rows, a required field absent) and ``(None, special)`` on a type refusal."""
    base = read_json(next(p for n, p in example_files() if n == "watch_sample_batch"))
    ev = _multi(base, 7)
    got = wire.decode_typed(wire.encode(ev), _Batch, _Row)
    assert got is not None
    batch, special = got
    assert not special and isinstance(batch.samples[0], _Row)
    assert batch.batch_id == ev["batch_id"]
    assert [msgspec.structs.astuple(r) for r in batch.samples] == [
        msgspec.structs.astuple(r) for r in msgspec.convert(ev, _Batch).samples
    ]
    assert wire.decode_typed(orjson.dumps(ev), _Batch, _Row) is None
    ragged = _multi(base, 3)
    del ragged["samples"][1]["speed_mps"]
    assert wire.decode_typed(wire.encode(ragged), _Batch, _Row) is None
    no_speed = {
        **ev,
        "samples": [{k: v for k, v in s.items() if k != "speed_mps"} for s in ev["samples"]],
    }
    assert wire.decode_typed(wire.encode(no_speed), _Batch, _Row) is None
    wrong = {**ev, "samples": [{**s, "cadence_spm": "fast"} for s in ev["samples"]]}
    assert wire.decode_typed(wire.encode(wrong), _Batch, _Row) == (None, False)
    quoted = {**ev, "samples": [{**s, "record_id": 'a"b'} for s in ev["samples"]]}
    got = wire.decode_typed(wire.encode(quoted), _Batch, _Row)
    assert got is not None and got[1] is True
