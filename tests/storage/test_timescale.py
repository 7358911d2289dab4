"""TimescaleDB used as designed (``--flavour=timescale`` only): the columnstore's order covers
the primary key, and every policy job — columnstore (compression), retention, continuous
aggregate refresh — is run by TimescaleDB's own scheduler and does its work.

About the jobs: with 2.28.3 on PostgreSQL 15.20 they were logged as failed with ``cannot drop
portal "" while it is being set up`` although their work was done. The job runner
(``tsl/src/bgw_policy/job.c``, ``job_execute``) creates an unnamed portal when it runs without
one, runs the policy (which commits its own transactions) and drops that portal at the end; the
message comes from a check PostgreSQL 15.18 (this machine) does not have — its binary holds only
"cannot drop pinned/active portal" — so it is a later 15.x release that refuses the drop, after
the work was committed. The test therefore judges each job by its effect and its run count;
a failed status is accepted only with exactly that message (recorded as a warning), never
any other error.
"""

from __future__ import annotations

import time
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from kneeload.settings import Settings
from kneeload.storage import migrate

pytestmark = pytest.mark.flavour("timescale")

KNOWN_JOB_ERROR = "cannot drop portal"


def test_columnstore_order_covers_the_primary_key(conn: psycopg.Connection[Any]) -> None:
    """Every primary-key column of a compressed hypertable is a segment-by or order-by column
    (TimescaleDB warned three times at migrate that record_id was neither)."""
    rows = conn.execute(
        "SELECT s.hypertable::text, s.segmentby, s.orderby, "
        "  array(SELECT a.attname::text FROM pg_index i "
        "        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
        "        WHERE i.indrelid = s.hypertable AND i.indisprimary) "
        "FROM timescaledb_information.hypertable_columnstore_settings s "
        "WHERE s.segmentby IS NOT NULL OR s.orderby IS NOT NULL"
    ).fetchall()
    assert {r[0].removeprefix("kneeload.") for r in rows} >= {
        "watch_samples",
        "treadmill_telemetry",
        "bws_setpoints",
    }
    for table, segmentby, orderby, key in rows:
        covered = {
            c.strip().split()[0].strip('"') for c in f"{segmentby or ''},{orderby}".split(",")
        }
        assert set(key) <= covered, (table, segmentby, orderby, key)
        assert orderby.startswith('"time" DESC'), (table, orderby)


# --------------------------------------------------------------------------- jobs

NOW = datetime.now(UTC).replace(microsecond=0)


def _seed(c: psycopg.Connection[Any]) -> None:
    """Rows each policy acts on: old enough to be compressed or dropped, recent enough to be
    materialised by a refresh."""
    for t, rid in (
        (NOW - timedelta(days=10), "ws-compress"),
        (NOW - timedelta(days=200), "ws-old"),
    ):
        c.execute(
            "INSERT INTO kneeload.watch_samples (time, record_id, athlete_id, batch_id, "
            "speed_mps) SELECT %s + make_interval(secs => g), %s || g, 'a-1', 'b-1', 3.1 "
            "FROM generate_series(0, 59) g",
            (t, rid),
        )
    for t, rid in ((NOW - timedelta(days=2), "tt-recent"), (NOW - timedelta(days=120), "tt-old")):
        c.execute(
            "INSERT INTO kneeload.treadmill_telemetry (time, record_id, unit_id, kind, "
            "belt_speed_mps, bws_pct) SELECT %s + make_interval(secs => g), %s || g, 'u-1', "
            "'telemetry', 2.5, 20 FROM generate_series(0, 59) g",
            (t, rid),
        )
    c.execute(
        "INSERT INTO kneeload.bws_setpoints (time, record_id, unit_id, bws_pct) "
        "VALUES (%s, 'sp-compress', 'u-1', 30)",
        (NOW - timedelta(days=45),),
    )
    for t, rid in ((NOW - timedelta(hours=2), "sl-recent"), (NOW - timedelta(days=40), "sl-old")):
        c.execute(  # one batch of 60 samples, 1 s apart (0023)
            "INSERT INTO kneeload.sample_load_batches (last_time, batch_id, athlete_id, "
            "first_time, n, step_us, record_prefix, record_from, record_step, speed_mps, "
            "peak_pfj_stress_mpa, pfj_impulse_mpa_s) VALUES (%s + INTERVAL '59 s', %s, 'a-1', "
            "%s, 60, 1000000, %s, 0, 1, '{3.1}', '{8.0}', '{4.0}')",
            (t, rid, t, rid),
        )
    c.execute(
        "INSERT INTO kneeload.minute_load (minute, id, athlete_id, samples, duration_s, revision) "
        "VALUES (%s, 'ml-old', 'a-1', 60, 60, 0)",
        (NOW - timedelta(days=800),),
    )
    old = NOW - timedelta(days=120)
    c.execute(
        "INSERT INTO kneeload.unit_status (time, id, unit_id, online, in_use, date, "
        "minutes_used_today) VALUES (%s, 'us-old', 'u-1', true, false, %s, 0)",
        (old, old.date()),
    )


