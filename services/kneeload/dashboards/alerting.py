"""Grafana alert rules mirroring the platform's alert kinds, and the contact points.

Each rule counts the platform's own open alerts of one kind per team/clinic from the
``kneeload_api.open_alerts`` view — the numbers stay in ``kneeload.core``; Grafana only
routes them, for teams that prefer Grafana's alerting to ``kneeload notify``.
"""

from __future__ import annotations

from typing import Any

from kneeload.dashboards.definitions import DS_UID

__all__ = ["ALERT_KINDS", "alert_rules", "contact_points", "notification_policies", "rule_sql"]

ALERT_KINDS: dict[str, tuple[str, str]] = {
    "session_spike": (
        "warning",
        "Session > 10 % above the longest of the last 30 days (distance or PFJ load estimate)",
    ),
    # ACWR and week-on-week: shown, but no longer predictors of injury in the largest cohort
    # (Frandsen et al. 2025); session_load_high is retired (old rows keep their kind)
    "acwr_high": ("info", "ACWR of estimated PFJ load high (a trend, not an injury predictor)"),
    "load_spike_wow": ("info", "Week-over-week rise of estimated PFJ load (a trend)"),
    "session_load_high": ("info", "Retired: session load vs chronic mean (see session_spike)"),
    "pain_high": ("critical", "Pain above threshold"),
    "pain_not_settled": ("warning", "Pain not settled by the next morning"),
    "pain_trend_worsening": ("warning", "Pain trend worsening"),
    "unit_offline": ("warning", "LEVER unit offline"),
    "unit_calibration_drift": (
        "warning",
        "LEVER unit's measured support drifts from the commanded",
    ),
}
FOLDER = "kneeload alerts"


def rule_sql(kind: str) -> str:
    return (
        "SELECT coalesce(team_id, clinic_id, 'none') AS tenant, count(*)::float8 AS open_alerts\n"
        "  FROM kneeload_api.open_alerts\n"
        f" WHERE kind = '{kind}'\n"
        " GROUP BY 1"
    )


def _rule(kind: str) -> dict[str, Any]:
    severity, title = ALERT_KINDS[kind]
    return {
        "uid": f"kneeload-{kind.replace('_', '-')}",
        "title": f"kneeload: {title}",
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": 600, "to": 0},
                "datasourceUid": DS_UID,
                "model": {
                    "refId": "A",
                    "editorMode": "code",
                    "format": "table",
                    "rawQuery": True,
                    "rawSql": rule_sql(kind),
                },
            },
            {
                "refId": "B",
                "datasourceUid": "__expr__",
                "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": "last"},
            },
            {
                "refId": "C",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": "gt", "params": [0]}}],
                },
            },
        ],
        "noDataState": "OK",
        "execErrState": "Error",
        "for": "0s",
        "labels": {"kneeload_kind": kind, "severity": severity},
        "annotations": {
            "summary": f"{{{{ $labels.tenant }}}}: {{{{ $values.B }}}} open {kind} alert(s)",
            "description": f"{title}. Acknowledge with POST /alerts/<id>/ack or "
            "`kneeload alerts ack <id> --by <coach>`. PFJ figures are estimates.",
        },
        "isPaused": False,
    }


def alert_rules() -> dict[str, Any]:
    """Grafana alerting file provisioning (apiVersion 1): one group, one rule per kind."""
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": "kneeload platform alerts",
                "folder": FOLDER,
                "interval": "1m",
                "rules": [_rule(k) for k in ALERT_KINDS],
            }
        ],
    }


def contact_points() -> dict[str, Any]:
    """Webhook, Slack and email contact points; addresses come from the environment."""
    return {
        "apiVersion": 1,
        "contactPoints": [
            {
                "orgId": 1,
                "name": "kneeload coaches",
                "receivers": [
                    {
                        "uid": "kneeload-webhook",
                        "type": "webhook",
                        "settings": {
                            "url": "${KNEELOAD_GRAFANA_WEBHOOK_URL}",
                            "httpMethod": "POST",
                        },
                        "disableResolveMessage": False,
                    },
                    {
                        "uid": "kneeload-slack",
                        "type": "slack",
                        "settings": {"url": "${KNEELOAD_GRAFANA_SLACK_URL}"},
                        "disableResolveMessage": False,
                    },
                    {
                        "uid": "kneeload-email",
                        "type": "email",
                        "settings": {"addresses": "${KNEELOAD_GRAFANA_ALERT_EMAILS}"},
                        "disableResolveMessage": False,
                    },
                ],
            }
        ],
    }


def notification_policies() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "policies": [
            {
                "orgId": 1,
                "receiver": "kneeload coaches",
                "group_by": ["grafana_folder", "alertname", "tenant"],
                "group_wait": "30s",
                "group_interval": "5m",
                "repeat_interval": "4h",
            }
        ],
    }
