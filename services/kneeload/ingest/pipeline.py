"""The gateway core: validate records against the contracts, attach registry facts, dedupe,
publish (waiting for Kafka's acknowledgement) and dead-letter what is rejected.

Shared by the HTTP gateway (:mod:`kneeload.ingest.app`) and the MQTT bridge
(:mod:`kneeload.bridge.bridge`), so a record means the same whichever way it came.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from kneeload import contracts
from kneeload.contracts import FieldError, wire
from kneeload.ingest.dedupe import RecentKeys
from kneeload.registry.view import RegistryView
from kneeload.settings import Settings
from kneeload.topics import (
    DEADLETTER,
    PAIN_REPORTS,
    TREADMILL_SETPOINTS,
    TREADMILL_TELEMETRY,
    WATCH_SAMPLES,
    topic_name,
)

__all__ = [
    "MAX_SAMPLES_PER_MESSAGE",
    "ActivityResult",
    "Ingestor",
    "Outcome",
    "RecordResult",
    "request_fields",
    "time_error",
]

#: the schema's maxItems of watch_sample_batch.samples
MAX_SAMPLES_PER_MESSAGE = 1000
TELEMETRY, SETPOINT, PAIN, BATCH = (
    "treadmill_telemetry",
    "bws_setpoint_change",
    "pain_report",
    "watch_sample_batch",
)
#: fields the gateway attaches from the registry: never accepted from a device
ATTACHED = {
    TELEMETRY: ("unit_id", "clinic_id", "athlete_id"),
    SETPOINT: ("unit_id", "clinic_id", "athlete_id"),
    PAIN: ("team_id",),
}
_ID_FIELD = {TELEMETRY: "record_id", SETPOINT: "record_id", PAIN: "report_id"}
_TOPIC = {TELEMETRY: TREADMILL_TELEMETRY, SETPOINT: TREADMILL_SETPOINTS, PAIN: PAIN_REPORTS}
#: optional-in-requests fields that the event requires (filled with null when absent)
_NULL_DEFAULTS = {
    TELEMETRY: ("measured_support_pct",),
    SETPOINT: ("previous_bws_pct", "set_by"),
    PAIN: ("session_id",),
}
_HEARTBEAT_NULLS = ("belt_speed_mps", "incline_pct", "bws_pct", "measured_support_pct")


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def request_fields(schema: str) -> tuple[str, ...]:
    """Fields a device may send for ``schema`` (the event's properties minus those attached)."""
    props = contracts.load_schema(schema)["properties"]
    return tuple(p for p in props if p not in ATTACHED.get(schema, ()))


def time_error(value: Any, path: str, now: float, skew_s: float) -> FieldError | None:
    """Future check (the schema already enforces RFC 3339 and year >= 2000)."""
    if not isinstance(value, str):
        return None
    text = value.upper()
    if text[17:19] == "60":  # leap second: compare as :59
        text = text[:17] + "59" + text[19:]
    try:
        t = datetime.fromisoformat(text).timestamp()
    except ValueError:
        return FieldError(path, "invalid_time", f"{value[:64]!r} is not a valid RFC 3339 time")
    if t > now + skew_s:
        return FieldError(
            path,
            "time_in_future",
            f"{value[:64]} is {t - now:.0f} s ahead of the gateway clock (max skew {skew_s:g} s)",
        )
    return None


@dataclass(slots=True)
class RecordResult:
    index: int
    record_id: str | None
    result: str  # accepted | duplicate | rejected
    reason: str | None = None
    errors: list[dict[str, str]] | None = None
    forbidden: bool = False  # refused for who sent it (403)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "record_id": self.record_id,
            "result": self.result,
        }
        if self.reason is not None:
            d["reason"] = self.reason
            d["errors"] = self.errors or []
        return d