def _count(c: psycopg.Connection[Any], sql: str, *args: object) -> int:
    row = c.execute(sql, args).fetchone()
    return int(row[0]) if row else 0


def _materialised(c: psycopg.Connection[Any], view: str) -> int:
    row = c.execute(
        "SELECT materialization_hypertable_schema, materialization_hypertable_name "
        "FROM timescaledb_information.continuous_aggregates WHERE view_name = %s",
        (view,),
    ).fetchone()
    assert row is not None, view
    return _count(c, f'SELECT count(*) FROM "{row[0]}"."{row[1]}"')


def _compressed_chunks(c: psycopg.Connection[Any], table: str) -> int:
    return _count(
        c,
        "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_schema = "
        "'kneeload' AND hypertable_name = %s AND is_compressed",
        table,
    )


def test_every_policy_job_runs_on_the_scheduler_and_does_its_work(
    own_database: str, settings: Settings
) -> None:
    migrate(own_database, settings)
    with psycopg.connect(own_database, autocommit=True) as c:
        _seed(c)
        before = {
            "telemetry_unit_daily": _materialised(c, "telemetry_unit_daily"),
            "watch_samples_compressed": _compressed_chunks(c, "watch_samples"),
        }
        jobs = c.execute(
            "SELECT job_id, proc_name, hypertable_name FROM timescaledb_information.jobs "
            "WHERE hypertable_schema IN ('kneeload', '_timescaledb_internal') ORDER BY job_id"
        ).fetchall()
        kinds = {p for _, p, _ in jobs}
        assert kinds == {
            "policy_compression",
            "policy_retention",
            "policy_refresh_continuous_aggregate",
        }, kinds
        runs = {
            j: _count(
                c, "SELECT coalesce(total_runs, 0) FROM timescaledb_information.job_stats "
                "WHERE job_id = %s", j
            )
            for j, _, _ in jobs
        }  # fmt: skip
        # each made due in turn and run by the scheduler (not run_job). All at once, the
        # retention of treadmill_telemetry and the refresh of its daily aggregate deadlocked
        # (TimescaleDB retries a failed job at its next schedule); in production they are
        # hours apart, so the test runs them one by one
        never = []
        for job_id, _, _ in jobs:
            c.execute("SELECT alter_job(%s, next_start => now())", (job_id,))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                row = c.execute(
                    "SELECT total_runs, job_status FROM timescaledb_information.job_stats "
                    "WHERE job_id = %s",
                    (job_id,),
                ).fetchone()
                if row and row[0] > runs[job_id] and row[1] != "Running":
                    break
                time.sleep(0.3)
            else:
                never.append(job_id)
        assert not never, f"jobs the scheduler did not run within 60 s each: {never}"
        stats = c.execute(
            "SELECT s.job_id, j.proc_name, j.hypertable_name, s.last_run_status "
            "FROM timescaledb_information.job_stats s JOIN timescaledb_information.jobs j "
            "USING (job_id) WHERE s.job_id = ANY(%s)",
            ([j for j, _, _ in jobs],),
        ).fetchall()
        failed = [s for s in stats if s[3] != "Success"]
        errors = c.execute(
            "SELECT job_id, err_message FROM timescaledb_information.job_errors "
            "WHERE job_id = ANY(%s)",
            ([s[0] for s in failed],),
        ).fetchall()
        unknown = [e for e in errors if KNOWN_JOB_ERROR not in (e[1] or "")]
        assert not unknown, f"policy jobs failed: {unknown}"
        if failed:
            warnings.warn(
                f"{len(failed)} policy jobs logged '{KNOWN_JOB_ERROR} …' after doing their work",
                stacklevel=1,
            )
        # the work: compressed, dropped, materialised
        assert _compressed_chunks(c, "watch_samples") > before["watch_samples_compressed"]
        assert _compressed_chunks(c, "bws_setpoints") >= 1
        gone = {
            "watch_samples": "record_id LIKE 'ws-old%%'",
            "treadmill_telemetry": "record_id LIKE 'tt-old%%'",
            "sample_load": "record_id LIKE 'sl-old%%'",
            "minute_load": "id = 'ml-old'",
            "unit_status": "id = 'us-old'",
        }
        left = {
            t: _count(c, f"SELECT count(*) FROM kneeload.{t} WHERE {w}") for t, w in gone.items()
        }
        assert left == dict.fromkeys(gone, 0)
        assert (
            _count(
                c,
                "SELECT count(*) FROM kneeload.watch_samples WHERE record_id LIKE 'ws-compress%%'",
            )
            == 60
        )  # compressed, still read
        assert _materialised(c, "telemetry_unit_daily") > before["telemetry_unit_daily"]


