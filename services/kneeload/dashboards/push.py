"""``kneeload dashboards push``: data source, a folder per team and the dashboards, through
Grafana's HTTP API with grafana-client — idempotent (look up by uid, then create or update;
dashboards are saved with ``overwrite``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError

from kneeload.dashboards.build import datasource_provisioning
from kneeload.dashboards.definitions import build_all

__all__ = ["PushReport", "push"]


@dataclass
class PushReport:
    datasource: str = ""
    folders: dict[str, str] = field(default_factory=dict)
    dashboards: list[str] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:30] or "x"


def push(
    grafana_url: str,
    token: str,
    *,
    teams: Iterable[str] = (),
    database: dict[str, str] | None = None,
) -> PushReport:
    """Provision everything; ``teams`` get their own folder holding the team dashboards."""
    api = GrafanaApi.from_url(grafana_url, credential=token)
    report = PushReport()

    ds = dict(datasource_provisioning()["datasources"][0])
    ds.pop("editable", None)
    if database:
        ds["url"] = database.get("host", ds["url"])
        ds["user"] = database.get("user", ds["user"])
        ds["jsonData"] = {**ds["jsonData"], "database": database.get("name", "kneeload")}
        ds["secureJsonData"] = {"password": database.get("password", "")}
    try:
        api.datasource.get_datasource_by_uid(ds["uid"])
        api.datasource.update_datasource_by_uid(ds["uid"], ds)
        report.datasource = "updated"
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
        api.datasource.create_datasource(ds)
        report.datasource = "created"

    def folder(uid: str, title: str) -> str:
        try:
            api.folder.get_folder(uid)
            api.folder.update_folder(uid, title=title, overwrite=True)
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            api.folder.create_folder(title, uid=uid)
        report.folders[uid] = title
        return uid

    dashboards = build_all()
    shared = folder("kneeload", "kneeload")
    for name, model in dashboards.items():
        _save(api, model, shared, f"kneeload {name}")
        report.dashboards.append(f"{shared}/{model['uid']}")
    for team in teams:
        uid = folder(f"kneeload-team-{_slug(team)}", f"kneeload — team {team}")
        for name in ("team-overview", "athlete-detail", "live-session"):
            model = dict(dashboards[name])
            model["uid"] = f"{model['uid'][:20]}-{_slug(team)}"[:40]
            model["title"] = f"{model['title']} ({team})"
            model["templating"] = _pin_team(model["templating"], team)
            _save(api, model, uid, f"kneeload {name} for team {team}")
            report.dashboards.append(f"{uid}/{model['uid']}")
    return report


def _pin_team(templating: dict[str, Any], team: str) -> dict[str, Any]:
    out = []
    for v in templating.get("list", []):
        v = dict(v)
        if v.get("name") == "team":
            v["current"] = {"selected": True, "text": team, "value": team}
        out.append(v)
    return {"list": out}


def _save(api: GrafanaApi, model: dict[str, Any], folder_uid: str, message: str) -> None:
    body = {"dashboard": {**model, "id": None}, "folderUid": folder_uid, "overwrite": True,
            "message": message}  # fmt: skip
    api.dashboard.update_dashboard(body)


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}"
