"""`kneeload dashboards push` against a Grafana HTTP API TEST DOUBLE.

TEST DOUBLE — Grafana cannot be installed here. ``FakeGrafana`` is a small Starlette app on
uvicorn (free port, this process) implementing only the endpoints grafana-client calls for
push — ``/api/datasources`` (create; get/update by uid), ``/api/folders`` (create; get/update
by uid), ``POST /api/dashboards/db`` and ``/api/search`` — with Grafana's documented answers
(404 for an unknown uid, 409 for a second data source/folder of the same uid or name, 412 for
an existing dashboard uid without ``overwrite``, 400 for an unknown folder, 401 for a wrong
token), and records every request. It proves what push asks of Grafana, not how Grafana
renders the result; the dashboards' SQL is proven on the real pipeline's data elsewhere.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from grafana_client import GrafanaApi
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kneeload.dashboards.definitions import build_all

TOKEN = "glsa_test_token"


@dataclass
class FakeGrafana:
    """State and request log of the double (see the module docstring)."""

    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        def guard(fn: Any) -> Any:
            async def endpoint(request: Request) -> JSONResponse:
                with self.lock:
                    self.requests.append((request.method, request.url.path))
                if request.headers.get("authorization") != f"Bearer {TOKEN}":
                    return JSONResponse({"message": "Unauthorized"}, 401)
                body = await request.json() if request.method in ("POST", "PUT") else None
                with self.lock:
                    return await fn(request, body)

            return endpoint

        async def ds_create(_r: Request, b: dict[str, Any]) -> JSONResponse:
            if b["uid"] in self.datasources or any(
                d["name"] == b["name"] for d in self.datasources.values()
            ):
                return JSONResponse(
                    {"message": "data source with the same name already exists"}, 409
                )
            self.datasources[b["uid"]] = {**b, "id": len(self.datasources) + 1, "version": 1}
            return JSONResponse({"message": "Datasource added", "datasource": b})

        async def ds_get(r: Request, _b: None) -> JSONResponse:
            d = self.datasources.get(r.path_params["uid"])
            return JSONResponse(d) if d else JSONResponse({"message": "Data source not found"}, 404)

        async def ds_put(r: Request, b: dict[str, Any]) -> JSONResponse:
            old = self.datasources.get(r.path_params["uid"])
            if old is None:
                return JSONResponse({"message": "Data source not found"}, 404)
            self.datasources[r.path_params["uid"]] = {**b, "id": old["id"],
                                                      "version": old["version"] + 1}  # fmt: skip
            return JSONResponse({"message": "Datasource updated"})

        async def folder_create(_r: Request, b: dict[str, Any]) -> JSONResponse:
            if b.get("uid") in self.folders or any(
                f["title"] == b["title"] for f in self.folders.values()
            ):
                return JSONResponse({"message": "a folder with the same name already exists"}, 409)
            f = {"uid": b["uid"], "title": b["title"], "id": len(self.folders) + 1, "version": 1}
            self.folders[b["uid"]] = f
            return JSONResponse(f)

        async def folder_get(r: Request, _b: None) -> JSONResponse:
            f = self.folders.get(r.path_params["uid"])
            return JSONResponse(f) if f else JSONResponse({"message": "folder not found"}, 404)

        async def folder_put(r: Request, b: dict[str, Any]) -> JSONResponse:
            f = self.folders.get(r.path_params["uid"])
            if f is None:
                return JSONResponse({"message": "folder not found"}, 404)
            if not b.get("overwrite") and b.get("version") != f["version"]:
                return JSONResponse({"message": "the folder has been changed by someone else"}, 412)
            f.update(title=b.get("title", f["title"]), version=f["version"] + 1)
            return JSONResponse(f)

        async def dash_save(_r: Request, b: dict[str, Any]) -> JSONResponse:
            d, folder = b["dashboard"], b.get("folderUid")
            if folder not in self.folders:
                return JSONResponse({"message": "folder not found"}, 400)
            old = self.dashboards.get(d["uid"])
            if old is not None and not b.get("overwrite"):
                return JSONResponse({"status": "name-exists", "message": "exists"}, 412)
            same_title = [
                u
                for u, x in self.dashboards.items()
                if u != d["uid"]
                and x["folderUid"] == folder
                and x["dashboard"]["title"] == d["title"]
            ]
            if same_title:
                return JSONResponse({"status": "name-exists", "message": "title taken"}, 412)
            version = old["version"] + 1 if old else 1
            did = old["id"] if old else len(self.dashboards) + 1
            self.dashboards[d["uid"]] = {"dashboard": d, "folderUid": folder, "version": version,
                                         "id": did}  # fmt: skip
            return JSONResponse({"id": did, "uid": d["uid"], "status": "success",
                                 "version": version, "url": f"/d/{d['uid']}"})  # fmt: skip

        async def search(r: Request, _b: None) -> JSONResponse:
            kind = r.query_params.get("type")
            hits: list[dict[str, Any]] = []
            if kind in (None, "dash-folder"):
                hits += [{"uid": f["uid"], "title": f["title"], "type": "dash-folder"}
                         for f in self.folders.values()]  # fmt: skip
            if kind in (None, "dash-db"):
                hits += [
                    {"uid": u, "title": x["dashboard"]["title"], "type": "dash-db",
                     "folderUid": x["folderUid"]}
                    for u, x in self.dashboards.items()
                ]  # fmt: skip
            return JSONResponse(hits)

        return Starlette(
            routes=[
                Route("/api/datasources", guard(ds_create), methods=["POST"]),
                Route("/api/datasources/uid/{uid}", guard(ds_get), methods=["GET"]),
                Route("/api/datasources/uid/{uid}", guard(ds_put), methods=["PUT"]),
                Route("/api/folders", guard(folder_create), methods=["POST"]),
                Route("/api/folders/{uid}", guard(folder_get), methods=["GET"]),
                Route("/api/folders/{uid}", guard(folder_put), methods=["PUT"]),
                Route("/api/dashboards/db", guard(dash_save), methods=["POST"]),
                Route("/api/search", guard(search), methods=["GET"]),
            ]
        )


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(fake.app(), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the Grafana test double did not start"
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _push(url: str, *teams: str, token: str = TOKEN) -> Any:
    from kneeload.cli import root

    args = ["dashboards", "push", "--grafana-url", url, "--token", token]
    for t in teams:
        args += ["--team", t]
    return CliRunner().invoke(root, args)


def test_push_provisions_and_is_idempotent(grafana: tuple[FakeGrafana, str]) -> None:
    """TEST DOUBLE (see the module docstring). First push: the data source, the shared folder
    plus one folder per team, the four dashboards and each team's pinned copies. Second push:
    the same objects updated in place by uid (versions bump), nothing duplicated."""
    fake, url = grafana
    teams = ("team-a", "Team B")
    res = _push(url, *teams)
    assert res.exit_code == 0, res.output
    models = build_all()
    assert set(fake.datasources) == {"kneeload-pg"}
    ds = fake.datasources["kneeload-pg"]
    assert ds["type"] == "grafana-postgresql-datasource" and ds["version"] == 1
    assert set(fake.folders) == {"kneeload", "kneeload-team-team-a", "kneeload-team-team-b"}
    shared = {m["uid"] for m in models.values()}
    assert {u for u, d in fake.dashboards.items() if d["folderUid"] == "kneeload"} == shared
    for team, folder in (("team-a", "kneeload-team-team-a"), ("Team B", "kneeload-team-team-b")):
        mine = [d for d in fake.dashboards.values() if d["folderUid"] == folder]
        assert len(mine) == 3  # team overview, athlete detail, live session
        for d in mine:
            [var] = [v for v in d["dashboard"]["templating"]["list"] if v["name"] == "team"]
            assert var["current"]["value"] == team and team in d["dashboard"]["title"]
            assert d["dashboard"]["schemaVersion"] == models["team-overview"]["schemaVersion"]
    first = {u: d["version"] for u, d in fake.dashboards.items()}
    assert len(first) == 4 + 2 * 3

    fake.requests.clear()
    res = _push(url, *teams)
    assert res.exit_code == 0, res.output
    assert set(fake.datasources) == {"kneeload-pg"} and ds is not fake.datasources["kneeload-pg"]
    assert fake.datasources["kneeload-pg"]["version"] == 2  # updated by uid
    assert ("POST", "/api/datasources") not in fake.requests
    assert ("POST", "/api/folders") not in fake.requests
    assert ("PUT", "/api/datasources/uid/kneeload-pg") in fake.requests
    assert {u: d["version"] for u, d in fake.dashboards.items()} == {
        u: v + 1 for u, v in first.items()}  # fmt: skip

    # what a Grafana user would see, through grafana-client's own search call
    api = GrafanaApi.from_url(url, credential=TOKEN)
    hits = api.search.search_dashboards(type_="dash-db")
    assert len(hits) == len({h["uid"] for h in hits}) == 10
    folders = api.search.search_dashboards(type_="dash-folder")
    assert sorted(f["uid"] for f in folders) == sorted(fake.folders)


def test_push_with_a_wrong_token_fails_and_changes_nothing(
    grafana: tuple[FakeGrafana, str],
) -> None:
    """TEST DOUBLE (see the module docstring): a 401 stops push with a non-zero exit."""
    fake, url = grafana
    res = _push(url, "team-a", token="wrong")
    assert res.exit_code != 0
    assert not fake.datasources and not fake.folders and not fake.dashboards
