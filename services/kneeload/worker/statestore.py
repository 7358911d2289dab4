"""The ``athletes`` table split hot/cold: each athlete's state as a few records, written
only when they change, committed atomically by a small root record written last.

Why: the whole :class:`~kneeload.worker.state.AthleteState` (≈14 KB for an athlete with a
month of history) went to the changelog once per take, i.e. per input batch of a live
athlete — ~1.8 KB per sample at 10-sample batches. Most of it (closed sessions, days,
the ACWR tracker's history, pain reports, correlations, ceiling history) changes a few
times a day.

Layout (keys in the ``athletes`` table; every key of an athlete lands in the athlete's
changelog partition, ``owner_of`` = the text before the first ``|``):

* ``<aid>`` — the **root**: ``0xC1`` (a byte MessagePack never uses, so it is never the
  first byte of an older worker's MessagePack map nor of its JSON), the 8-byte big-endian
  version *v*, then the *hot* state: :class:`AthleteState` without its parts (the
  watermark, processing times, day totals, dirty dates, cooldowns, the ACWR tracker's
  current state).
* ``<aid>|@<part>|<slot>`` — a **part**, slot 0 or 1: the 8-byte version it was written at,
  then its MessagePack. Parts (:func:`split_state`): ``i`` (the index: every other part's
  name), ``s/<session id>`` (a closed session; an open one without its batch ids and
  minutes, which are in ``c/<session id>/<k>`` (its counted batch ids,
  :data:`CHUNK_IDS_PER_PART` a part) and ``m/<session id>/<k>`` (its minute sums and
  revisions, :data:`MINUTE_PART_MS` a part)), ``d/<date>`` (one day), ``acwr`` (the
  tracker's history), ``pain``, ``bws``, ``corr``, ``spike``, ``ep`` (alert episodes).
  A live session so rewrites its own small part, the last of its batch-id parts and the
  last of its minute parts per take.

Atomicity: a take's records go to one changelog partition, in order (the producer keeps
a partition's order), so a crash keeps a prefix of them. A changed part is written to the
slot its current value is *not* in, then the root with the new version last; a reader
takes, for each part the index names, the slot with the largest version ≤ the root's.
A crash before the root leaves the old root and every part it refers to intact (a slot
written after it has a larger version and is ignored, and tombstoned or overwritten by
the next write before a root could make it visible). Names that left the index are
tombstoned after the root. So the restored state is always one that a take ended with:
the state, not the chunk store, still decides whether a replayed batch was counted.

Upgrading: a root that does not start with ``0xC1`` is a whole state of an older worker
(MessagePack map or JSON, :func:`~kneeload.worker.state.decode_state`); it loads as it is
and the next write stores it split.
"""

from __future__ import annotations

import contextlib
import functools
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from kafka.partitioner.default import murmur2

from kneeload.core.session import MinuteSums
from kneeload.worker.state import (
    AthleteState,
    BwsEntry,
    Day,
    PainEntry,
    Session,
    SessionAcc,
    SpikeEntry,
    decode_state,
)

__all__ = [
    "ROOT_MARK",
    "MinutePart",
    "OpenAcc",
    "OpenSession",
    "PartedStates",
    "join_state",
    "part_key",
    "records_of",
    "split_state",
    "state_records",
]

#: first byte of a split root (0xC1: never used by MessagePack; JSON starts with ``{``)
ROOT_MARK = b"\xc1"
_V = struct.Struct(">Q")
INDEX = "i"

_ENC = msgspec.msgpack.Encoder()
_HOT_MAP = msgspec.msgpack.Decoder(AthleteState)


class HotState(AthleteState, array_like=True, gc=False):
    """The root's hot state: an :class:`AthleteState` without its parts, as an array (its
    field names would be a fifth of the bytes a take writes)."""


_HOT = msgspec.msgpack.Decoder(HotState)
_NAMES = msgspec.msgpack.Decoder(list[str])
_IDS = msgspec.msgpack.Decoder(list[str])
_SESSION = msgspec.msgpack.Decoder(Session)


class OpenAcc(SessionAcc, array_like=True, gc=False):
    """An open session's running sums as an array (as :class:`HotState`: no field names in
    a part written every take)."""