@dataclass(slots=True)
class Outcome:
    """What happened to a request's records; ``status`` is the HTTP status to answer with."""

    results: list[RecordResult] = field(default_factory=list)
    batch_ids: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    forbidden: bool = False  # a record was refused for who sent it (403), e.g. athlete_mismatch

    def count(self, result: str) -> int:
        return sum(1 for r in self.results if r.result == result)

    @property
    def status(self) -> int:
        accepted, rejected = self.count("accepted"), self.count("rejected")
        if rejected and not accepted and not self.count("duplicate"):
            return 403 if self.forbidden else 422
        return 207 if rejected else 200

    def as_dict(self, *, details: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "accepted": self.count("accepted"),
            "duplicates": self.count("duplicate"),
            "rejected": self.count("rejected"),
        }
        if self.batch_ids:
            d["batch_ids"] = self.batch_ids
        d.update(self.extra)
        d["results"] = (
            [r.as_dict() for r in self.results]
            if details
            else [r.as_dict() for r in self.results if r.result != "accepted"]
        )
        return d


@dataclass(slots=True)
class ActivityResult:
    """What publishing one activity file did: ``outcome`` of its samples (None when the file
    yields none: ``error`` says why), and the decoder's summary with rejections by reason."""

    outcome: Outcome | None
    summary: dict[str, Any]
    error: str | None = None


@dataclass(slots=True)
class _SortedSamples:
    """A request's samples sorted by :meth:`Ingestor._sort_samples`: each one's result (by
    index), the accepted ones' indices by (session_id, sub_sport) and the rejected ones'
    (index, reason, errors)."""

    results: list[RecordResult | None]
    groups: dict[tuple[Any, Any], list[int]]
    dlq: list[tuple[int, str, list[FieldError]]]


def _unexpected_fields(schema: str, extra: list[str]) -> list[FieldError]:
    """``additional_properties`` errors for the first 20 fields a device may not send (those
    kneeload attaches from the registry say so)."""
    return [
        FieldError(
            f"/{k}",
            "additional_properties",
            f"unexpected property {k[:64]!r}"
            + (
                " (attached by kneeload from the registry, never taken from a device)"
                if k in ATTACHED.get(schema, ())
                else ""
            ),
        )
        for k in extra[:20]
    ]


def _reason(errors: list[FieldError]) -> str:
    codes = {e.code for e in errors}
    for special in ("time_in_future", "invalid_time", "athlete_mismatch"):
        if special in codes:
            return special
    return "schema_invalid"


