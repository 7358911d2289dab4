"""``kneeload rebuild-state``: the worker's tables rebuilt from PostgreSQL.

Stop-the-world (every worker stopped). In one REPEATABLE READ snapshot of the database:

1. ``sink_offsets`` of the sink's group: the raw-topic offsets the database covers.
2. Per athlete, a **replay window** that starts at a local midnight before everything the
   live state still holds (watermark − lateness horizon − session gap − 2 days), moved
   back while a stored session overlaps it, so no session or day is cut in two.
3. Before the window: the stored final ``daily_load`` values go through the ACWR
   tracker (:meth:`AthleteProcessor.seed_days`) interleaved in time with the pain
   reports (:meth:`AthleteProcessor.on_pain`: baseline inputs, correlation pairs,
   pain-alert cooldowns).
4. Inside the window: the stored raw inputs (watch batches with their samples, pain
   reports, BWS timeline from the LEVER units' telemetry and setpoints replayed through
   :class:`UnitProcessor`) in event-time order through the worker's own
   :class:`AthleteProcessor` — sessions, chunks, minutes, days exactly as the worker
   builds them; outputs are discarded.
5. The team table from the rebuilt athletes: each athlete's pairs snapshot
   (:meth:`AthleteProcessor.pairs_snapshot`) through the team agent's own
   :class:`TeamProcessor` (:func:`rebuild_teams`); the team correlations it computes are
   the stored ones, so nothing is re-published.
6. Reconciled with the derived tables: revisions continue above the stored ones (the
   sink keeps only newer revisions), what the database already holds is not re-published,
   what it lacks stays dirty and is published by the next worker; alert cooldowns from
   the stored alerts.

Then the changelog topics are recreated and filled (raw utf-8 key; value orjson, the
athletes' state split hot/cold into a few MessagePack records each, as the worker writes
it (:mod:`kneeload.worker.statestore`); in the
owner's partition: what the tables' memory store recovers), and the worker's consumer
group is set to the sink's offsets for the raw topics (earliest where the sink has none)
and to the end of the internal topics.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from kneeload.contracts import wire
from kneeload.settings import Settings
from kneeload.topics import (
    DAILY_LOAD,
    DEADLETTER,
    LOAD_MINUTE,
    PAIN_REPORTS,
    REGISTRY_ASSIGNMENTS,
    REGISTRY_ATHLETES,
    SESSIONS,
    TREADMILL_SETPOINTS,
    TREADMILL_TELEMETRY,
    WATCH_SAMPLES,
    catalogue,
)
from kneeload.worker.athlete import METRIC, AthleteProcessor, WorkerConfig, new_state
from kneeload.worker.fleet import BWS_BY_ATHLETE, UnitProcessor, fleet_thresholds, new_unit
from kneeload.worker.state import (
    AthleteState,
    TeamDirectory,
    TeamEntry,
    UnitState,
    encode_team,
    encode_unit,
)
from kneeload.worker.statestore import records_of
from kneeload.worker.team import TeamProcessor
from kneeload.worker.timeutil import DayCalendar, iso, parse_ms

DAY_MS = 86_400_000
RAW_TOPICS = (
    WATCH_SAMPLES,
    REGISTRY_ATHLETES,
    PAIN_REPORTS,
    TREADMILL_TELEMETRY,
    TREADMILL_SETPOINTS,
    REGISTRY_ASSIGNMENTS,
)


@dataclass
class Rebuilt:
    athletes: dict[str, AthleteState] = field(default_factory=dict)
    chunks: dict[str, bytes] = field(default_factory=dict)
    units: dict[str, UnitState] = field(default_factory=dict)
    teams: dict[str, TeamEntry | TeamDirectory] = field(default_factory=dict)
    #: (full topic name, partition) -> next offset the database covers
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    replayed_batches: int = 0
    #: derived events of replayed history the database lacks (``--since``): (topic, key, event)
    publish: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


def _ms(t: dt.datetime) -> int:
    return round(t.timestamp() * 1000)


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


def _stored_episodes(q: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """Per athlete and condition, the episode state (kneeload.core.episodes.ConditionState as
    plain JSON) at its latest stored change: open with its highest severity, or closed."""
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    rank = {"info": 0, "warning": 1, "critical": 2}
    rows = q(
        "SELECT athlete_id, kind, episode_id, episode_transition, event_time, severity "
        "FROM kneeload.alerts WHERE athlete_id IS NOT NULL "
        "ORDER BY athlete_id, kind, event_time, alert_id"
    ).fetchall()
    for aid, kind, ep, tr, t, sev in rows:
        cond = f"{kind}:athlete:{aid}"
        prev = out[aid].get(cond)
        t_ms = _ms(t)
        state: dict[str, Any] = {"last_ms": t_ms, "last_event_id": "", "episode_id": None,
                                 "severity": None, "seq": 0}  # fmt: skip
        if tr != "resolved":
            same = prev is not None and prev["episode_id"] == ep
            top = max(sev, prev["severity"], key=rank.__getitem__) if prev and same else sev
            seq = prev["seq"] + 1 if prev and same else 0
            state.update(episode_id=ep, severity=top, seq=seq)
        out[aid][cond] = state
    return out


def build(
    conn: Any, settings: Settings, now_ms: int | None = None, since: dt.date | None = None
) -> Rebuilt:
    """The worker's state from the database (``conn``: a psycopg connection).

    ``since``: replay every athlete's stored samples from that local date on, not only the
    recent window. For history stored while the running worker did not count it (imported
    after live data, older than the lateness horizon): the sessions, minutes and days the
    replay computes for it and the database lacks (or holds with other values) are returned
    in :attr:`Rebuilt.publish`; alerts about that history are not raised."""
    cfg = WorkerConfig.from_settings(settings)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    out = Rebuilt()
    proc = AthleteProcessor(cfg, out.chunks)
    proc.drop_published_minutes = False  # _reconcile reads every session's minutes
    fleet = UnitProcessor(
        settings.worker_unit_timeout_s,
        settings.worker_unit_status_interval_s,
        cfg.bws_stale_s,
        fleet_thresholds(settings),
    )
    q = conn.execute
    for topic, part, off in q(
        "SELECT topic, kafka_partition, next_offset FROM kneeload.sink_offsets "
        "WHERE consumer_group = %s",
        (settings.storage_sink_group,),
    ).fetchall():
        out.offsets[(topic, int(part))] = int(off)

    # ---- registry
    states: dict[str, AthleteState] = {}
    for aid, team, mass, tz, cal in q(
        "SELECT athlete_id, team_id, body_mass_kg, time_zone, calibration FROM kneeload.athletes"
    ).fetchall():
        st = states[aid] = new_state(aid, cfg)
        proc.on_registry(
            st, {"team_id": team, "body_mass_kg": _f(mass), "time_zone": tz, "calibration": cal}
        )
    wms = dict(
        q("SELECT athlete_id, max(time) FROM kneeload.watch_samples GROUP BY athlete_id").fetchall()
    )
    for aid in wms:
        states.setdefault(aid, new_state(aid, cfg))
    sessions_db: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in q(
        "SELECT athlete_id, session_id, start_time, end_time, status, revision, samples, "
        "pfj_load_mpa_s FROM kneeload.sessions"
    ).fetchall():
        sessions_db[row[0]].append(row)

    # ---- replay window per athlete
    keep_ms = (cfg.lateness_horizon_s + cfg.session_gap_s) * 1000 + 2 * DAY_MS
    window: dict[str, int] = {}
    for aid, wm in wms.items():
        c = DayCalendar(states[aid].tz or "UTC")
        w = _sod(c, c.date_iso(_ms(wm) - int(keep_ms)))
        moved = True
        while moved:
            moved = False
            for r in sessions_db.get(aid, []):
                s0, s1 = _ms(r[2]), _ms(r[3])
                if s0 < w <= s1 + cfg.session_gap_s * 1000:
                    w = _sod(c, c.date_iso(s0))
                    moved = True
        if since is not None:
            w = min(w, _sod(c, since.isoformat()))
        window[aid] = w
    w_min = min(window.values(), default=now)

    # ---- units: assignments, then telemetry and setpoints (from a day before any window)
    for uid, clinic, athlete, timeout in q(
        "SELECT unit_id, clinic_id, athlete_id, timeout_s FROM kneeload.units"
    ).fetchall():
        u = out.units[uid] = new_unit(uid)
        fleet.on_assignment(u, {"athlete_id": athlete, "clinic_id": clinic})
        fleet.on_device(u, {"timeout_s": timeout})
    since = dt.datetime.fromtimestamp((w_min - DAY_MS) / 1000, dt.UTC)
    unit_rows = q(
        "SELECT time, unit_id, clinic_id, kind, bws_pct, measured_support_pct, athlete_id, "
        "true FROM kneeload.treadmill_telemetry WHERE time >= %s "
        "UNION ALL SELECT time, unit_id, clinic_id, 'setpoint', bws_pct, NULL, athlete_id, "
        "false FROM kneeload.bws_setpoints WHERE time >= %s ORDER BY 1, 2",
        (since, since),
    ).fetchall()
    bws: dict[str, list[tuple[int, int, str, dict[str, Any]]]] = defaultdict(list)
    for t, uid, clinic, kind, b, support, athlete, is_tel in unit_rows:
        u = out.units.setdefault(uid, new_unit(uid))
        rec: dict[str, Any] = {
            "unit_id": uid, "clinic_id": clinic, "time": iso(_ms(t)), "kind": kind,
            "bws_pct": _f(b), "athlete_id": athlete,
        }  # fmt: skip
        if is_tel:
            rec["measured_support_pct"] = _f(support)
        for topic, key, ev in fleet.on_telemetry(u, rec, now):
            if topic == BWS_BY_ATHLETE:
                bws[key].append((int(ev["t"]), 0, "bws", ev))

    # ---- per athlete: seed before the window, replay inside it
    cooldowns: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for aid, kind, t, sev in q(
        "SELECT DISTINCT ON (athlete_id, kind) athlete_id, kind, event_time, severity "
        "FROM kneeload.alerts WHERE athlete_id IS NOT NULL "
        "ORDER BY athlete_id, kind, event_time DESC"
    ).fetchall():
        cooldowns[aid][f"{kind}:athlete:{aid}"] = [t.astimezone(dt.UTC).isoformat(), sev]
    episodes = _stored_episodes(q)
    for aid, st in states.items():
        w = window.get(aid, now)
        c = DayCalendar(st.tz or "UTC")
        w_date = c.date_iso(w)
        events: list[tuple[int, int, str, Any]] = []
        days_db = q(
            "SELECT date, load, status, revision, corrected, ewma_acwr, ctl "
            "FROM kneeload.daily_load WHERE athlete_id = %s AND metric = %s ORDER BY date",
            (aid, METRIC),
        ).fetchall()
        for d, load, *_ in days_db:
            if d.isoformat() < w_date:
                events.append((_sod(c, d.isoformat()), -1, "day", (d.isoformat(), load)))
        for row in q(
            "SELECT time, report_id, team_id, pain_nrs, context, session_id "
            "FROM kneeload.pain_reports WHERE athlete_id = %s",
            (aid,),
        ).fetchall():
            rep = {
                "report_id": row[1], "athlete_id": aid, "team_id": row[2],
                "time": iso(_ms(row[0])), "pain_nrs": int(row[3]), "context": row[4],
                "session_id": row[5],
            }  # fmt: skip
            events.append((_ms(row[0]), 2, "pain", rep))
        events += [e for e in bws.get(aid, []) if e[0] >= w - cfg.bws_stale_s * 1000 - DAY_MS]
        wstart = dt.datetime.fromtimestamp(w / 1000, dt.UTC)
        by_batch: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in q(
            "SELECT batch_id, time, record_id, speed_mps, cadence_spm, ground_contact_ms, "
            "grade_pct FROM kneeload.watch_samples WHERE athlete_id = %s AND batch_id IN "
            "(SELECT batch_id FROM kneeload.watch_samples WHERE athlete_id = %s "
            " GROUP BY batch_id HAVING min(time) >= %s) ORDER BY time, record_id",
            (aid, aid, wstart),
        ).fetchall():
            by_batch[row[0]].append(
                {
                    "time": iso(_ms(row[1])),
                    "record_id": row[2],
                    "speed_mps": _f(row[3]),
                    "cadence_spm": _f(row[4]),
                    "ground_contact_ms": _f(row[5]),
                    "grade_pct": _f(row[6]),
                }
            )
        if by_batch:
            for bid, team, sid in q(
                "SELECT batch_id, team_id, session_id FROM kneeload.watch_batches "
                "WHERE batch_id = ANY(%s)",
                (list(by_batch),),
            ).fetchall():
                rows = by_batch[bid]
                b = {"batch_id": bid, "athlete_id": aid, "team_id": team, "session_id": sid}
                events.append((_first(rows), 1, "batch", {**b, "samples": rows}))
        events.sort(key=lambda e: (e[0], e[1]))
        replayed: dict[tuple[str, str], dict[str, Any]] = {}
        pending: list[tuple[str, float]] = []
        for _t, _o, kind, ev in events:
            if kind == "day":
                pending.append(ev)
                continue
            if pending:
                proc.seed_days(st, pending)
                pending = []
            if kind == "pain":
                proc.on_pain(st, ev, now)
            elif kind == "bws":
                proc.on_bws(st, ev, now)
            else:
                _keep(replayed, proc.on_batch(st, ev, now), since)
                out.replayed_batches += 1
        proc.seed_days(st, pending)
        _keep(replayed, proc.settle(st, now), since)
        _reconcile(q, st, days_db, sessions_db.get(aid, []))
        if replayed:
            out.publish += _missing(q, st, replayed, days_db, sessions_db.get(aid, []))
        for k, v in cooldowns.get(aid, {}).items():
            mine = st.cooldown.get(k)
            if mine is None or mine[0] < v[0]:
                st.cooldown[k] = v
        eps = st.episodes
        for k, e in episodes.get(aid, {}).items():  # the stored story wins when it is newer
            mine = eps.get(k)
            if mine is None or mine["last_ms"] < e["last_ms"]:
                eps[k] = e
        st.last_proc = now
        out.athletes[aid] = st
    out.teams = rebuild_teams(proc, out.athletes)
    return out


def rebuild_teams(
    proc: AthleteProcessor, athletes: dict[str, AthleteState]
) -> dict[str, TeamEntry | TeamDirectory]:
    """The ``teams`` table from rebuilt athlete states: each athlete's latest pairs snapshot,
    which is all the team agent keeps of it (:class:`kneeload.worker.team.TeamProcessor`).

    Athletes go in id order; the team's state depends only on the set of snapshots. The
    events the team processor returns are discarded: the database already holds them.
    """
    store: dict[str, TeamEntry | TeamDirectory] = {}
    teams = TeamProcessor(store)
    for aid in sorted(athletes):
        st = athletes[aid]
        team = st.corr_team
        if team is not None:
            teams.on_pairs(proc.pairs_snapshot(st, team))
    return store


_REPUBLISH = (SESSIONS, LOAD_MINUTE, DAILY_LOAD)


def _keep(
    replayed: dict[tuple[str, str], dict[str, Any]], outs: list[Any], since: dt.date | None
) -> None:
    """Remember the latest replayed session, minute and day events (``--since`` only)."""
    if since is None:
        return
    for topic, _key, ev in outs:
        if topic in _REPUBLISH:
            replayed[(topic, str(ev.get("id") or ev.get("session_id")))] = ev


def _missing(
    q: Any,
    st: AthleteState,
    replayed: dict[tuple[str, str], dict[str, Any]],
    days_db: list[tuple[Any, ...]],
    sessions: list[tuple[Any, ...]],
) -> list[tuple[str, str, dict[str, Any]]]:
    """Replayed sessions, minutes and days no longer in the state (the state keeps only the
    recent window; :func:`_reconcile` handles what it keeps) that the database lacks or holds
    with other numbers, with revisions above the stored ones."""
    aid = st.athlete_id
    s_db = {r[1]: (int(r[5]), int(r[6]), r[7]) for r in sessions}
    d_db = {r[0].isoformat(): r for r in days_db}
    minute_ids = [k[1] for k in replayed if k[0] == LOAD_MINUTE]
    m_db = {
        mid: (int(rev), load)
        for mid, rev, load in q(
            "SELECT id, revision, pfj_load_mpa_s FROM kneeload.minute_load WHERE id = ANY(%s)",
            (minute_ids,),
        ).fetchall()
    } if minute_ids else {}  # fmt: skip
    out: list[tuple[str, str, dict[str, Any]]] = []
    for (topic, key), ev in sorted(replayed.items()):
        if topic == SESSIONS:
            if key in st.sessions:
                continue
            have = s_db.get(key)
            if have and have[1] == ev["samples"] and _close(have[2], ev["pfj_load_mpa_s"]):
                continue
            ev = {**ev, "status": "closed", "revision": max(ev["revision"], (have or (-1,))[0] + 1)}
        elif topic == DAILY_LOAD:
            if ev["date"] in st.days:
                continue
            day = d_db.get(ev["date"])
            if day and _same_day(day, ev["load"], ev["methods"]["ewma"]["acwr"], ev["ctl"]):
                continue
            rev = max(ev["revision"], int(day[3]) + 1 if day else 0)
            ev = {**ev, "status": "final", "revision": rev,
                  "corrected": ev["corrected"] or day is not None}  # fmt: skip
        else:
            if ev["session_id"] in st.sessions:
                continue
            m = m_db.get(key)
            if m and _close(m[1], ev["pfj_load_mpa_s"]):
                continue
            ev = {**ev, "revision": max(ev["revision"], (m or (-1,))[0] + 1)}
        out.append((topic, aid, ev))
    return out


def _sod(c: DayCalendar, date_iso: str) -> int:
    return c.midnight_ms(dt.date.fromisoformat(date_iso))


def _first(rows: list[dict[str, Any]]) -> int:
    return min(parse_ms(r["time"]) for r in rows)


def _reconcile(
    q: Any, st: AthleteState, days_db: list[tuple[Any, ...]], sessions: list[tuple[Any, ...]]
) -> None:
    """Revisions above the stored ones; dirty only what the database does not hold."""
    aid = st.athlete_id
    by_sid = {r[1]: r for r in sessions}
    for sid, s in st.sessions.items():
        r = by_sid.get(sid)
        if r is None or s.acc is None:
            s.dirty = s.acc is not None
            continue
        s.rev = max(s.rev, int(r[5]))
        same = int(r[6]) == s.acc.sums.samples and _close(r[7], s.acc.sums.pfj_load_mpa_s)
        if r[4] == "closed" and s.status == "open" and same:
            s.status = "closed"
        s.dirty = not (same and r[4] == s.status)
        mins = [iso(int(mk)) for mk in s.acc.minutes]
        if mins:
            for mid, rev in q(
                "SELECT id, revision FROM kneeload.minute_load WHERE id = ANY(%s)",
                ([f"{aid}:{m}" for m in mins],),
            ).fetchall():
                mk = str(parse_ms(mid[len(aid) + 1 :]))
                s.minute_rev[mk] = max(s.minute_rev.get(mk, -1), int(rev))
        if s.dirty:
            s.minutes_dirty = sorted(s.acc.minutes)
    by_day = {r[0].isoformat(): r for r in days_db}
    for d, day in st.days.items():
        r = by_day.get(d)
        if r is None:
            day.dirty = day.out is not None
            continue
        day.rev = max(day.rev, int(r[3]))
        db_final = r[2] == "final"
        if db_final:
            day.final = True
        day.corrected = day.corrected or bool(r[4])
        o = day.out
        same = _same_day(r, o["load"], o["methods"]["ewma"]["acwr"], o["ctl"]) if o else (
            r[1] is None
        )  # fmt: skip
        day.dirty = not (same and db_final == day.final)


def _same_day(row: tuple[Any, ...], load: Any, acwr: Any, ctl: Any) -> bool:
    """A stored daily_load row (date, load, status, revision, corrected, ewma_acwr, ctl) holds
    these numbers: the load, and the trend history before it shapes (ACWR, CTL) — replayed
    history changes the later days' ACWR without changing their load."""
    return _close(row[1], load) and _close(row[5], acwr) and _close(row[6], ctl)


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))


