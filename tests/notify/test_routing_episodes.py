"""Routing of episode changes (pure): a resolve reaches every channel that heard of the
episode, judged by the episode's highest severity, not its own (info)."""

from __future__ import annotations

from typing import Any

from kneeload.notify.routing import Routing


def _alert(severity: str, values: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "pain_high", "severity": severity, "team_id": "t1", "clinic_id": None,
            "values": values}  # fmt: skip


def test_resolve_follows_the_episode_severity() -> None:
    r = Routing.parse(
        {
            "channels": {
                "all": {"type": "webhook", "url": "http://127.0.0.1:9/a"},
                "urgent": {"type": "webhook", "url": "http://127.0.0.1:9/u"},
            },
            "routes": [
                {"team_id": "t1", "channels": ["all"]},
                {"team_id": "t1", "channels": ["urgent"], "min_severity": "critical"},
            ],
        }
    )

    def names(a: dict[str, Any]) -> list[str]:
        return sorted(c.name for c in r.channels_for(a))

    opened = _alert("warning", {"episode_transition": "opened"})
    escalated = _alert("critical", {"episode_transition": "escalated"})
    resolved_warn = _alert(
        "info", {"episode_transition": "resolved", "episode_severity": "warning"}
    )
    resolved_crit = _alert(
        "info", {"episode_transition": "resolved", "episode_severity": "critical"}
    )
    assert names(opened) == ["all"]
    assert names(escalated) == ["all", "urgent"]
    assert names(resolved_warn) == ["all"]
    assert names(resolved_crit) == ["all", "urgent"]
    assert names(_alert("info", {})) == ["all"]  # an ordinary info alert: as before
