"""Headless Chromium (Debian's ``chromium`` package) driven over the DevTools protocol, for
checking HTML reports as a browser renders them: images decoded, tables, text as shown.

Flags as the machine notes say work here (no sandbox as root, no background networking:
the machine's closed network refuses Chromium's own connections). The DevTools websocket
is spoken with aiohttp (a declared dev dependency).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0",
]  # fmt: skip


def available() -> bool:
    return Path(CHROMIUM).exists()


def evaluate(url: str, expression: str, *, timeout_s: float = 60.0) -> Any:
    """Open ``url`` in a fresh headless Chromium, wait for the load event, return the value
    of the JavaScript ``expression`` (JSON-serialisable)."""
    with tempfile.TemporaryDirectory(prefix="kneeload-chromium-") as profile:
        proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + timeout_s
            while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chromium did not start (exit {proc.poll()})")
                time.sleep(0.1)
            port = int(port_file.read_text().splitlines()[0])
            return asyncio.run(_run(port, url, expression, timeout_s))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


async def _run(port: int, url: str, expression: str, timeout_s: float) -> Any:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
            pages = [t for t in await r.json() if t.get("type") == "page"]
        async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = iter(range(1, 1_000_000))

            async def call(method: str, **params: Any) -> dict[str, Any]:
                n = next(ids)
                await ws.send_str(json.dumps({"id": n, "method": method, "params": params}))
                while True:
                    msg = json.loads((await ws.receive()).data)
                    if msg.get("id") == n:
                        if "error" in msg:
                            raise RuntimeError(f"{method}: {msg['error']}")
                        return dict(msg.get("result", {}))
                    if msg.get("method") == "Page.loadEventFired":
                        loaded.set()

            loaded = asyncio.Event()
            await call("Page.enable")
            await call("Page.navigate", url=url)
            async with asyncio.timeout(timeout_s):
                while not loaded.is_set():
                    msg = json.loads((await ws.receive()).data)
                    if msg.get("method") == "Page.loadEventFired":
                        loaded.set()
            res = await call("Runtime.evaluate", expression=expression, returnByValue=True,
                             awaitPromise=True)  # fmt: skip
            if "exceptionDetails" in res:
                raise RuntimeError(f"page script failed: {res['exceptionDetails']}")
            return res["result"].get("value")