# --------------------------------------------------------------------------- kneeload storage


def _cli(url: str, *args: str) -> Any:
    import os
    import subprocess
    import sys
    from pathlib import Path

    import orjson

    out = subprocess.run(
        [str(Path(sys.executable).with_name("kneeload")), "storage", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "KNEELOAD_DATABASE_URL": url},
    )
    assert out.returncode == 0, out.stderr
    return orjson.loads(out.stdout)


def test_storage_partitions_and_retention_commands_work_on_chunks(
    own_database: str, settings: Settings
) -> None:
    """`kneeload storage partitions` lists chunks (range, compressed) and `storage retention`
    drops the chunks wholly older than the retention (--dry-run says which first)."""
    migrate(own_database, settings)
    conn = psycopg.connect(own_database, autocommit=True)
    old = NOW - timedelta(days=300)
    conn.execute(
        "INSERT INTO kneeload.treadmill_telemetry (time, record_id, unit_id, kind) "
        "VALUES (%s, 'cli-old', 'u-cli', 'heartbeat')",
        (old,),
    )
    chunks = _cli(own_database, "partitions", "--table", "kneeload.treadmill_telemetry")[
        "kneeload.treadmill_telemetry"
    ]
    assert any(
        datetime.fromisoformat(c["from"]) <= old < datetime.fromisoformat(c["to"]) for c in chunks
    ), chunks
    assert all({"chunk", "from", "to", "compressed"} <= set(c) for c in chunks)
    dry = _cli(own_database, "retention", "--dry-run")["actions"]
    ours = [a for a in dry if a["table"] == "kneeload.treadmill_telemetry"]
    assert ours and all(a["action"] == "would drop" for a in ours), dry
    left = "SELECT count(*) FROM kneeload.treadmill_telemetry WHERE record_id = 'cli-old'"
    assert _count(conn, left) == 1
    done = _cli(own_database, "retention")["actions"]
    assert {a["partition"] for a in done if a["table"] == "kneeload.treadmill_telemetry"} == {
        a["partition"] for a in ours
    }
    assert _count(conn, left) == 0
    conn.close()
