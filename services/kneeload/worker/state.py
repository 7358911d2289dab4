"""The athlete agent's state, typed: msgspec Structs stored as MessagePack in the Faust table.

One :class:`AthleteState` per athlete (table ``athletes``). Its pieces:

* :class:`Session` — one training session: its input batches (``chunks``), its running sums
  (:class:`SessionAcc`, whose load sums are :class:`kneeload.core.session.LoadSums` and
  whose minutes are :class:`kneeload.core.session.MinuteSums`), publishing bookkeeping.
* :class:`Day` — one local day's published ACWR/load figures and revision.
* :class:`BwsEntry`, :class:`PainEntry`, :class:`SpikeEntry` — time-ordered entries, stored
  as arrays (compact), read by name.

Encoding (:func:`encode_state`, :func:`decode_state`): MessagePack, maps for the Structs
whose field names are the keys the state had as JSON, arrays for entries and sums. The
chunk store's values (:class:`Chunk` of :class:`SampleRow`, :func:`encode_chunk`; a closed
session's chunks packed into one :class:`Pack`, :func:`encode_pack`) are MessagePack
arrays compressed with zlib (the raw samples are most of what a worker keeps and
restores: ~1 MB per athlete for five 45-minute sessions uncompressed).

Upgrading: a worker of an older version stored the state as orjson JSON dicts with
positional lists. :func:`decode_state` recognises such a value (it starts with ``{``, which
is never the first byte of a MessagePack map) and converts it (:func:`from_legacy`): the
session sums move from the accumulator's keys ``n, dur, dist, s_speed, s_cad, s_bws, peak,
load`` into :class:`~kneeload.core.session.LoadSums`; every other field keeps its name, and
the positional lists (minutes, BWS and pain entries, ceiling history, no-estimate reasons)
are the arrays of the new entries. A restarted worker therefore reads its changelog as it
is and writes each athlete in the new format the next time it changes. Chunks of older
workers (JSON ``{"b", "rows"}``) are read the same way (:func:`decode_chunk`) and stay as
they are until the session they belong to is pruned.
"""

from __future__ import annotations

import zlib
from typing import Any

import msgspec
import orjson

from kneeload.core.session import LoadSums, MinuteSums

__all__ = [
    "AthleteState",
    "BwsEntry",
    "Chunk",
    "Day",
    "Pack",
    "PainEntry",
    "Reason",
    "SampleRow",
    "Session",
    "SessionAcc",
    "SpikeEntry",
    "TeamDirectory",
    "TeamEntry",
    "TeamPair",
    "TeamSeries",
    "UnitCal",
    "UnitCalLast",
    "UnitDrift",
    "UnitFwd",
    "UnitState",
    "decode_chunk",
    "decode_pack",
    "decode_state",
    "decode_team",
    "decode_unit",
    "encode_chunk",
    "encode_pack",
    "encode_state",
    "encode_team",
    "encode_unit",
    "from_legacy",
]


class SampleRow(msgspec.Struct, array_like=True, gc=False):
    """A watch sample as the worker keeps it in its chunk store (the inputs a session is
    recomputed from). ``late``: older than the watermark − lateness horizon on arrival
    (stored and published, not counted)."""

    t_ms: int
    record_id: str
    time: str
    speed_mps: float
    cadence_spm: float
    ground_contact_ms: float | None
    grade_pct: float
    late: bool = False
    vertical_load_bw: float | None = None  # device-measured (e.g. an insole)
    contact_source: str | None = None  # the ground contact time's sensor source


class Chunk(msgspec.Struct, array_like=True, gc=False):
    """One input batch's rows (table ``chunks``, key ``athlete|session|batch``)."""

    batch_id: str
    rows: list[SampleRow]


class Pack(msgspec.Struct, array_like=True, gc=False):
    """A closed session's chunks in one record (table ``chunks``, key
    ``athlete|session|#k``, part k of the session, each up to a row limit): the store keeps
    one record per closed session instead of one per input batch, so a restarted worker
    reads a few records per athlete, not hundreds (batch ids never start with ``#``)."""

    chunks: list[Chunk]