# ---------------------------------------------------------------------------- Kafka side
def input_topics(settings: Settings) -> tuple[list[str], list[str]]:
    """(raw input topics, internal topics) of the worker's consumer group, full names."""
    from kneeload.worker.app import INTERNAL_TOPICS

    names = {t.logical_name: t.full_name for t in catalogue(settings)}
    raw = [names.get(x, settings.topic_prefix + x) for x in RAW_TOPICS]
    return raw, [settings.topic_prefix + x for x in INTERNAL_TOPICS]


def write(settings: Settings, rebuilt: Rebuilt, timeout_s: float = 60.0) -> dict[str, int]:
    """Recreate the changelogs with the rebuilt state; set the group's offsets."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic
    from kafka.errors import GroupIdNotFoundError, KafkaError, TopicAlreadyExistsError
    from kafka.structs import OffsetAndMetadata

    from kneeload.topics import admin_client
    from kneeload.worker.app import (
        CHANGELOG_CONFIGS,
        TABLES,
        app_id,
        changelog_partition,
        changelog_topic,
    )

    n, gid = settings.topic_partitions, app_id(settings)
    logs = [changelog_topic(settings, t) for t in TABLES]
    with admin_client(settings) as admin:
        old = [
            t for t in admin.list_topics() if t.startswith(f"{gid}-") and t.endswith("-changelog")
        ]
        if old:
            admin.delete_topics(old)
        end = time.monotonic() + timeout_s
        while set(old) & set(admin.list_topics()):
            if time.monotonic() > end:
                raise RuntimeError(f"changelog topics not deleted within {timeout_s} s: {old}")
            time.sleep(0.5)
        cfg = {"cleanup.policy": "compact", **CHANGELOG_CONFIGS}
        for t in logs:
            while True:
                try:
                    admin.create_topics(
                        [NewTopic(t, n, settings.topic_replication, topic_configs=cfg)]
                    )
                    break
                except TopicAlreadyExistsError:  # deletion still finishing in the broker
                    if time.monotonic() > end:
                        raise
                    time.sleep(0.5)
        with contextlib.suppress(GroupIdNotFoundError, KafkaError):
            admin.delete_groups([gid])
    prod = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap.split(","), acks="all", linger_ms=20,
        max_request_size=8 << 20,
    )  # fmt: skip
    counts = {}
    try:
        for table, items in (
            ("athletes", records_of(rebuilt.athletes.items())),
            ("chunks", iter(rebuilt.chunks.items())),
            ("units", ((k, encode_unit(v)) for k, v in rebuilt.units.items())),
            ("teams", ((k, encode_team(v)) for k, v in rebuilt.teams.items())),
        ):
            topic = changelog_topic(settings, table)
            c = 0
            for key, value in items:
                p = changelog_partition(key, n)
                prod.send(topic, key=key.encode(), value=value, partition=p)
                c += 1
            counts[table] = len(rebuilt.athletes) if table == "athletes" else c
            if table == "athletes":
                counts["athlete_records"] = c
        names = {t.logical_name: t.full_name for t in catalogue(settings)}
        for topic, key, event in rebuilt.publish:  # history the database lacks (--since)
            value = orjson.dumps(event) if topic == DEADLETTER else wire.encode(event)
            prod.send(names[topic], key=key.encode(), value=value)
        counts["published"] = len(rebuilt.publish)
        prod.flush(timeout_s)
    finally:
        prod.close()
    raw, internal = input_topics(settings)
    cons = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap.split(","), group_id=gid,
        enable_auto_commit=False,
    )  # fmt: skip
    try:
        tps = [TopicPartition(t, p) for t in raw + internal for p in range(n)]
        ends = cons.end_offsets(tps)
        commit = {}
        for tp in tps:
            if tp.topic in internal:
                off = ends[tp]
            else:
                off = rebuilt.offsets.get((tp.topic, tp.partition), 0)
            commit[tp] = OffsetAndMetadata(off, "kneeload rebuild-state", -1)
        cons.assign(tps)
        cons.commit(commit)
    finally:
        cons.close()
    counts["offsets"] = len(commit)
    return counts