class OpenSession(Session, array_like=True, gc=False):
    """An open session's own part (``s/<sid>``) as an array, without its batch ids and
    minutes (their own parts); a closed session's part is a :class:`Session` map."""

    acc: OpenAcc | None = None


_OPEN_SESSION = msgspec.msgpack.Decoder(OpenSession)


def _decode_session(raw: bytes) -> Session:
    """An ``s/`` part: a closed session (a map), or an open one's array
    (:class:`OpenSession`)."""
    if raw[:1] in _MAP_FIRST:
        return _SESSION.decode(raw)
    o = _OPEN_SESSION.decode(raw)
    s = Session(*msgspec.structs.astuple(o))
    if o.acc is not None:
        s.acc = SessionAcc(*msgspec.structs.astuple(o.acc))
    return s


_DAY = msgspec.msgpack.Decoder(Day)
_DECODERS: dict[str, msgspec.msgpack.Decoder[Any]] = {
    "acwr": msgspec.msgpack.Decoder(dict[str, Any]),
    "pain": msgspec.msgpack.Decoder(list[PainEntry]),
    "bws": msgspec.msgpack.Decoder(list[BwsEntry]),
    "corr": msgspec.msgpack.Decoder(dict[str, dict[str, Any]]),
    "spike": msgspec.msgpack.Decoder(dict[str, SpikeEntry]),
    "ep": msgspec.msgpack.Decoder(dict[str, Any]),
}
#: first bytes of a MessagePack map (fixmap, map 16, map 32)
_MAP_FIRST = frozenset([bytes([b]) for b in range(0x80, 0x90)] + [b"\xde", b"\xdf"])
_FIELDS = {"pain": "pain", "bws": "bws", "corr": "corr", "spike": "spike_hist", "ep": "episodes"}
#: the ACWR tracker's current state (split once more); ``loads_last``: the first split's key
#: of the last daily load (read still)
_ACWR_HOT = "state"
_ACWR_TAIL = "loads_last"


#: batch ids per part of a session's list of counted batches (``c/<sid>/<k>``): a live
#: session appends to its last part only
CHUNK_IDS_PER_PART = 16
#: minutes per part of a session's minute sums and revisions (``m/<sid>/<k>``, k = the
#: minute's start // this span): a live session changes its last part only
MINUTE_PART_MS = 5 * 60_000


class MinutePart(msgspec.Struct, array_like=True, gc=False):
    """A session's minute sums and published revisions of one :data:`MINUTE_PART_MS` span."""

    minutes: dict[str, MinuteSums] = {}
    rev: dict[str, int] = {}


_MINUTES = msgspec.msgpack.Decoder(MinutePart)


