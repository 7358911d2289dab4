"""The internal wire format: compact, typed MessagePack frames on kneeload's own topics.

JSON + JSON Schema stay at the public edge (HTTP, MQTT, files) and in ``schemas/``; between
kneeload's own services an event is sent as a *frame*::

    0xC1 | version | MessagePack body

``0xC1`` is the one byte MessagePack never uses and no JSON document starts with, so
:func:`decode` tells a frame from the JSON that older producers left on a topic (still in
retention after an upgrade) by its first byte and reads both: nothing already on a topic is
lost or dead-lettered. The decoded value is exactly what ``orjson.loads`` of the event's JSON
would give (same keys, same ``int``/``float``/``bool``/``None`` types, absent stays absent), so
consumers see no difference; :mod:`tests.contracts.test_wire` checks that on every example of
every schema in ``schemas/`` (the single source of truth) and on generated events.

Version 1 bodies (:class:`Frame`, an array-like msgspec Struct):

* ``plain`` — any value (MessagePack map of the event): low-volume events.
* ``batch`` — a dict whose one list-of-objects field (``samples`` of ``watch_sample_batch``
  and ``sample_load``) is stored **by column** (:class:`Rows`): the other fields as a map,
  the row keys once, then one :class:`Column` per key, each in the smallest exact form —
  ``Const`` (one value for all rows: ``late``, ``gait``, ``unit_id`` ...), ``Prefixed`` (strings
  sharing a prefix: ``record_id``, ``time``), ``Scaled`` (floats with at most 3 decimals as
  integers: ``speed_mps`` 3.214 → 3214, checked to decode to the identical float) or ``Plain``.
  Rows that lack a key hold :data:`ABSENT` (a MessagePack ext) in that column.

Bytes per sample, measured on the bench's samples (100 per batch): watch.samples 276 → ~50,
load.samples 319 → ~80 (see the commit messages and ``loadtests/bench_e2e.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import repeat
from typing import Any, Final

import msgspec
import orjson

from kneeload.contracts.jsonutil import JSONError, loads

__all__ = [
    "ABSENT",
    "MAGIC",
    "VERSION",
    "WireError",
    "decode",
    "decode_checked",
    "decode_typed",
    "encode",
    "encode_json",
    "is_frame",
]

#: First byte of every frame (never used by MessagePack, never starts a JSON document).
MAGIC: Final = 0xC1
#: Body version; a consumer refuses a frame of a version it does not know (see :func:`decode`).
VERSION: Final = 1
_HEAD: Final = bytes((MAGIC, VERSION))
_EXT_ABSENT: Final = 1
#: Smallest list of objects worth storing by column.
_MIN_ROWS: Final = 2
_SCALES: Final = (1, 10, 100, 1000)
#: characters JSON must escape (so a JSON producer's output would hold a backslash)
_SPECIAL = re.compile(r'[\\"\x00-\x1f]')


class WireError(JSONError):
    """Bytes that are neither a frame of a known version nor valid JSON (a
    :class:`~kneeload.contracts.JSONError`, so consumers' existing handlers catch it)."""


class _Absent:
    """Marker of a key a row does not have (decoded from ext type 1)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()


# --------------------------------------------------------------------------- body types


class Plain(msgspec.Struct, array_like=True, tag=0):
    """Column values as they are."""

    values: list[Any]


class Const(msgspec.Struct, array_like=True, tag=1):
    """Every row holds ``value`` (same type too: ``1`` and ``True`` and ``1.0`` differ)."""

    value: Any


class Prefixed(msgspec.Struct, array_like=True, tag=2):
    """Strings: ``prefix + suffix`` per row."""

    prefix: str
    suffixes: list[str]


class Scaled(msgspec.Struct, array_like=True, tag=3):
    """Floats: ``integer / scale`` per row, exact (checked when encoding)."""

    scale: int
    ints: list[int]


Column = Plain | Const | Prefixed | Scaled


class Rows(msgspec.Struct, array_like=True):
    """A list of objects by column: ``keys`` (first-seen order) and one column per key."""

    n: int
    keys: list[str]
    columns: list[Column]
    ragged: bool  # some row lacks some key (ABSENT holes)


class Frame(msgspec.Struct, array_like=True):
    """A version-1 body: ``doc`` (the event, or the event minus ``field``) and, for a batch,
    the rows of ``doc[field]`` by column."""

    doc: Any
    field: str | None = None
    rows: Rows | None = None


def _enc_hook(obj: Any) -> Any:
    if obj is ABSENT:
        return msgspec.msgpack.Ext(_EXT_ABSENT, b"")
    raise TypeError(f"cannot encode {type(obj).__name__} on the wire")


def _ext_hook(code: int, data: memoryview) -> Any:
    if code == _EXT_ABSENT:
        return ABSENT
    raise WireError(f"unknown MessagePack ext type {code}")


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_decoder = msgspec.msgpack.Decoder(Frame, ext_hook=_ext_hook)


# --------------------------------------------------------------------------- columns


def _column(values: list[Any]) -> Column:
    """The smallest exact encoding of one column."""
    first = values[0]
    types = set(map(type, values))
    if len(types) != 1:
        return Plain(values)
    t = next(iter(types))
    if values.count(first) == len(values) and (t is not float or first == first):
        return Const(first)
    if t is str:
        prefix = _common_prefix(values)
        # a "],[" split between prefix and suffix would hide it from the sink's raw-bytes check
        if len(prefix) >= 2 and "],[" not in "\x00".join(values):
            k = len(prefix)
            return Prefixed(prefix, [v[k:] for v in values])
        return Plain(values)
    if t is float:
        head = values[:4]
        for scale in _SCALES:
            mul, div = float(scale).__mul__, scale.__rtruediv__
            try:
                if list(map(div, map(round, map(mul, head)))) != head:
                    continue
                ints = list(map(round, map(mul, values)))
            except (ValueError, OverflowError):  # NaN, ±inf
                break
            if list(map(div, ints)) == values:
                return Scaled(scale, ints)
    return Plain(values)


def _common_prefix(values: list[str]) -> str:
    lo, hi = min(values), max(values)  # the prefix of all = the prefix of these two
    for i, (a, b) in enumerate(zip(lo, hi, strict=False)):
        if a != b:
            return lo[:i]
    return lo


def _expand(col: Column, n: int) -> list[Any]:
    if type(col) is Plain:
        return col.values
    if type(col) is Const:
        return [col.value] * n
    if type(col) is Prefixed:
        return list(map(col.prefix.__add__, col.suffixes))
    assert type(col) is Scaled
    return list(map(col.scale.__rtruediv__, col.ints))


def _rows_of(items: list[dict[str, Any]]) -> Rows:
    keys = list(items[0])
    uniform = True
    for it in items:
        if len(it) != len(keys) or list(it) != keys:
            uniform = False
            break
    if uniform:
        cols = [list(c) for c in zip(*(it.values() for it in items), strict=True)]
    else:
        seen: dict[str, None] = {}
        for it in items:
            seen.update(dict.fromkeys(it))
        keys = list(seen)
        cols = [[it.get(k, ABSENT) for it in items] for k in keys]
    return Rows(len(items), keys, [_column(c) for c in cols], not uniform)


def _items_of(rows: Rows) -> list[dict[str, Any]]:
    n = rows.n
    cols = [_expand(c, n) for c in rows.columns]
    if len(cols) != len(rows.keys) or any(len(c) != n for c in cols):
        raise WireError("malformed frame: columns do not match the row count or keys")
    keys = rows.keys
    if not rows.ragged:  # all C-level iteration (0.43 against 0.62 µs per sample, measured)
        return list(map(dict, map(zip, repeat(keys), zip(*cols, strict=True))))
    return [
        {k: v for k, v in zip(keys, r, strict=True) if v is not ABSENT}
        for r in zip(*cols, strict=True)
    ]


def _batch_field(event: dict[str, Any]) -> str | None:
    """The field stored by column: a list of at least 2 objects (``samples``)."""
    v = event.get("samples")
    if type(v) is list and len(v) >= _MIN_ROWS and all(type(x) is dict for x in v):
        return "samples"
    return None


# --------------------------------------------------------------------------- API


def encode(event: Any) -> bytes:
    """The frame of ``event`` (a JSON-compatible value: dicts, lists, str, int, float, bool,
    None). A dict with a ``samples`` list of objects is stored by column."""
    if type(event) is dict:
        field = _batch_field(event)
        if field is not None:
            doc = {k: v for k, v in event.items() if k != field}
            rows = _rows_of(event[field])
            try:
                return _HEAD + _encoder.encode(Frame(doc, field, rows))
            except OverflowError:  # a Scaled column beyond 64-bit integers: send it as floats
                rows.columns = [
                    Plain(_expand(c, rows.n)) if type(c) is Scaled else c for c in rows.columns
                ]
                return _HEAD + _encoder.encode(Frame(doc, field, rows))
    return _HEAD + _encoder.encode(Frame(event))


def encode_json(event: Any) -> bytes:
    """JSON bytes of ``event`` (orjson): what producers sent before frames, kept for the
    edge (dead letters) and for tests of the upgrade path."""
    return orjson.dumps(event)


def is_frame(data: bytes | bytearray | memoryview | None) -> bool:
    """True when ``data`` is a frame (first byte :data:`MAGIC`), not JSON."""
    return bool(data) and data[0] == MAGIC  # type: ignore[index]


def _read(data: bytes | bytearray | memoryview) -> Frame:
    if len(data) < 2 or data[1] != VERSION:
        v = data[1] if len(data) >= 2 else None
        raise WireError(f"unknown wire format version {v} (this consumer reads {VERSION})")
    try:
        frame = _decoder.decode(memoryview(data)[2:])
    except msgspec.DecodeError as exc:  # includes ValidationError
        raise WireError(f"malformed frame: {exc}") from exc
    if frame.rows is not None and (type(frame.doc) is not dict or frame.field is None):
        raise WireError("malformed frame: a batch frame without its envelope")
    return frame


def _decode_frame(data: bytes | bytearray | memoryview) -> tuple[Frame, Any]:
    frame = _read(data)
    doc = frame.doc
    if frame.rows is not None:
        doc[frame.field] = _items_of(frame.rows)
    return frame, doc


def decode(data: bytes | bytearray | memoryview) -> Any:
    """The event of a frame, or of JSON bytes (a message from before the upgrade).
    Raises :class:`WireError` for a bad frame (an unknown version too) and
    :class:`~kneeload.contracts.JSONError` for bad JSON (WireError is one too)."""
    if data and data[0] == MAGIC:
        return _decode_frame(data)[1]
    if data is None:
        raise WireError("no value (neither a frame nor JSON)")
    return loads(data)  # JSONError (NonFiniteNumberError for NaN/Infinity) when invalid


def decode_checked(data: bytes | bytearray | memoryview) -> tuple[Any, bool]:
    """:func:`decode` and whether some string of the event holds a character JSON escapes
    (quote, backslash, control): for JSON, a backslash in the bytes; for a frame, checked
    on the strings (by column for a batch). The sink sends such events the slow, safe way."""
    if not (data and data[0] == MAGIC):
        return decode(data), b"\\" in data
    frame = _read(data)
    special = _special(frame)
    doc = frame.doc
    if frame.rows is not None:
        doc[frame.field] = _items_of(frame.rows)
    return doc, special


def _special(frame: Frame) -> bool:
    """Some string of the frame's event (keys too) holds a character JSON escapes."""
    if frame.rows is None:
        return _has_special(frame.doc)
    special = _has_special(frame.doc) or _has_special(frame.rows.keys)
    if not special:
        for col in frame.rows.columns:
            if type(col) is Prefixed:
                text = col.prefix + "".join(col.suffixes)
                special = bool(_SPECIAL.search(text))
            elif type(col) is Const:
                special = _has_special(col.value)
            elif type(col) is Plain:
                strs = [v for v in col.values if type(v) is str]
                special = bool(_SPECIAL.search("".join(strs))) or any(
                    type(v) in (dict, list) and _has_special(v) for v in col.values
                )
            if special:
                break
    return special


_twins: dict[type[Any], tuple[Any, list[tuple[str, bool, Any]]]] = {}


def _twin(row_type: type[Any]) -> tuple[Any, list[tuple[str, bool, Any]]]:
    """``list[<row_type read from an array>]`` (built from tuples in C; msgspec caches its
    converter per type object, so the type is made once) and the row fields (name, required,
    default)."""
    got = _twins.get(row_type)
    if got is None:
        twin = msgspec.defstruct(
            row_type.__name__ + "FromColumns", [], bases=(row_type,), array_like=True
        )
        fields = [
            (f.encode_name, f.required or f.default_factory is not msgspec.NODEFAULT, f.default)
            for f in msgspec.structs.fields(row_type)
        ]
        got = _twins[row_type] = (list.__class_getitem__(twin), fields)
    return got


def decode_typed(
    data: bytes | bytearray | memoryview, batch_type: type[Any], row_type: type[Any]
) -> tuple[Any, bool] | None:
    """A batch frame straight into msgspec types, without the dicts: ``(batch, special)``
    with ``batch`` a ``batch_type`` whose rows are ``row_type`` (a subclass: same fields,
    same order), or None for ``batch`` when msgspec refuses a value's type; ``special`` as
    in :func:`decode_checked`. Returns None when this path does not apply (JSON, a frame
    without rows, rows lacking keys, a required row field absent): use
    :func:`decode_checked`. Keys the row type does not have are ignored."""
    if not (data and data[0] == MAGIC):
        return None
    frame = _read(data)
    rows = frame.rows
    if rows is None or rows.ragged or frame.field is None:
        return None
    n = rows.n
    if len(rows.columns) != len(rows.keys):
        raise WireError("malformed frame: columns do not match the keys")
    index = dict(zip(rows.keys, rows.columns, strict=True))
    twin_list, fields = _twin(row_type)
    cols: list[list[Any]] = []
    for name, required, default in fields:
        col = index.get(name)
        if col is not None:
            values = _expand(col, n)
            if len(values) != n:
                raise WireError("malformed frame: a column does not match the row count")
            cols.append(values)
        elif required:
            return None
        else:
            cols.append([default] * n)
    special = _special(frame)
    env = dict(frame.doc)
    env[frame.field] = []
    try:
        batch = msgspec.convert(env, batch_type)
        items = msgspec.convert(list(zip(*cols, strict=True)), twin_list)
        setattr(batch, frame.field, items)
    except msgspec.ValidationError:
        return None, special
    return batch, special


def _has_special(value: Any) -> bool:
    """Any string (key or value) in ``value`` holding a character JSON escapes."""
    return b"\\" in orjson.dumps(value, default=_absent_null)


def _absent_null(obj: Any) -> Any:
    if obj is ABSENT:
        return None
    raise TypeError


#: decoder of a topic's message value: frames and JSON alike
Decode = Callable[[bytes], Any]
