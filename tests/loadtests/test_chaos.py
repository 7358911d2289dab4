"""The chaos run's own machinery (``make chaos`` itself runs 10-15 minutes and is not part of
the suite): the seeded fault schedule, the guard that keeps it off the shared stack, the
devices' retry policy, and the table-by-table comparison on two real databases."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from kneeload.demo.driver import RetryPolicy
from kneeload.settings import Settings
from kneeload.storage import migrate
from storage import events as ev
from storage.conftest import _write

# loadtests/chaos as the top-level package "chaos" (tests/loadtests shadows "loadtests")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "loadtests"))
from chaos.compare import compare_databases, compare_notifications
from chaos.faults import KILLED, plan_faults
from chaos.stack import StackGuardError, guard


def test_fault_schedule_is_seeded_and_complete() -> None:
    a, b = plan_faults(16, 66), plan_faults(16, 66)
    assert [(f.kind, f.step, f.restart_after_s) for f in a] == [
        (f.kind, f.step, f.restart_after_s) for f in b
    ]
    assert [f.kind for f in plan_faults(17, 66)] != [f.kind for f in a]
    kinds = Counter(f.kind for f in a)
    assert len(a) >= 20
    assert kinds == {
        **{f"kill:{s}": 3 for s in KILLED},
        "postgres_stop": 1,
        "kafka_stop": 1,
        "worker_add": 2,
        "worker_remove": 2,
    }
    assert [f.step for f in a] == sorted(f.step for f in a) and a[0].step >= 2 and a[-1].step < 66
    extra = 0
    for f in a:  # at most one extra worker, and every add is removed later
        extra += {"worker_add": 1, "worker_remove": -1}.get(f.kind, 0)
        assert extra in (0, 1)
    assert extra == 0


def test_the_chaos_stack_never_uses_the_shared_one(base_settings: Settings, tmp_path: Path) -> None:
    own = base_settings.model_copy(
        update={
            "var_dir": tmp_path,
            "kafka_bootstrap": "127.0.0.1:1",
            "kafka_controller_port": 2,
            "database_url": "postgresql://k@127.0.0.1:3/x",
            "mqtt_url": "mqtt://127.0.0.1:4",
        }
    )
    guard(own, base_settings)
    for change in (
        {"kafka_bootstrap": base_settings.kafka_bootstrap},
        {"database_url": base_settings.database_url},
        {"mqtt_url": base_settings.mqtt_url},
        {"var_dir": base_settings.var_dir},
    ):
        with pytest.raises(StackGuardError):
            guard(own.model_copy(update=change), base_settings)


def test_devices_retry_policy() -> None:
    p = RetryPolicy(deadline_s=60, backoff_initial_s=0.5, backoff_max_s=8)
    assert [p.delay_s(n, None) for n in (1, 2, 3, 4, 5, 6)] == [0.5, 1, 2, 4, 8, 8]
    assert p.delay_s(1, "3") == 3 and p.delay_s(1, "120") == 8
    assert p.delay_s(2, "Wed, 21 Oct 2015 07:28:00 GMT") == 1  # a date: computed back-off


@pytest.fixture(scope="module")
def two_databases(settings: Settings) -> Iterator[tuple[str, str]]:
    admin = urlsplit(settings.database_url)
    admin_url = urlunsplit(admin._replace(path="/postgres"))
    names = [f"kneeload_cmp_{uuid.uuid4().hex[:8]}_{x}" for x in "ab"]
    urls = [urlunsplit(admin._replace(path=f"/{n}")) for n in names]
    with psycopg.connect(admin_url, autocommit=True) as c:
        for n in names:
            c.execute(f'CREATE DATABASE "{n}"')
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        events = [
            ("registry.athletes", ev.athlete("c1", "team-c", "C One", now - timedelta(days=9))),
            ("sessions", ev.session("c1-s1", "c1", now - timedelta(days=1), load=500.0)),
            ("sessions", ev.session("c1-s2", "c1", now - timedelta(hours=5), load=300.0)),
            ("daily.load", ev.daily("c1", now.date(), load=800.0, acwr=1.2, revision=3)),
            ("pain.reports", ev.pain("c1-p1", "c1", now - timedelta(hours=2), 4)),
            ("alerts", ev.alert("c1-a1", "c1", now - timedelta(hours=1))),
        ]
        for url in urls:
            migrate(url, settings)
            assert asyncio.run(_write(url, events)).dead_letters == []
        yield urls[0], urls[1]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as c:
            for n in names:
                c.execute(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)')


def test_equal_databases_compare_equal_whatever_the_bookkeeping(
    two_databases: tuple[str, str],
) -> None:
    a, b = two_databases
    with psycopg.connect(b, autocommit=True) as c:  # when/how often: not compared
        c.execute(
            "UPDATE kneeload.daily_load SET revision = 7, updated_at = now(), corrected = true"
        )
        c.execute("UPDATE kneeload.alerts SET received_at = now() + interval '1 hour'")
    tables, skipped = compare_databases(a, b)
    assert [t.as_dict() for t in tables if t.lost or t.duplicated or t.different] == []
    assert "kneeload.sink_offsets" in skipped and "kneeload.daily_load" not in skipped
    assert {t.table for t in tables} >= {"kneeload.sessions", "kneeload.alerts"}


def test_lost_extra_different_and_natural_duplicates_are_found(
    two_databases: tuple[str, str],
) -> None:
    a, b = two_databases
    with psycopg.connect(b, autocommit=True) as c:
        c.execute("DELETE FROM kneeload.sessions WHERE session_id = 'c1-s2'")  # lost
        c.execute("UPDATE kneeload.daily_load SET ewma_acwr = 1.3")  # different
        c.execute(  # the same report stored again under another time: a natural duplicate
            "INSERT INTO kneeload.pain_reports SELECT time + interval '1 s', report_id, "
            "athlete_id, team_id, pain_nrs, context, session_id, swelling, session_rpe, note "
            "FROM kneeload.pain_reports"
        )
        c.execute(  # a spurious alert
            "INSERT INTO kneeload.alerts SELECT 'c1-a2', 'c1-a2', kind, severity, athlete_id, "
            'unit_id, team_id, clinic_id, event_time, message, "values" FROM kneeload.alerts'
        )
    got = {t.table: t for t in compare_databases(a, b)[0]}
    assert (got["kneeload.sessions"].lost, got["kneeload.sessions"].duplicated) == (1, 0)
    assert got["kneeload.daily_load"].different == 1
    assert "ewma_acwr" in " ".join(got["kneeload.daily_load"].examples)
    assert got["kneeload.pain_reports"].duplicated == 2  # the extra key, and stored twice
    assert got["kneeload.alerts"].duplicated == 1


def test_notifications_sent_twice_or_never() -> None:
    def hook(alert: str, path: str = "/team") -> dict[str, object]:
        return {"path": path, "payload": {"type": "alert", "alert_id": alert}}

    calm = [hook("a1"), hook("a2"), hook("a3", "/clinic")]
    storm = [hook("a1"), hook("a1"), hook("a3", "/clinic"), hook("a4")]
    got = compare_notifications(calm, storm)
    assert (got["sent_twice"], got["never_sent"], got["unexpected"]) == (1, 1, 1)
