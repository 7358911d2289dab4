"""``kneeload dashboards build``: generated files under ``dashboards/`` of the checkout.

    dashboards/json/<name>.json                        the four dashboards
    dashboards/provisioning/datasources/kneeload.yaml  PostgreSQL data source (uid kneeload-pg)
    dashboards/provisioning/dashboards/kneeload.yaml   file provider for dashboards/json
    dashboards/provisioning/alerting/*.yaml            rules, contact points, policies

The production compose file mounts provisioning/ at /etc/grafana/provisioning and json/ at
/var/lib/grafana/dashboards. YAML files are written as JSON (a subset of YAML 1.2), so the
output is deterministic without a YAML library.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kneeload.dashboards import alerting
from kneeload.dashboards.definitions import DS_UID, build_all
from kneeload.settings import REPO_ROOT

__all__ = ["DEFAULT_OUT", "datasource_provisioning", "generate", "write"]

DEFAULT_OUT = REPO_ROOT / "dashboards"


def datasource_provisioning() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "kneeload PostgreSQL",
                "uid": DS_UID,
                "type": "grafana-postgresql-datasource",
                "access": "proxy",
                "url": "${KNEELOAD_DB_HOST}",
                "user": "${KNEELOAD_DB_USER}",
                "isDefault": True,
                "editable": False,
                "jsonData": {
                    "database": "kneeload",
                    "sslmode": "disable",
                    "postgresVersion": 1500,
                    "timescaledb": False,
                    "maxOpenConns": 10,
                },
                "secureJsonData": {"password": "${KNEELOAD_DB_PASSWORD}"},
            }
        ],
    }


def dashboard_provider() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "kneeload",
                "orgId": 1,
                "folder": "kneeload",
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {
                    "path": "/var/lib/grafana/dashboards",
                    "foldersFromFilesStructure": False,
                },
            }
        ],
    }


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """Relative path → file content of everything ``build`` writes."""
    out = {f"json/{name}.json": _dump(d) for name, d in build_all().items()}
    out["provisioning/datasources/kneeload.yaml"] = _dump(datasource_provisioning())
    out["provisioning/dashboards/kneeload.yaml"] = _dump(dashboard_provider())
    out["provisioning/alerting/rules.yaml"] = _dump(alerting.alert_rules())
    out["provisioning/alerting/contact-points.yaml"] = _dump(alerting.contact_points())
    out["provisioning/alerting/policies.yaml"] = _dump(alerting.notification_policies())
    return out


def write(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    written = []
    for rel, text in generate().items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written