class BwsEntry(msgspec.Struct, array_like=True, gc=False):
    """A treadmill support entry re-keyed by athlete: valid from ``t_ms`` on."""

    t_ms: int
    unit_id: str | None
    bws_pct: float


class PainEntry(msgspec.Struct, array_like=True, gc=False):
    """A stored pain report (the worker re-classifies it when its session changes)."""

    t_ms: int
    nrs: int
    context: str
    session_id: str | None
    report_id: str
    time: str | None = None  # the report's own time text
    team_id: str | None = None


class SpikeEntry(msgspec.Struct, array_like=True, gc=False):
    """A closed session in the athlete's 30-day ceiling history."""

    start_ms: int
    distance_m: float
    pfj_load_mpa_s: float


class Reason(msgspec.Struct, array_like=True, gc=False):
    """Samples without an estimate for one reason, and one example sentence."""

    count: int
    detail: str | None


class SessionAcc(msgspec.Struct, gc=False):
    """A session's running sums (time-ordered, de-duplicated samples)."""

    sums: LoadSums
    start: int  # first sample, epoch ms
    end: int  # last sample
    last_t: int | None = None  # last sample added (the next Δt starts here)
    by_date: dict[str, float] = {}  # local date → load
    minutes: dict[str, MinuteSums] = {}  # minute start (epoch ms, text) → sums
    unit: str | None = None  # LEVER unit of the latest joined sample
    n_est: int = 0
    n_walk: int = 0
    n_corr: int = 0
    n_cest: int = 0
    reasons: dict[str, Reason] = {}


class Session(msgspec.Struct, gc=False):
    """One session of an athlete."""

    sid: str
    explicit: bool
    chunks: list[str] = []  # batch ids counted, in arrival order
    packed: int = 0  # the first ``packed`` batch ids' chunks were packed (:class:`Pack`)
    cold: bool = False  # minute sums dropped once published (recomputed when it changes)
    acc: SessionAcc | None = None
    status: str = "open"
    rev: int = -1
    dirty: bool = False
    minutes_dirty: list[str] = []
    minute_rev: dict[str, int] = {}
    applied: dict[str, float] = {}  # date → load pushed into the day totals
    reopened: bool = False
    sources: dict[str, str] | None = None


class Day(msgspec.Struct, gc=False):
    """A local day's figures as last computed (``out``) and their publishing state."""

    rev: int = -1
    final: bool = False
    corrected: bool = False
    dirty: bool = True
    out: dict[str, Any] | None = None


class AthleteState(msgspec.Struct, gc=False):
    """Everything the worker keeps about one athlete."""

    athlete_id: str
    team_id: str | None = None
    tz: str = "UTC"
    body_mass_kg: float | None = None
    calibration: dict[str, Any] | None = None
    wm: int | None = None  # watermark: the largest sample time seen, epoch ms
    sessions: dict[str, Session] = {}
    dayload: dict[str, dict[str, float]] = {}  # date → {session id: load}
    days: dict[str, Day] = {}
    acwr: dict[str, Any] = {}  # kneeload.core.acwr.AcwrTracker.to_dict()
    bws: list[BwsEntry] = []
    pain: list[PainEntry] = []
    corr: dict[str, dict[str, Any]] = {}  # "lag<k>" → PairedObservations.to_dict()
    corr_t: dict[str, int] = {}  # "lag<k>" → latest event time (ms) of a change
    corr_team: str | None = None  # the team the pairs were last shared with
    cooldown: dict[str, Any] = {}
    last_proc: int = 0
    last_pub: int = 0
    dirty_dates: list[str] = []
    spike_hist: dict[str, SpikeEntry] = {}
    episodes: dict[str, Any] = {}  # kneeload.worker.episodes (core.episodes states)


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(AthleteState)
_CHUNK_DECODER = msgspec.msgpack.Decoder(Chunk)
_PACK_DECODER = msgspec.msgpack.Decoder(Pack)
_SUMS_KEYS = ("n", "dur", "dist", "s_speed", "s_cad", "s_bws", "peak", "load")