class Ingestor:
    """Validates, enriches, dedupes and publishes; one per process."""

    def __init__(self, settings: Settings, view: RegistryView, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.view = view
        self.producer = producer
        self.recent = RecentKeys(settings.ingest_dedupe_keys)
        self.batch_contract = contracts.get_contract(BATCH)
        self.sample_contract = contracts.sample_contract()
        self._topics = {
            t: topic_name(t, settings)
            for t in (
                WATCH_SAMPLES,
                TREADMILL_TELEMETRY,
                TREADMILL_SETPOINTS,
                PAIN_REPORTS,
                DEADLETTER,
            )
        }
        self._fields = {s: frozenset(request_fields(s)) for s in (TELEMETRY, SETPOINT, PAIN)}
        self._contracts = {s: contracts.get_contract(s) for s in (TELEMETRY, SETPOINT, PAIN)}

    # ------------------------------------------------------------------ dead letters
    async def dead_letter(
        self,
        source: str,
        reason: str,
        detail: str,
        payload: bytes | str | None,
        *,
        key: str | None = None,
        errors: Iterable[FieldError | dict[str, str]] = (),
    ) -> None:
        """Publish one ``dead_letter`` event (awaits Kafka's acknowledgement)."""
        await (await self._dlq_send(source, reason, detail, payload, key=key, errors=errors))

    async def _dlq_send(
        self,
        source: str,
        reason: str,
        detail: str,
        payload: bytes | str | None,
        *,
        key: str | None,
        errors: Iterable[FieldError | dict[str, str]] = (),
    ) -> asyncio.Future[Any]:
        event = contracts.dead_letter(source, reason, detail, payload, key=key, errors=errors)
        return await self.producer.send(
            self._topics[DEADLETTER], contracts.dumps(event), key=source.encode()
        )

    # ------------------------------------------------------------------ watch samples
    async def watch_samples(
        self,
        device: dict[str, Any],
        samples: list[Any],
        *,
        source: str,
        session_id: Any = None,
        sub_sport: Any = None,
        sessions: list[dict[str, Any]] | None = None,
        dlq_source: str = "http",
        batch_id_prefix: str | None = None,
    ) -> Outcome:
        """Publish the valid samples as ONE ``watch_sample_batch`` message per athlete and
        request (split at 1000 samples or per session for files); each invalid sample is
        dead-lettered on its own. ``sessions`` (files) gives session_id/sub_sport per sample.

        Steps: :meth:`_check_envelope` (the whole batch at once when it can),
        :meth:`_sort_samples` (each sample accepted, duplicate or rejected),
        :meth:`_send_batches` and :meth:`_send_rejects` (every send awaited together), then
        :meth:`_remember_accepted`.
        """
        athlete_id = device["athlete_id"]
        device_id = device["device_id"]
        received_at = now_rfc3339()
        now = time.time()
        out = Outcome()
        envelope = {
            "batch_id": "x",
            "athlete_id": athlete_id,
            "device_id": device_id,
            "team_id": self.view.team_of(athlete_id),
            "session_id": session_id,
            "source": source,
            "sub_sport": sub_sport,
            "received_at": received_at,
        }
        all_valid = self._check_envelope(envelope, samples, sessions)
        sorted_ = self._sort_samples(samples, device_id, now, all_valid, envelope, sessions)
        prefix = batch_id_prefix or f"{device_id[:80]}-{int(now * 1000)}-{id(out) & 0xFFFF:x}"
        futures = await self._send_batches(
            envelope, samples, sorted_.groups, prefix, out, check=sessions is not None
        )
        futures += await self._send_rejects(sorted_.dlq, samples, dlq_source, source, device_id)
        if futures:
            await asyncio.gather(*futures)
        out.results = self._remember_accepted(sorted_.results, device_id)
        return out

    def _remember_accepted(
        self, results: list[RecordResult | None], device_id: str
    ) -> list[RecordResult]:
        """Remember the accepted samples' keys (once Kafka acknowledged them) for
        deduplication; the results, every sample's."""
        recent = self.recent
        for r in results:
            assert r is not None
            if r.result == "accepted":
                recent.add(f"{device_id}\x1f{r.record_id}")
        return [r for r in results if r is not None]

    def _check_envelope(
        self, envelope: dict[str, Any], samples: list[Any], sessions: list[Any] | None
    ) -> bool:
        """Whether the whole batch is valid (the compiled validator at once, microseconds per
        sample; only for a request's samples of one envelope within the size limit). If it
        is not, the envelope alone (session_id, sub_sport) must be valid for any sample to
        be accepted: :class:`~kneeload.contracts.ContractError` otherwise."""
        all_valid = (
            self.batch_contract.is_valid({**envelope, "samples": samples})
            if (sessions is None and 0 < len(samples) <= MAX_SAMPLES_PER_MESSAGE)
            else False
        )
        if not all_valid and sessions is None:
            sample = {
                "record_id": "p",
                "time": envelope["received_at"],
                "cadence_spm": 1,
                "speed_mps": 0,
            }
            probe = {**envelope, "samples": [sample]}
            if not self.batch_contract.is_valid(probe):
                errors = self.batch_contract.errors(probe)
                raise contracts.ContractError(
                    BATCH, [e for e in errors if not e.path.startswith("/samples")]
                )
        return all_valid

    def _sort_samples(
        self,
        samples: list[Any],
        device_id: str,
        now: float,
        all_valid: bool,
        envelope: dict[str, Any],
        sessions: list[dict[str, Any]] | None,
    ) -> _SortedSamples:
        """Each sample's result (the per-sample loop: schema unless ``all_valid``, time,
        duplicates within the request and recently accepted): accepted samples' indices by
        (session_id, sub_sport), rejected ones with their errors."""
        skew = self.settings.ingest_max_future_skew_s
        results: list[RecordResult | None] = [None] * len(samples)
        seen: set[str] = set()
        groups: dict[tuple[Any, Any], list[int]] = {}
        dlq: list[tuple[int, str, list[FieldError]]] = []
        recent = self.recent
        default = {"session_id": envelope["session_id"], "sub_sport": envelope["sub_sport"]}
        for i, s in enumerate(samples):
            rid = s.get("record_id") if isinstance(s, dict) else None
            rid = rid if isinstance(rid, str) else None
            errs = [] if all_valid else self.sample_contract.errors(s)
            if not errs:
                te = time_error(s["time"], "/time", now, skew)
                if te is not None:
                    errs = [te]
            if errs:
                results[i] = RecordResult(
                    i, rid, "rejected", _reason(errs), [e.as_dict() for e in errs]
                )
                dlq.append((i, _reason(errs), errs))
                continue
            dkey = f"{device_id}\x1f{rid}"
            if dkey in seen or dkey in recent:
                results[i] = RecordResult(i, rid, "duplicate")
                continue
            seen.add(dkey)
            results[i] = RecordResult(i, rid, "accepted")
            sess = sessions[i] if sessions is not None else default
            groups.setdefault((sess["session_id"], sess["sub_sport"]), []).append(i)
        return _SortedSamples(results, groups, dlq)

    async def _send_batches(
        self,
        envelope: dict[str, Any],
        samples: list[Any],
        groups: dict[tuple[Any, Any], list[int]],
        prefix: str,
        out: Outcome,
        *,
        check: bool,
    ) -> list[asyncio.Future[Any]]:
        """Send the accepted samples as ``watch_sample_batch`` events, one per (session,
        sub_sport) and at most 1000 samples each (each validated whole when ``check``: file
        sessions); their batch ids go to ``out``. Returns the sends' futures."""
        futures: list[asyncio.Future[Any]] = []
        topic = self._topics[WATCH_SAMPLES]
        key = envelope["athlete_id"].encode()
        n = 0
        for (sid, sub), idx in groups.items():
            for start in range(0, len(idx), MAX_SAMPLES_PER_MESSAGE):
                chunk = idx[start : start + MAX_SAMPLES_PER_MESSAGE]
                batch_id = f"{prefix}-{n}"[:128]
                n += 1
                event = {
                    **envelope,
                    "batch_id": batch_id,
                    "session_id": sid,
                    "sub_sport": sub,
                    "samples": [samples[i] for i in chunk],
                }
                if check and not self.batch_contract.is_valid(event):
                    raise contracts.ContractError(BATCH, self.batch_contract.errors(event))
                futures.append(await self.producer.send(topic, wire.encode(event), key=key))
                out.batch_ids.append(batch_id)
        return futures

    async def _send_rejects(
        self,
        dlq: list[tuple[int, str, list[FieldError]]],
        samples: list[Any],
        dlq_source: str,
        source: str,
        device_id: str,
    ) -> list[asyncio.Future[Any]]:
        """Dead-letter each rejected sample on its own. Returns the sends' futures."""
        futures: list[asyncio.Future[Any]] = []
        for i, reason, errs in dlq:
            futures.append(
                await self._dlq_send(
                    dlq_source,
                    reason,
                    f"sample {i} of a {source} batch rejected: {errs[0].message}",
                    _dump_any(samples[i]),
                    key=device_id,
                    errors=errs,
                )
            )
        return futures

    # ------------------------------------------------------------------ activity files
    async def activity(
        self,
        device: dict[str, Any],
        norm: Any,
        fmt: str,
        body: bytes | None,
        *,
        session_id: str | None = None,
    ) -> ActivityResult:
        """Publish a decoded activity file (``norm``: a
        :class:`kneeload.ingest.activity.NormalisedActivity`) as ``device``: its rejected
        records dead-lettered once per reason, its samples through :meth:`watch_samples` in
        batches with ids derived from the file's digest (a re-sync or re-import is a harmless
        duplicate). Shared by the HTTP upload and ``kneeload import``."""
        summary = dict(norm.summary)
        by_reason: dict[str, list[dict[str, Any]]] = {}
        for r in norm.rejected:
            by_reason.setdefault(r["reason"], []).append(r)
        summary["rejected_records"] = {
            k: {"count": len(v), "indexes": [r["index"] for r in v[:100]], "detail": v[0]["detail"]}
            for k, v in by_reason.items()
        }
        sha = str(norm.summary["file_sha256"])
        for reason, recs in by_reason.items():  # one dead letter per reason and file
            await self.dead_letter(
                fmt,
                reason,
                f"{len(recs)} record(s) of {fmt} file {sha[:16]} rejected: {recs[0]['detail']}",
                contracts.dumps([r["record"] for r in recs]),
                key=device["device_id"],
                errors=[
                    FieldError(f"/records/{r['index']}", reason, r["detail"]) for r in recs[:100]
                ],
            )
        if not norm.samples:
            code = (
                "no_running_samples"
                if norm.skipped["not_running"] and not norm.rejected
                else "no_usable_samples"
            )
            if not by_reason:
                await self.dead_letter(
                    fmt, code, "file yields no running samples", body, key=device["device_id"]
                )
            return ActivityResult(None, summary, code)
        sessions = norm.sessions
        if session_id is not None:
            sessions = [{**s, "session_id": session_id} for s in sessions]
        out = await self.watch_samples(
            device,
            norm.samples,
            source=fmt,
            sessions=sessions,
            dlq_source=fmt,
            batch_id_prefix=f"{fmt}-{sha[:16]}",
        )
        return ActivityResult(out, summary)

    # ------------------------------------------------------------------ unit & pain records
    def build(
        self,
        schema: str,
        payload: Any,
        *,
        device: dict[str, Any],
        kind: str | None = None,
        now: float | None = None,
    ) -> tuple[dict[str, Any] | None, list[FieldError], int]:
        """The event for one device record, or ``(None, errors, status)``. Registry facts
        (unit's clinic and athlete, athlete's team) are attached; the payload may not carry them.

        Steps: the record's own fields (:func:`_unexpected_fields`), the event's null
        defaults, :meth:`_attach_athlete` (pain) or :meth:`_attach_unit` (treadmill),
        :meth:`_check` (schema and time).
        """
        if not isinstance(payload, dict):
            return None, [FieldError("", "type", "a record must be a JSON object")], 422
        extra = [k for k in payload if k not in self._fields[schema]]
        if extra:
            return None, _unexpected_fields(schema, extra), 422
        event = dict(payload)
        for f in _NULL_DEFAULTS[schema]:
            event.setdefault(f, None)
        if schema == PAIN:
            errs = self._attach_athlete(event, device)
            if errs:
                return None, errs, 403
        else:
            errs = self._attach_unit(event, device, schema, kind)
            if errs:
                return None, errs, 422
        errs = self._check(schema, event, now)
        if errs:
            return None, errs, 422
        return event, [], 200

    def _attach_athlete(self, event: dict[str, Any], device: dict[str, Any]) -> list[FieldError]:
        """A pain report: the device's own athlete (no other may be claimed) and the
        athlete's team attached; the errors (``athlete_mismatch``) otherwise."""
        own = device["athlete_id"]
        claimed = event.setdefault("athlete_id", own)
        if claimed != own:
            return [
                FieldError(
                    "/athlete_id",
                    "athlete_mismatch",
                    "a device can only report pain for its own athlete",
                )
            ]
        event["team_id"] = self.view.team_of(own) if own else None
        return []

    def _attach_unit(
        self, event: dict[str, Any], device: dict[str, Any], schema: str, kind: str | None
    ) -> list[FieldError]:
        """A treadmill record: the kind the topic says (heartbeats' absent readings null),
        the load-cell reading clamped to 0..100, and the unit's clinic and athlete attached;
        the errors (``const`` kind) otherwise."""
        unit = device["device_id"]
        if kind is not None and schema == TELEMETRY and event.setdefault("kind", kind) != kind:
            return [FieldError("/kind", "const", f"the topic says kind {kind!r}")]
        if schema == TELEMETRY and (kind or event.get("kind")) == "heartbeat":
            for f in _HEARTBEAT_NULLS:
                event.setdefault(f, None)
        msp = event.get("measured_support_pct")
        if isinstance(msp, int | float) and not isinstance(msp, bool) and msp == msp:
            # clamp a load-cell reading to 0..100 (the schema's range; cells overshoot)
            event["measured_support_pct"] = min(100.0, max(0.0, float(msp)))
        event["unit_id"] = unit
        event["clinic_id"] = self.view.clinic_of(unit)
        event["athlete_id"] = self.view.athlete_on(unit)
        return []

    def _check(self, schema: str, event: dict[str, Any], now: float | None) -> list[FieldError]:
        """The event's errors against its contract, then its time (not in the future)."""
        errs = self._contracts[schema].errors(event)
        if not errs:
            te = time_error(
                event["time"],
                "/time",
                time.time() if now is None else now,
                self.settings.ingest_max_future_skew_s,
            )
            if te is not None:
                errs = [te]
        return errs

    async def submit(
        self,
        schema: str,
        payload: Any,
        *,
        device: dict[str, Any],
        source: str,
        kind: str | None = None,
        index: int = 0,
        seen: set[str] | None = None,
    ) -> tuple[RecordResult, asyncio.Future[Any] | None]:
        """Validate one telemetry/setpoint/pain record and hand it (or its dead letter) to the
        producer; returns the result and the future of Kafka's acknowledgement. Records are
        enqueued in call order, so a caller that submits in arrival order keeps per-key order."""
        id_field = _ID_FIELD[schema]
        rid = payload.get(id_field) if isinstance(payload, dict) else None
        rid = rid if isinstance(rid, str) else None
        event, errs, status = self.build(schema, payload, device=device, kind=kind)
        if event is None:
            reason = _reason(errs)
            fut = await self._dlq_send(
                source,
                reason,
                f"{schema} rejected: {errs[0].message}",
                _dump_any(payload),
                key=device["device_id"],
                errors=errs,
            )
            return RecordResult(
                index, rid, "rejected", reason, [e.as_dict() for e in errs], status == 403
            ), fut
        dkey = f"{device['device_id']}\x1f{event[id_field]}"
        if dkey in self.recent or (seen is not None and dkey in seen):
            return RecordResult(index, rid, "duplicate"), None
        if seen is not None:
            seen.add(dkey)
        key = event["athlete_id"] if schema == PAIN else event["unit_id"]
        fut = await self.producer.send(
            self._topics[_TOPIC[schema]], wire.encode(event), key=key.encode()
        )
        recent = self.recent

        def remember(f: asyncio.Future[Any]) -> None:
            if not f.cancelled() and f.exception() is None:
                recent.add(dkey)

        fut.add_done_callback(remember)
        return RecordResult(index, rid, "accepted"), fut

    async def records(
        self,
        schema: str,
        payloads: list[Any],
        *,
        device: dict[str, Any],
        source: str,
        kind: str | None = None,
    ) -> Outcome:
        """Publish telemetry/setpoint/pain records, one message each (key: unit or athlete),
        and wait for Kafka's acknowledgement of all of them."""
        out = Outcome()
        futures: list[asyncio.Future[Any]] = []
        seen: set[str] = set()
        for i, payload in enumerate(payloads):
            res, fut = await self.submit(
                schema, payload, device=device, source=source, kind=kind, index=i, seen=seen
            )
            out.results.append(res)
            if res.forbidden:
                out.forbidden = True
            if fut is not None:
                futures.append(fut)
        if futures:
            await asyncio.gather(*futures)
        return out


def _dump_any(value: Any) -> bytes | str:
    try:
        return contracts.dumps(value)
    except contracts.JSONError:
        return repr(value)[:16384]
