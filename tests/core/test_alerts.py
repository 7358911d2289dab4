"""Alert rules, dedup keys and cooldown."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from kneeload.core.alerts import (
    AlertKind,
    Severity,
    apply_cooldown,
    check_acwr,
    check_pain,
    check_pain_not_settled,
    check_session_load,
    check_unit_silent,
    check_week_over_week,
    check_weekly_pain_trend,
)

T = dt.datetime(2024, 5, 3, 7, 0, tzinfo=dt.UTC)


def test_rules_fire_at_thresholds() -> None:
    assert check_acwr("a1", "t1", T, 1.49) is None
    assert check_acwr("a1", "t1", T, None) is None
    a = check_acwr("a1", "t1", T, 1.6, 160.0, 100.0)
    assert a is not None and a.kind is AlertKind.ACWR_HIGH and a.severity is Severity.WARNING
    assert a.values["acwr"] == 1.6 and a.team_id == "t1" and a.athlete_id == "a1"
    assert a.dedup_key == "acwr_high:athlete:a1:2024-05-03"
    assert check_acwr("a1", "t1", T, 2.1).severity is Severity.CRITICAL  # type: ignore[union-attr]
    assert check_week_over_week("a1", None, T, 30.0) is None
    assert check_week_over_week("a1", None, T, 31.0) is not None
    assert check_session_load("a1", None, T, 150.0, 100.0) is None
    s = check_session_load("a1", None, T, 250.0, 100.0, session_id="s9")
    assert s is not None and s.values["ratio"] == 2.5 and s.dedup_key.endswith(":s9")
    assert check_session_load("a1", None, T, 250.0, None) is None
    assert check_pain("a1", None, T, 4.0) is None
    assert check_pain("a1", None, T, 7.0).severity is Severity.CRITICAL  # type: ignore[union-attr]
    assert check_pain_not_settled("a1", None, T, 1.0, 1.0, 24.0) is None
    assert check_pain_not_settled("a1", None, T, 1.0, 3.0, 24.0) is not None
    assert check_pain_not_settled("a1", None, T, 1.0, 3.0, 2.0) is None  # too early
    # the pain model's safe zone (≤ 2/10) is settled whatever the baseline
    assert check_pain_not_settled("a1", None, T, 0.0, 1.0, 24.0) is None
    assert check_pain_not_settled("a1", None, T, 0.0, 2.0, 24.0) is None
    assert check_pain_not_settled("a1", None, T, 0.0, 2.5, 24.0) is not None
    assert check_weekly_pain_trend("a1", None, T, 2.0, 0.5) is None  # worse, but safe
    assert check_weekly_pain_trend("a1", None, T, 3.0, 2.5) is None
    w = check_weekly_pain_trend("a1", None, T, 4.0, 2.5)
    assert w is not None and w.dedup_key == "pain_trend_worsening:athlete:a1:2024-W18"


def test_unit_silent() -> None:
    last = T - dt.timedelta(minutes=4)
    assert check_unit_silent("u1", "c1", last, T) is None
    a = check_unit_silent("u1", "c1", T - dt.timedelta(minutes=6), T)
    assert a is not None and a.unit_id == "u1" and a.clinic_id == "c1" and a.athlete_id is None
    assert check_unit_silent("u1", "c1", last, T, timeout=dt.timedelta(minutes=2)) is not None
    # same silence → same key however late we look
    b = check_unit_silent("u1", "c1", T - dt.timedelta(minutes=6), T + dt.timedelta(minutes=9))
    assert b is not None and b.dedup_key == a.dedup_key
    assert a.to_dict()["kind"] == "unit_offline"
    assert a.dedup_key == "unit_offline:unit:u1:20240503T065400Z"
    # a time zone offset must not leak a '+' into the id (the schema's id pattern refuses it)
    local = dt.datetime(2024, 5, 3, 8, 54, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    c = check_unit_silent("u1", "c1", local, T)
    assert c is not None and c.dedup_key == "unit_offline:unit:u1:20240503T065400Z"


def test_every_rule_key_fits_the_alert_schema_id_pattern() -> None:
    import re

    schema = json.loads(
        (Path(__file__).resolve().parents[2] / "schemas" / "alert.schema.json").read_text()
    )
    pattern = re.compile(schema["properties"]["dedup_key"]["pattern"])
    alerts = [
        check_acwr("a1", "t1", T, 1.6),
        check_week_over_week("a1", None, T, 31.0),
        check_session_load("a1", None, T, 250.0, 100.0, session_id="s9"),
        check_pain("a1", None, T, 7.0),
        check_pain_not_settled("a1", None, T, 1.0, 3.0, 24.0),
        check_weekly_pain_trend("a1", None, T, 4.0, 2.5),
        check_unit_silent("u1", "c1", T - dt.timedelta(minutes=6), T),
    ]
    for a in alerts:
        assert a is not None
        assert pattern.fullmatch(a.dedup_key), a.dedup_key


def test_cooldown_suppresses_repeats_but_not_escalation() -> None:
    a1 = check_acwr("a1", None, T, 1.6)
    a2 = check_acwr("a1", None, T + dt.timedelta(hours=2), 1.7)
    a3 = check_acwr("a1", None, T + dt.timedelta(hours=3), 2.3)  # critical: escalates
    a4 = check_acwr("a1", None, T + dt.timedelta(hours=20), 1.6)
    other = check_acwr("a2", None, T, 1.6)
    sent, state = apply_cooldown([a1, a2, None, other], {})
    assert sent == [a1, other]
    sent, state = apply_cooldown([a3], state)
    assert sent == [a3]
    sent, state = apply_cooldown([a4], state)  # 17 h after a3 > 12 h cooldown
    assert sent == [a4]
    assert apply_cooldown([a1, a1], {})[0] == [a1]
    assert all(isinstance(v[0], str) for v in state.values())


def test_alert_kinds_are_the_schema_enum() -> None:
    """The alert event schema is the source of truth for kinds: no mapping downstream."""
    schema = Path(__file__).resolve().parents[2] / "schemas" / "alert.schema.json"
    enum = json.loads(schema.read_text())["properties"]["kind"]["enum"]
    assert sorted({k.value for k in AlertKind}) == sorted(enum)
    assert check_week_over_week("a1", None, T, 31.0).kind == "load_spike_wow"  # type: ignore[union-attr]