def encode_state(st: AthleteState) -> bytes:
    """The state as stored in the ``athletes`` table (MessagePack)."""
    return _ENCODER.encode(st)


def decode_state(raw: bytes) -> AthleteState:
    """A stored state: MessagePack, or the JSON of an older worker (:func:`from_legacy`)."""
    if raw[:1] == b"{":
        return from_legacy(orjson.loads(raw))
    return _DECODER.decode(raw)


def from_legacy(d: dict[str, Any]) -> AthleteState:
    """An athlete's state as older workers stored it (a JSON dict, see the module doc)."""
    d = dict(d)
    sessions = {}
    for sid, s in (d.get("sessions") or {}).items():
        s = dict(s)
        a = s.get("acc")
        if a is not None:
            a = dict(a)
            n = a["n"]
            a["sums"] = [a.pop(k, None) for k in _SUMS_KEYS]
            a.setdefault("n_est", n)  # states before the counters: every sample estimated
            a["reasons"] = {k: [v[0], v[1]] for k, v in (a.get("reasons") or {}).items()}
            s["acc"] = a
        sessions[sid] = s
    d["sessions"] = sessions
    d["dirty_dates"] = d.get("dirty_dates") or []
    return msgspec.convert(d, AthleteState)


#: zlib level of the chunk store: level 1 keeps ~0.4 µs of CPU per sample and stores a
#: real watch's rows in ~18 B per sample instead of ~96 (record ids and times repeat)
CHUNK_ZLIB_LEVEL = 1


def encode_chunk(c: Chunk) -> bytes:
    """A chunk as stored in the ``chunks`` table: MessagePack arrays, zlib-compressed (the
    stream's first byte 0x78 is never the first byte of a MessagePack array or of JSON)."""
    return zlib.compress(_ENCODER.encode(c), CHUNK_ZLIB_LEVEL)


def decode_chunk(raw: bytes) -> Chunk:
    """A stored chunk: compressed MessagePack, or an older worker's JSON ``{"b": batch id,
    "rows": [[t ms, record id, time, speed, cadence, contact, grade, late 0/1, vertical
    load, contact source], ...]}`` (rows of 8 values from before the last two)."""
    if raw[:1] == b"{":
        d = orjson.loads(raw)
        return msgspec.convert([d["b"], d["rows"]], Chunk, strict=False)
    if raw[:1] == b"\x78":
        raw = zlib.decompress(raw)
    return _CHUNK_DECODER.decode(raw)


def encode_pack(p: Pack) -> bytes:
    """A closed session's packed chunks as stored (MessagePack arrays, zlib-compressed)."""
    return zlib.compress(_ENCODER.encode(p), CHUNK_ZLIB_LEVEL)


def decode_pack(raw: bytes) -> Pack:
    """A stored :class:`Pack` (compressed MessagePack; plain MessagePack also reads)."""
    if raw[:1] == b"\x78":
        raw = zlib.decompress(raw)
    return _PACK_DECODER.decode(raw)


# ------------------------------------------------------------------------------ teams


class TeamPair(msgspec.Struct, array_like=True, gc=False):
    """One paired observation: load on ``day``, pain on day + lag."""

    day: str
    load: float
    pain: float


class TeamSeries(msgspec.Struct, gc=False):
    """One athlete's pairs of one series (metric × lag) and the latest change's time."""

    t: int
    pairs: list[TeamPair] = []


class TeamEntry(msgspec.Struct, tag="entry", gc=False):
    """An athlete's latest pairs snapshot within a team (key ``team_id|athlete_id``)."""

    series: dict[str, TeamSeries] = {}


