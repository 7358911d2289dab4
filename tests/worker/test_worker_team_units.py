"""The worker against the real broker: a team's repeated-measures correlation arrives on
the correlations topic (equal to core's rmcorr on the worker's own daily loads), and a
LEVER unit goes offline after the timeout_s of its registry record, not the default."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from kneeload.contracts import is_valid
from kneeload.core.correlation import rmcorr
from kneeload.settings import Settings

from .helpers import Collector, Kafka, Worker, athlete_record, batches, ensure_topics, iso, samples

D0 = dt.datetime(2024, 7, 1, 7, 0, tzinfo=dt.UTC)
ATHLETES = ("ra", "rb", "rc")
DAYS = 7
#: well under the helpers' WAIT_S: these tests are meant to stay short
WAIT = 90.0


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    prefix = f"{settings.topic_prefix}tu{uuid.uuid4().hex[:6]}."
    e = {
        "KNEELOAD_TOPIC_PREFIX": prefix,
        "KNEELOAD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        # the default is far longer than the unit's own timeout_s below
        "KNEELOAD_WORKER_UNIT_TIMEOUT_S": "120",
    }
    ensure_topics(e)
    return e


def _device(uid: str, timeout_s: int | None) -> dict[str, Any]:
    return {
        "device_id": uid,
        "kind": "lever_unit",
        "clinic_id": "cl1",
        "athlete_id": None,
        "api_key_sha256": "a" * 64,
        "revoked": False,
        "max_bws_pct": 80.0,
        "timeout_s": timeout_s,
        "updated_at": "2024-01-01T00:00:00Z",
    }


def _heartbeat(uid: str, i: int) -> dict[str, Any]:
    return {
        "record_id": f"{uid}:{i}",
        "unit_id": uid,
        "clinic_id": "cl1",
        "time": iso(D0 + dt.timedelta(seconds=i)),
        "kind": "heartbeat",
        "belt_speed_mps": None,
        "incline_pct": None,
        "bws_pct": None,
        "measured_support_pct": None,
        "athlete_id": None,
    }


def _pain(aid: str, d: int) -> int:
    return (3 * d + ATHLETES.index(aid)) % 7 + d // 3


def test_team_rmcorr_event_and_unit_offline_after_its_own_timeout(
    env: dict[str, str], tmp_path: Path
) -> None:
    bootstrap, prefix = env["KNEELOAD_KAFKA_BOOTSTRAP"], env["KNEELOAD_TOPIC_PREFIX"]
    k = Kafka(bootstrap, prefix)
    k.send("registry.devices", "u-short", _device("u-short", 5))
    k.send("registry.devices", "u-default", _device("u-default", None))
    for aid in ATHLETES:
        k.send("registry.athletes", aid, athlete_record(aid, "tm"))
    k.flush()
    # 3 athletes x 7 days: a session a day (length varies), next-morning pain (lag 1)
    for d in range(DAYS):
        start = D0 + dt.timedelta(days=d)
        for aid in ATHLETES:
            n = 90 + 30 * ((d * 5 + ATHLETES.index(aid)) % 4)
            for b in batches(aid, "tm", samples(start, n, tag=aid), session_id=f"{aid}-{d}"):
                k.send("watch.samples", aid, b)
            rep = {
                "report_id": f"{aid}-p{d}",
                "athlete_id": aid,
                "team_id": "tm",
                "time": iso(start + dt.timedelta(hours=23)),
                "pain_nrs": _pain(aid, d),
                "context": "next_morning",
                "session_id": None,
            }
            k.send("pain.reports", aid, rep)
    k.flush()

    def team_lag1(c: Collector) -> dict[str, Any] | None:
        evs = [
            e
            for e in c.latest["correlations"].values()
            if e["scope"] == "team" and e["lag_days"] == 1
        ]
        return max(evs, key=lambda e: (e["time"], e["n"])) if evs else None

    def expected(c: Collector) -> Any:
        loads = {(e["athlete_id"], e["date"]): e["load"] for e in c.latest["daily.load"].values()}
        subj, xs, ys = [], [], []
        for aid in sorted(ATHLETES):
            for d in range(DAYS):
                subj.append(aid)
                xs.append(loads.get((aid, (D0 + dt.timedelta(days=d)).date().isoformat()), 0.0))
                ys.append(float(_pain(aid, d)))
        return rmcorr(subj, xs, ys)

    def team_done(c: Collector) -> bool:
        ev = team_lag1(c)
        return (
            ev is not None
            and ev["n"] == len(ATHLETES) * DAYS
            and ev["r"] is not None
            and ev["r"] == pytest.approx(expected(c).r, rel=1e-9)
        )

    c = Collector(bootstrap, prefix)
    w = Worker(env, tmp_path / "worker.log")
    t0 = time.monotonic()
    try:
        # the units start beating once the worker runs (its processing clock counts)
        c.wait(lambda c: bool(c.latest["load.samples"]), WAIT)
        for i in range(3):
            k.send("treadmill.telemetry", "u-short", _heartbeat("u-short", i))
            k.send("treadmill.telemetry", "u-default", _heartbeat("u-default", i))
        k.flush()
        c.wait(team_done, WAIT, lambda c: f"latest team event {team_lag1(c)}")
        ev = team_lag1(c)
        assert ev is not None and is_valid("correlation", ev), ev
        want = expected(c)
        assert ev["df"] == want.df == len(ATHLETES) * DAYS - len(ATHLETES) - 1
        assert (ev["ci_low"], ev["ci_high"], ev["p_value"]) == pytest.approx(
            (want.ci_low, want.ci_high, want.p_value), rel=1e-9
        )
        assert ev["id"] == f"team:tm:pfj_load_mpa_s:1:rmcorr:{ev['time'][:10]}"
        assert ev["athlete_id"] is None and ev["team_id"] == "tm" and ev["method"] == "rmcorr"

        def offline(c: Collector, uid: str) -> list[dict[str, Any]]:
            return [
                a
                for a in c.latest["alerts"].values()
                if a["kind"] == "unit_offline" and a["unit_id"] == uid
            ]

        c.wait(lambda c: bool(offline(c, "u-short")), WAIT)
        (alert,) = offline(c, "u-short")
        assert alert["values"]["timeout_s"] == 5.0 and alert["clinic_id"] == "cl1"
        if time.monotonic() - t0 < 110:  # (on a very slow box the default could be due)
            # the unit without timeout_s keeps the (much longer) default: still online
            assert not offline(c, "u-default")
        status = [s for s in c.latest["unit.status"].values() if s["unit_id"] == "u-short"]
        assert any(not s["online"] for s in status)
        assert not c.latest["deadletter"]
    finally:
        w.stop()
        c.close()
        k.close()
