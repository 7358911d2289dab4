"""Drive a scenario through the REAL ingest paths: HTTP for watches and pain, MQTT for
LEVER units, a FIT upload for the late sync. Never Kafka or the database directly.

Pacing follows event time: day after day (UTC), every athlete's runs of that day are
posted concurrently in batches of ``batch_size`` samples, the LEVER units publish that
day's heartbeats, telemetry and setpoint changes over MQTT (QoS 1, one connection per
unit with its own credentials), and the day's pain reports are posted. MQTT is flow
controlled by what the bridge has put into Kafka (the broker would otherwise queue, and
past its queue limit drop, messages for a slow subscriber).

Devices retry the way real ones do (:class:`RetryPolicy`): a request the gateway refused
with 503 (Kafka did not acknowledge), a 502/504 from a proxy, or one that got no answer
(connection refused or reset, timeout) is sent again, unchanged — the same record ids, so
a retry of something that did arrive is a harmless duplicate — after an exponential
back-off that honours ``Retry-After``. ``make chaos`` relies on it while it kills the
gateway and stops Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from kneeload.demo.fitfile import session_fit
from kneeload.demo.sim import PainEntry, Scenario, SessionPlan, UnitMessage

__all__ = ["Counters", "Driver", "DriverError", "RetryPolicy"]

#: statuses a device retries: the gateway's 503 (Kafka did not acknowledge; Retry-After),
#: and what a proxy in front of it answers while it restarts
RETRY_STATUSES = frozenset({502, 503, 504})


class DriverError(RuntimeError):
    """A request failed in a way the demo cannot explain away (5xx, auth, transport)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a device retries a request that was refused (502/503/504) or not answered.

    ``deadline_s`` bounds the time spent on one request (0: no retry — the first failure
    is final). Delays double from ``backoff_initial_s`` up to ``backoff_max_s``; a
    ``Retry-After`` header (seconds) replaces the computed delay, capped the same way.
    """

    deadline_s: float = 0.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0

    def delay_s(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            try:
                return min(self.backoff_max_s, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: fall back to the computed back-off
        return min(self.backoff_max_s, self.backoff_initial_s * 2 ** (attempt - 1))


@dataclass
class Counters:
    """What the gateways answered (their per-record results), by path."""

    watch_accepted: int = 0
    watch_duplicates: int = 0
    pain_accepted: int = 0
    mqtt_published: int = 0
    fit_accepted: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    pacing_timeouts: int = 0
    bad_requests: list[dict[str, Any]] = field(default_factory=list)
    #: requests sent again, by why ("503 kafka_unavailable", "ConnectError", ...)
    retries: Counter[str] = field(default_factory=Counter)

    @property
    def ingested(self) -> int:
        return self.watch_accepted + self.pain_accepted + self.mqtt_published + self.fit_accepted


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _pain_json(p: PainEntry) -> dict[str, Any]:
    d: dict[str, Any] = {
        "report_id": p.report_id,
        "time": _iso(p.time),
        "pain_nrs": p.pain_nrs,
        "context": p.context,
        "session_id": p.session_id,
    }
    if p.session_rpe is not None:
        d["session_rpe"] = p.session_rpe
    if p.swelling is not None:
        d["swelling"] = p.swelling
    return d


def _unit_json(m: UnitMessage) -> tuple[str, dict[str, Any]]:
    if m.kind == "setpoint":
        return "setpoint", {
            "record_id": m.record_id,
            "time": _iso(m.time),
            "bws_pct": m.bws_pct,
            "previous_bws_pct": m.previous_bws_pct,
            "set_by": m.set_by,
        }
    return m.kind, {
        "record_id": m.record_id,
        "time": _iso(m.time),
        "kind": m.kind,
        "belt_speed_mps": m.belt_speed_mps,
        "incline_pct": m.incline_pct,
        "bws_pct": m.bws_pct,
        "measured_support_pct": m.measured_support_pct,
    }


class Driver:
    """Sends a :class:`Scenario` to a running gateway and MQTT bridge."""

    def __init__(
        self,
        sc: Scenario,
        *,
        base_url: str,
        admin_token: str,
        mqtt_url: str,
        mqtt_root: str,
        batch_size: int = 400,
        concurrency: int = 12,
        mqtt_window: int = 600,
        kafka_mqtt_count: Callable[[], Awaitable[int]] | None = None,
        worker_telemetry_lag: Callable[[], Awaitable[int]] | None = None,
        retry: RetryPolicy = RetryPolicy(),
        mqtt_forward_wait_s: float = 120.0,
        telemetry_pacing_s: float = 60.0,
    ) -> None:
        self.sc = sc
        self.base_url = base_url.rstrip("/")
        self.admin_token = admin_token
        self.mqtt_url = mqtt_url
        self.mqtt_root = mqtt_root
        self.batch_size = batch_size
        self.sem = asyncio.Semaphore(concurrency)
        self.mqtt_window = mqtt_window
        self.kafka_mqtt_count = kafka_mqtt_count
        self.worker_telemetry_lag = worker_telemetry_lag
        self.retry = retry
        self.mqtt_forward_wait_s = mqtt_forward_wait_s
        self.telemetry_pacing_s = telemetry_pacing_s
        #: awaited before each step of :meth:`run` ("<date> units|sessions|pain"): lets a
        #: caller act at fixed points of the workload (``make chaos`` injects faults there)
        self.before_step: Callable[[int, str], Awaitable[None]] | None = None
        self.keys: dict[str, str] = {}
        self._mqtt_in_kafka = 0
        self.malformed_result: dict[str, Any] = {}
        self.counters = Counters()
        self.on_samples: Callable[[int], None] = lambda n: None
        self.on_mqtt: Callable[[int], None] = lambda n: None
        self.on_pain: Callable[[int], None] = lambda n: None
        self._http: httpx.AsyncClient | None = None

    # ------------------------------------------------------------------ plumbing

    async def __aenter__(self) -> Driver:
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(60.0, connect=10.0),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()

    @property
    def http(self) -> httpx.AsyncClient:
        assert self._http is not None, "use `async with Driver(...)`"
        return self._http

    async def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request, retried per :attr:`retry` while refused (502/503/504) or unanswered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry.deadline_s
        attempt = 0
        while True:
            attempt += 1
            why: str
            retry_after = None
            try:
                r = await self.http.request(
                    method, path, content=content, headers=headers, params=params
                )
            except httpx.TransportError as exc:  # refused, reset, timed out: no answer
                if loop.time() >= deadline:
                    raise
                why = type(exc).__name__
            else:
                if r.status_code not in RETRY_STATUSES or loop.time() >= deadline:
                    return r
                retry_after = r.headers.get("retry-after")
                code = ""
                with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                    code = " " + str(r.json()["error"]["code"])
                why = f"{r.status_code}{code}"
            self.counters.retries[why] += 1
            wait = self.retry.delay_s(attempt, retry_after)
            await asyncio.sleep(max(0.0, min(wait, deadline - loop.time())))

    async def _admin(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await self._send(
            method,
            path,
            content=orjson.dumps(body),
            headers={
                "Authorization": f"Bearer {self.admin_token}",
                "Content-Type": "application/json",
            },
        )
        if r.status_code >= 300:
            raise DriverError(f"{method} {path}: HTTP {r.status_code} {r.text[:500]}")
        return dict(r.json())

    def _device_headers(
        self, device_id: str, content_type: str = "application/json"
    ) -> dict[str, str]:
        return {
            "X-Device-Id": device_id,
            "X-Api-Key": self.keys[device_id],
            "Content-Type": content_type,
        }

    def _account(
        self, what: str, r: httpx.Response, *, expect_rejections: bool = False
    ) -> dict[str, Any]:
        """Count a device request's per-record results; raise on anything unexplained."""
        self.counters.requests += 1
        if r.status_code >= 500 or r.status_code in (401, 403, 404, 415):
            raise DriverError(f"{what}: HTTP {r.status_code} {r.text[:500]}")
        body: dict[str, Any] = r.json()
        if "error" in body:  # the whole request was refused (malformed JSON, too large, ...)
            err = body["error"]
            self.counters.rejected += 1
            self.counters.rejected_by_reason[str(err.get("code"))] += 1
            self.counters.bad_requests.append(
                {"what": what, "status": r.status_code, "code": err.get("code")}
            )
            if not expect_rejections:
                raise DriverError(f"{what}: refused, HTTP {r.status_code}: {err}")
            return body
        n_rej = int(body.get("rejected", 0))
        if n_rej:
            self.counters.rejected += n_rej
            for res in body.get("results", []):
                if res.get("result") == "rejected":
                    self.counters.rejected_by_reason[str(res.get("reason"))] += 1
            if not expect_rejections:
                bad = [x for x in body.get("results", []) if x.get("result") == "rejected"][:3]
                raise DriverError(f"{what}: {n_rej} record(s) rejected unexpectedly: {bad}")
        return body

    # -------------------------------------------------------------- registration

    async def register(self) -> None:
        """Team, athletes, watches, clinic units and unit assignments via the admin path."""
        sc = self.sc
        for a in sc.athletes:
            await self._admin(
                "PUT",
                f"/admin/athletes/{a.athlete_id}",
                {
                    "team_id": a.team_id,
                    "body_mass_kg": a.body_mass_kg,
                    "time_zone": a.time_zone,
                    "display_name": a.display_name,
                    "active": True,
                },
            )
            rec = await self._admin(
                "POST",
                "/admin/devices",
                {
                    "device_id": a.device_id,
                    "kind": "watch",
                    "athlete_id": a.athlete_id,
                },
            )
            self.keys[a.device_id] = _api_key(rec)
        for u in sc.units:
            rec = await self._admin(
                "POST",
                "/admin/devices",
                {
                    "device_id": u.unit_id,
                    "kind": "lever_unit",
                    "clinic_id": u.clinic_id,
                    "max_bws_pct": u.max_bws_pct,
                    "timeout_s": sc.config.unit_timeout_s,
                },
            )
            self.keys[u.unit_id] = _api_key(rec)
        for a in sc.athletes:
            if a.unit_id:
                await self._admin(
                    "PUT", f"/admin/units/{a.unit_id}/assignment", {"athlete_id": a.athlete_id}
                )

    # --------------------------------------------------------------- watch + pain

    async def _post_samples(
        self, plan: SessionPlan, records: list[dict[str, Any]], expect_rejections: bool = False
    ) -> None:
        body = {"session_id": plan.session_id, "sub_sport": plan.sub_sport, "samples": records}
        async with self.sem:
            r = await self._send(
                "POST",
                "/v1/watch/samples",
                content=orjson.dumps(body),
                headers=self._device_headers(plan.device_id),
            )
        out = self._account(f"samples {plan.session_id}", r, expect_rejections=expect_rejections)
        self.counters.watch_accepted += int(out.get("accepted", 0))
        self.counters.watch_duplicates += int(out.get("duplicates", 0))
        self.on_samples(len(records))

    async def send_session(self, plan: SessionPlan) -> None:
        smp = plan.samples()
        n = len(smp)
        first = 0
        if plan.session_id == self.sc.malformed.session_id:
            # (d) this session's first upload carries the malformed records among valid ones
            self.malformed_result = await self.send_malformed()
            first = self.sc.malformed.n_valid
        # a session's batches go one after another (a phone app uploads in order)
        for i in range(first, n, self.batch_size):
            await self._post_samples(
                plan, smp.records(plan.device_id, i, min(n, i + self.batch_size))
            )

    async def send_pain(self, reports: list[PainEntry]) -> None:
        async def one(p: PainEntry) -> None:
            device = self.sc.by_athlete[p.athlete_id].device_id
            async with self.sem:
                r = await self._send(
                    "POST",
                    "/v1/pain",
                    content=orjson.dumps(_pain_json(p)),
                    headers=self._device_headers(device),
                )
            out = self._account(f"pain {p.report_id}", r)
            self.counters.pain_accepted += int(out.get("accepted", 0))
            self.on_pain(1)

        async def athlete(items: list[PainEntry]) -> None:
            for p in items:  # one athlete's app sends its reports in order
                await one(p)

        await asyncio.gather(*(athlete(v) for v in _by_athlete(reports, lambda p: p.time)))

    async def send_sessions(self, plans: list[SessionPlan]) -> None:
        """Sessions of several athletes side by side; one athlete's one after another, in
        start order (one watch or phone app uploads in order)."""

        async def athlete(items: list[SessionPlan]) -> None:
            for plan in items:
                await self.send_session(plan)

        await asyncio.gather(*(athlete(v) for v in _by_athlete(plans, lambda s: s.start)))

    async def send_malformed(self) -> dict[str, Any]:
        """Planted situation (d): a batch mixing invalid records with valid ones, plus two
        requests that are refused whole (broken JSON; a pain report of 11/10)."""
        m = self.sc.malformed
        plan = next(s for s in self.sc.sessions if s.session_id == m.session_id)
        body = {"session_id": m.session_id, "sub_sport": plan.sub_sport, "samples": list(m.records)}
        r = await self._send(
            "POST",
            "/v1/watch/samples",
            content=orjson.dumps(body),
            headers=self._device_headers(m.device_id),
        )
        out = self._account("malformed batch", r, expect_rejections=True)
        self.counters.watch_accepted += int(out.get("accepted", 0))
        self.counters.watch_duplicates += int(out.get("duplicates", 0))
        broken = b'{"session_id": "x", "samples": [{"record_id": "a", "time": '
        r2 = await self._send(
            "POST", "/v1/watch/samples", content=broken, headers=self._device_headers(m.device_id)
        )
        self._account("broken JSON", r2, expect_rejections=True)
        a = self.sc.by_athlete[m.athlete_id]
        pain11 = {
            "report_id": f"pain-{a.athlete_id}-eleven",
            "time": _iso(plan.end),
            "pain_nrs": 11,
            "context": "after",
            "session_id": m.session_id,
        }
        r3 = await self._send(
            "POST",
            "/v1/pain",
            content=orjson.dumps(pain11),
            headers=self._device_headers(a.device_id),
        )
        self._account("pain 11/10", r3, expect_rejections=True)
        return {
            "batch_status": r.status_code,
            "accepted": out.get("accepted"),
            "rejected": out.get("rejected"),
            "reasons": sorted(
                {
                    str(x.get("reason"))
                    for x in out.get("results", [])
                    if x.get("result") == "rejected"
                }
            ),
            "broken_json_status": r2.status_code,
            "pain_11_status": r3.status_code,
            "planted_invalid": len(m.invalid),
            "planted_valid": m.n_valid,
        }

    async def upload_fit(self, plan: SessionPlan) -> dict[str, Any]:
        """Planted situation (e): the late watch sync, as a FIT file upload."""
        data = session_fit(plan)
        r = await self._send(
            "POST",
            "/v1/activities",
            params={"session_id": plan.session_id},
            content=data,
            headers=self._device_headers(plan.device_id, "application/vnd.ant.fit"),
        )
        out = self._account(f"FIT upload {plan.session_id}", r)
        self.counters.fit_accepted += int(out.get("accepted", 0))
        return {
            "status": r.status_code,
            "bytes": len(data),
            "accepted": out.get("accepted"),
            "duplicates": out.get("duplicates"),
            "summary": out.get("summary"),
        }

    # ---------------------------------------------------------------------- MQTT

    async def _mqtt_flow_control(self, window: int | None = None) -> None:
        """Wait while more than ``window`` published messages are not yet in Kafka."""
        if self.kafka_mqtt_count is None:
            return
        limit = self.mqtt_window if window is None else window
        if self.counters.mqtt_published - self._mqtt_in_kafka <= limit:
            return
        deadline = asyncio.get_running_loop().time() + self.mqtt_forward_wait_s
        while asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(Exception):  # Kafka may be briefly unreachable
                self._mqtt_in_kafka = await self.kafka_mqtt_count()
            if self.counters.mqtt_published - self._mqtt_in_kafka <= limit:
                return
            await asyncio.sleep(0.1)
        raise DriverError(
            f"the MQTT bridge stopped forwarding (Kafka topic offsets did not advance in "
            f"{self.mqtt_forward_wait_s:.0f} s)"
        )

    async def _telemetry_pacing(self, allowance: int) -> None:
        """Keep the worker's BWS timeline within a day or two of the samples we send.

        The worker joins samples to treadmill telemetry on event time and keeps the BWS
        timeline only within its lateness horizon of the athlete's watermark; if it ran
        days ahead on watch samples while telemetry waited in its queue, LEVER runs
        would be stored as overground. So before a day's samples, wait (bounded) until
        the worker has consumed all but ``allowance`` treadmill messages.
        """
        if self.worker_telemetry_lag is None:
            return
        deadline = asyncio.get_running_loop().time() + self.telemetry_pacing_s
        while await self._lag_or_none() > allowance:
            if asyncio.get_running_loop().time() > deadline:
                self.counters.pacing_timeouts += 1
                return
            await asyncio.sleep(0.2)

    async def _lag_or_none(self) -> int:
        """The worker's telemetry lag; while Kafka cannot be asked, "not caught up"."""
        assert self.worker_telemetry_lag is not None
        try:
            return await self.worker_telemetry_lag()
        except Exception:
            return 1 << 62

    async def send_unit_messages(self, clients: dict[str, Any], msgs: list[UnitMessage]) -> None:
        """Publish in time order; one unit's messages in sequence, units side by side."""
        by_unit: dict[str, list[UnitMessage]] = {}
        for m in msgs:
            by_unit.setdefault(m.unit_id, []).append(m)

        async def unit(uid: str, items: list[UnitMessage]) -> None:
            client = clients[uid]
            # QoS 1 publishes are issued in order and awaited in chunks (paho sends them in
            # call order; awaiting each PUBACK before the next publish would be needlessly slow)
            for i in range(0, len(items), 100):
                chunk = items[i : i + 100]
                pubs = []
                for m in chunk:
                    kind, payload = _unit_json(m)
                    topic = f"{self.mqtt_root}/{uid}/{kind}"
                    pubs.append(client.publish(topic, orjson.dumps(payload), qos=1))
                await asyncio.gather(*pubs)
                self.counters.mqtt_published += len(chunk)
                self.on_mqtt(len(chunk))
                await self._mqtt_flow_control()

        await asyncio.gather(
            *(unit(u, sorted(v, key=lambda m: m.time)) for u, v in by_unit.items())
        )

    def mqtt_clients(self) -> dict[str, Any]:
        """One aiomqtt client per unit, authenticated with the unit's id and API key."""
        import logging

        import aiomqtt

        quiet = logging.getLogger("kneeload.demo.mqtt")
        quiet.setLevel(logging.ERROR)
        u = urlsplit(self.mqtt_url)
        return {
            unit.unit_id: aiomqtt.Client(
                hostname=u.hostname or "127.0.0.1",
                port=u.port or 1883,
                username=unit.unit_id,
                password=self.keys[unit.unit_id],
                identifier=f"{unit.unit_id}-{id(self) % 100000}",
                clean_session=True,
                max_inflight_messages=100,
                logger=quiet,
                max_queued_outgoing_messages=0,
            )
            for unit in self.sc.units
        }

    # ---------------------------------------------------------------------- days

    def steps(self) -> int:
        """How many times :meth:`run` awaits :attr:`before_step` (3 per day)."""
        return 3 * len(self.sc.days())

    async def run(self, on_day: Callable[[dt.date], None] = lambda d: None) -> None:
        """Send the whole scenario day by day (the late FIT session is held back)."""
        sc = self.sc
        sessions_by_day: dict[dt.date, list[SessionPlan]] = {}
        for s in sc.streamed_sessions:
            sessions_by_day.setdefault(s.start.astimezone(dt.UTC).date(), []).append(s)
        unit_msgs: dict[dt.date, list[UnitMessage]] = {}
        for m in sc.heartbeats:
            unit_msgs.setdefault(m.time.date(), []).append(m)
        for s in sc.sessions:
            for m in s.unit_messages():
                unit_msgs.setdefault(m.time.astimezone(dt.UTC).date(), []).append(m)
        pain_by_day: dict[dt.date, list[PainEntry]] = {}
        for p in sc.pain:
            pain_by_day.setdefault(p.time.astimezone(dt.UTC).date(), []).append(p)
        async with contextlib.AsyncExitStack() as stack:
            clients = self.mqtt_clients()
            for c in clients.values():
                await stack.enter_async_context(c)
            recent = 0
            step = 0

            async def at(what: str) -> None:
                nonlocal step
                if self.before_step is not None:
                    await self.before_step(step, what)
                step += 1

            for day in sc.days():
                # the units' telemetry first, in Kafka before the watch samples it applies to
                # (the worker takes a sample's BWS from the unit's recent telemetry)
                todays = unit_msgs.get(day, [])
                await at(f"{day} units")
                await self.send_unit_messages(clients, todays)
                await self._mqtt_flow_control(window=0)
                await self._telemetry_pacing(2 * (len(todays) + recent))
                recent = len(todays)
                await at(f"{day} sessions")
                await self.send_sessions(sessions_by_day.get(day, []))
                # pain after the runs it refers to (the worker ties reports to sessions)
                await at(f"{day} pain")
                await self.send_pain(pain_by_day.get(day, []))
                on_day(day)
            await self._mqtt_flow_control()


def _by_athlete(items: list[Any], when: Callable[[Any], dt.datetime]) -> list[list[Any]]:
    """``items`` (sessions or pain reports) grouped by athlete, each group in time order."""
    groups: dict[str, list[Any]] = {}
    for x in items:
        aid = x.athlete_id if hasattr(x, "athlete_id") else x.athlete.athlete_id
        groups.setdefault(aid, []).append(x)
    return [sorted(v, key=when) for _, v in sorted(groups.items())]


def _api_key(rec: dict[str, Any]) -> str:
    for k in ("api_key", "key"):
        if isinstance(rec.get(k), str):
            return str(rec[k])
    raise DriverError(f"the admin reply holds no api_key: {list(rec)}")