class TeamDirectory(msgspec.Struct, tag="team", gc=False):
    """A team's athletes and each series' latest change time (key ``team_id``)."""

    athletes: list[str] = []
    t: dict[str, int] = {}


_TEAM_DECODER = msgspec.msgpack.Decoder(TeamEntry | TeamDirectory)


def encode_team(v: TeamEntry | TeamDirectory) -> bytes:
    """A ``teams`` table value (MessagePack, tagged ``entry`` / ``team``)."""
    return _ENCODER.encode(v)


def decode_team(raw: bytes) -> TeamEntry | TeamDirectory:
    """A stored team value: MessagePack, or an older worker's JSON (``{"series": …}`` for an
    athlete's entry, ``{"athletes": …, "t": …}`` for the team)."""
    if raw[:1] == b"{":
        d = orjson.loads(raw)
        if "series" in d:
            return msgspec.convert(d, TeamEntry, strict=False)
        return msgspec.convert(d, TeamDirectory, strict=False)
    return _TEAM_DECODER.decode(raw)


# ------------------------------------------------------------------------------ units


class UnitFwd(msgspec.Struct, array_like=True, gc=False):
    """The last support entry forwarded to the unit's athlete."""

    t_ms: int
    bws_pct: float | None


class UnitCal(msgspec.Struct, array_like=True, gc=False):
    """One UTC day's calibration sums (:func:`kneeload.core.fleet.calibration_summary`'s
    n, Σe, Σ|e| of the support bias e in pp)."""

    n: float = 0.0
    sum_bias_pp: float = 0.0
    sum_abs_bias_pp: float = 0.0


class UnitCalLast(msgspec.Struct, array_like=True, gc=False):
    """The UTC day and time of the unit's latest calibration sample."""

    date: str
    t_ms: int


class UnitDrift(msgspec.Struct, array_like=True, gc=False):
    """The unit's :class:`kneeload.core.fleet.DriftEpisode`, stored as an array."""

    since_ms: int | None = None
    above_s: float = 0.0
    bias_sum_pp_s: float = 0.0
    last_ms: int | None = None
    alerted: str = ""


class UnitState(msgspec.Struct, gc=False):
    """Everything the worker keeps about one LEVER unit (table ``units``). Field names are
    the keys of the dict older workers stored as JSON (:func:`decode_unit` reads it)."""

    unit_id: str
    clinic_id: str | None = None
    last_seen: int | None = None  # latest record's event time, epoch ms
    last_proc: int = 0  # processing time of the latest record
    online: bool = False
    athlete_id: str | None = None
    running: bool = False  # belt moving with an athlete on it (core.fleet.is_running)
    run_t: int | None = None  # latest running telemetry
    assigned: str | None = None  # the registry's standing assignment
    bws_pct: float | None = None
    minutes: dict[str, float] = {}  # UTC date → minutes in use
    last_use_t: int | None = None
    timeout_s: float | None = None  # the registry's, else the worker's default
    last_pub: int = 0
    last_fwd: UnitFwd | None = None
    cal: dict[str, UnitCal] = {}  # UTC date → calibration sums
    cal_last: UnitCalLast | None = None
    drift: UnitDrift | None = None
    episodes: dict[str, Any] = {}  # kneeload.worker.episodes (core.episodes states)


_UNIT_DECODER = msgspec.msgpack.Decoder(UnitState)


def encode_unit(u: UnitState) -> bytes:
    """A ``units`` table value (MessagePack map)."""
    return _ENCODER.encode(u)


def decode_unit(raw: bytes) -> UnitState:
    """A stored unit: MessagePack, or an older worker's JSON dict (first byte ``{``; its
    positional lists ``cal`` [n, Σe, Σ|e|], ``last_fwd`` [t, bws], ``cal_last`` [date, t]
    and ``drift`` [since, above s, Σe·Δt, last, alerted] are the arrays of the structs)."""
    if raw[:1] == b"{":
        return msgspec.convert(orjson.loads(raw), UnitState, strict=False)
    return _UNIT_DECODER.decode(raw)