def _acwr_split(acwr: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ACWR tracker's dict (:meth:`kneeload.core.acwr.AcwrTracker.to_dict`) as (hot,
    cold). A new load of the current day changes the current state's numbers and the last
    element of each of its series (the daily loads, the state's rolling rings); the rest
    (earlier days, the anchor, the state before the last day, the configuration) changes
    once a day. So: numbers hot, nested dicts cold (the current state's split the same
    way), each list's last element hot and the rest cold."""
    hot: dict[str, Any] = {}
    cold: dict[str, Any] = {}
    for k, v in acwr.items():
        if k == _ACWR_HOT and isinstance(v, dict):
            hot[k], cold[k] = _acwr_split(v)
        elif isinstance(v, list) and v:
            cold[k], hot[k] = v[:-1], v[-1:]
        elif isinstance(v, dict):
            cold[k] = v
        else:
            hot[k], cold[k] = v, None  # None: the key's place (the dict's order kept)
    return hot, cold


def _acwr_join(hot: dict[str, Any], cold: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`_acwr_split` (also of the first split's: the state whole in the
    hot part, the last daily load under ``loads_last``)."""
    hot = dict(hot)
    if _ACWR_TAIL in hot:
        hot["loads"] = hot.pop(_ACWR_TAIL)
    out: dict[str, Any] = {}
    for k, v in cold.items():
        if k not in hot:
            out[k] = v
            continue
        h = hot.pop(k)
        if isinstance(v, list) and isinstance(h, list):
            out[k] = v + h
        elif isinstance(v, dict) and isinstance(h, dict):
            out[k] = _acwr_join(h, v)
        else:
            out[k] = h
    out.update(hot)
    return out


def _session_parts(s: Session, parts: dict[str, bytes]) -> None:
    """A closed session as one part (it changes only with late data); an open one as its
    small part, its batch ids and its minutes in parts of their own."""
    sid = s.sid
    acc = s.acc
    if s.status != "open":
        parts["s/" + sid] = _ENC.encode(s)
        return
    base = OpenSession(*msgspec.structs.astuple(s))
    base.chunks, base.minute_rev = [], {}
    if acc is not None:
        base.acc = OpenAcc(*msgspec.structs.astuple(acc))
        base.acc.minutes = {}
    parts["s/" + sid] = _ENC.encode(base)
    ids = s.chunks
    for k in range(0, len(ids), CHUNK_IDS_PER_PART):
        parts[f"c/{sid}/{k // CHUNK_IDS_PER_PART}"] = _ENC.encode(ids[k : k + CHUNK_IDS_PER_PART])
    blocks: dict[int, MinutePart] = {}
    for mk, m in (acc.minutes if acc is not None else {}).items():
        blocks.setdefault(_block(mk), MinutePart({}, {})).minutes[mk] = m
    for mk, r in s.minute_rev.items():
        blocks.setdefault(_block(mk), MinutePart({}, {})).rev[mk] = r
    for b in sorted(blocks):
        parts[f"m/{sid}/{b}"] = _ENC.encode(blocks[b])


@functools.lru_cache(maxsize=8192)
def _block(minute_key: str) -> int:
    try:
        return int(minute_key) // MINUTE_PART_MS
    except ValueError:  # not epoch ms text: all such minutes in one part
        return -1


def split_state(st: AthleteState) -> tuple[bytes, dict[str, bytes]]:
    """The hot state's MessagePack and each part's (name → MessagePack), index included."""
    acwr_hot, acwr_cold = _acwr_split(st.acwr)
    hot = HotState(*msgspec.structs.astuple(st))
    hot.sessions, hot.days, hot.acwr, hot.bws, hot.pain = {}, {}, acwr_hot, [], []
    hot.corr, hot.spike_hist, hot.episodes = {}, {}, {}
    parts: dict[str, bytes] = {}
    for s in st.sessions.values():
        _session_parts(s, parts)
    for d, day in st.days.items():
        parts["d/" + d] = _ENC.encode(day)
    if acwr_cold:
        parts["acwr"] = _ENC.encode(acwr_cold)
    if st.pain:
        parts["pain"] = _ENC.encode(st.pain)
    if st.bws:
        parts["bws"] = _ENC.encode(st.bws)
    if st.corr:
        parts["corr"] = _ENC.encode(st.corr)
    if st.spike_hist:
        parts["spike"] = _ENC.encode(st.spike_hist)
    if st.episodes:
        parts["ep"] = _ENC.encode(st.episodes)
    parts[INDEX] = _ENC.encode(list(parts))
    return _ENC.encode(hot), parts


def join_state(hot: bytes, parts: dict[str, bytes]) -> AthleteState:
    """Inverse of :func:`split_state` (sessions, days and a session's batch ids in the
    index's order; minute sums in time order — nothing depends on their order)."""
    if hot[:1] in _MAP_FIRST:  # the first split's root: the hot state as a map
        st = _HOT_MAP.decode(hot)
    else:
        st = AthleteState(*msgspec.structs.astuple(_HOT.decode(hot)))
    names = _NAMES.decode(parts[INDEX]) if INDEX in parts else list(parts)
    sessions: dict[str, Session] = {}
    ids: dict[str, list[tuple[int, list[str]]]] = {}
    minutes: dict[str, list[tuple[int, MinutePart]]] = {}
    acwr_cold: dict[str, Any] = {}
    for name in names:
        raw = parts.get(name)
        if raw is None or name == INDEX:
            continue
        kind, _, sub = name.partition("/")
        if kind == "s":
            sessions[sub] = _decode_session(raw)
        elif kind in ("c", "m"):
            sid, _, k = sub.rpartition("/")
            if kind == "c":
                ids.setdefault(sid, []).append((int(k), _IDS.decode(raw)))
            else:
                minutes.setdefault(sid, []).append((int(k), _MINUTES.decode(raw)))
        elif kind == "d":
            st.days[sub] = _DAY.decode(raw)
        elif kind == "acwr":
            acwr_cold = _DECODERS[kind].decode(raw)
        elif kind in _DECODERS:
            setattr(st, _FIELDS[kind], _DECODERS[kind].decode(raw))
    for sid in set(ids) | set(minutes):  # an open session (the first split: every one)
        s = sessions.get(sid)
        if s is None:
            continue
        s.chunks = [b for _, seg in sorted(ids.get(sid, [])) for b in seg]
        blocks = [mp for _, mp in sorted(minutes.get(sid, []), key=lambda x: x[0])]
        if s.acc is not None:
            s.acc.minutes = {k: v for mp in blocks for k, v in mp.minutes.items()}
        s.minute_rev = {k: v for mp in blocks for k, v in mp.rev.items()}
    st.sessions = sessions
    if acwr_cold:
        st.acwr = _acwr_join(st.acwr, acwr_cold)
    return st


def part_key(aid: str, name: str, slot: int) -> str:
    """Table key of slot ``slot`` of part ``name`` of athlete ``aid``."""
    return f"{aid}|@{name}|{slot}"


def _root(v: int, hot: bytes) -> bytes:
    return ROOT_MARK + _V.pack(v) + hot


def state_records(aid: str, st: AthleteState) -> list[tuple[str, bytes]]:
    """An athlete's records as a fresh table holds them (version 1, slot 0, the root
    last): what ``kneeload rebuild-state`` writes."""
    hot, parts = split_state(st)
    out = [(part_key(aid, n, 0), _V.pack(1) + raw) for n, raw in parts.items()]
    out.append((aid, _root(1, hot)))
    return out


@dataclass(slots=True)
class _Part:
    slot: int
    version: int
    #: the record's value as the table holds it (the same object: no second copy in
    #: memory), version then MessagePack; compared with the next to skip a write
    value: bytes


@dataclass(slots=True)
class _Meta:
    """What the store knows of an athlete's records (its version and parts' slots)."""

    root: bytes | None  # the root object the table held when this was read or written
    state: AthleteState
    v: int = 0  # the largest version seen (the root's, or a crash's orphan slot above it)
    parts: dict[str, _Part] = field(default_factory=dict)
    stale: set[str] = field(default_factory=set)  # keys of orphan slots (version > root)


class PartedStates:
    """The ``athletes`` Faust table (bytes → bytes) seen as decoded :class:`AthleteState`
    values, stored split (module doc). The interface of the worker's ``CachedTable``
    that the athlete agent uses: :meth:`load`, :meth:`keep`, :meth:`flush`,
    :meth:`forget`, :meth:`keys_in`."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.cache: dict[str, _Meta] = {}

    # ------------------------------------------------------------------ reading
    def _get(self, key: str) -> bytes | None:
        raw: bytes | None = self.table.get(key.encode())
        return raw

    def load(self, aid: str) -> AthleteState | None:
        root = self._get(aid)
        hit = self.cache.get(aid)
        if hit is not None and hit.root is root:  # also a value kept but not flushed yet
            return hit.state
        if root is None:
            self.cache.pop(aid, None)
            return None
        meta = self._read(aid, root)
        self.cache[aid] = meta
        return meta.state

    def _read(self, aid: str, root: bytes) -> _Meta:
        if root[:1] != ROOT_MARK:  # an older worker's whole state: split at the next write
            return _Meta(root, decode_state(root))
        (v,) = _V.unpack_from(root, 1)
        meta = _Meta(root, AthleteState(aid), v)
        idx = self._slot(meta, aid, INDEX)
        names = _NAMES.decode(idx) if idx is not None else []
        parts: dict[str, bytes] = {} if idx is None else {INDEX: idx}
        for n in names:
            raw = self._slot(meta, aid, n)
            if raw is not None:
                parts[n] = raw
        meta.state = join_state(root[1 + _V.size :], parts)
        return meta

    def _slot(self, meta: _Meta, aid: str, name: str) -> bytes | None:
        """The current value of a part (the slot of the largest version ≤ the root's)."""
        best: _Part | None = None
        for slot in (0, 1):
            raw = self._get(part_key(aid, name, slot))
            if raw is None or len(raw) < _V.size:
                continue
            (ver,) = _V.unpack_from(raw)
            if ver > meta.v:  # written by a take whose root never landed
                meta.stale.add(part_key(aid, name, slot))
                continue
            if best is None or ver > best.version:
                best = _Part(slot, ver, raw)
        if best is None:
            return None
        meta.parts[name] = best
        return best.value[_V.size :]

    # ------------------------------------------------------------------ writing
    def keep(self, aid: str, st: AthleteState) -> None:
        """Hold a (new or changed) state in memory until :meth:`flush` writes it."""
        self._meta(aid, st).state = st

    def flush(self, aid: str) -> None:
        """Write what changed of ``aid``'s in-memory state (parts, then the root)."""
        meta = self.cache.get(aid)
        if meta is not None:
            self.store(aid, meta.state)

    def _meta(self, aid: str, st: AthleteState) -> _Meta:
        """What the store knows of ``aid``'s records, read again when the table changed
        under it (recovery, a rebalance): which slot holds each part must be known
        before a slot is overwritten."""
        root = self._get(aid)
        meta = self.cache.get(aid)
        if meta is None or meta.root is not root:
            meta = self._read(aid, root) if root is not None else _Meta(None, st)
            self.cache[aid] = meta
        return meta

    def store(self, aid: str, st: AthleteState) -> None:
        """Write the parts of ``st`` that changed (each to its other slot), then the root
        with the next version, then tombstones for parts it no longer has."""
        meta = self._meta(aid, st)
        hot, parts = split_state(st)
        v = meta.v + 1  # orphans above the old root are tombstoned before the new one
        tab = self.table
        for name, raw in parts.items():
            cur = meta.parts.get(name)
            if cur is not None and len(cur.value) == len(raw) + _V.size and cur.value.endswith(raw):
                continue
            slot = 0 if cur is None else 1 - cur.slot
            key = part_key(aid, name, slot)
            value = _V.pack(v) + raw
            tab[key.encode()] = value
            if meta.stale:
                meta.stale.discard(key)
            if cur is None:  # a new name: a leftover of an older life of it must not count
                other = part_key(aid, name, 1 - slot)
                self._tombstone(other)
                meta.stale.discard(other)
            meta.parts[name] = _Part(slot, v, value)
        if meta.stale:
            for key in sorted(meta.stale):  # orphans the new root would make visible
                self._tombstone(key)
            meta.stale.clear()
        root = _root(v, hot)
        tab[aid.encode()] = root
        for name in [n for n in meta.parts if n not in parts]:  # after the root
            del meta.parts[name]
            for slot in (0, 1):
                self._tombstone(part_key(aid, name, slot))
        meta.root, meta.state, meta.v = root, st, v
        self.cache[aid] = meta

    def _tombstone(self, key: str) -> None:
        k = key.encode()
        if k in self.table:
            with contextlib.suppress(KeyError):
                del self.table[k]

    # ------------------------------------------------------------------ keys
    def forget(self, partitions: set[int], n: int) -> None:
        """Drop the decoded states of athletes in ``partitions`` (revoked: another worker
        may own them next; a later assignment recovers them from the changelog)."""
        for k in [k for k in self.cache if _partition(k, n) in partitions]:
            del self.cache[k]

    def keys_in(self, partition: int, n: int) -> list[str]:
        """The athletes of one partition (their roots' keys)."""
        return [k for k in self if _partition(k, n) == partition]

    def __iter__(self) -> Iterator[str]:
        """Athlete ids (root keys; part keys hold a ``|``)."""
        return iter([k.decode() for k in list(self.table.keys()) if b"|" not in k])

    def __contains__(self, aid: object) -> bool:
        return isinstance(aid, str) and aid.encode() in self.table


def _partition(key: str, n: int) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % n


def records_of(states: Iterable[tuple[str, AthleteState]]) -> Iterator[tuple[str, bytes]]:
    """All records of many athletes (:func:`state_records`), in order."""
    for aid, st in states:
        yield from state_records(aid, st)
