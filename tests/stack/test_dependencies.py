"""Dependency hygiene: what the code imports is declared, the image's lock is the dev lock minus
the dev tools, and the dashboards' SDK build targets the Grafana the compose file ships."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from kneeload.settings import REPO_ROOT

DEV_TOOLS = {"pytest", "pytest-asyncio", "pytest-timeout", "hypothesis", "ruff", "mypy", "py-spy"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    m = re.match(r"[A-Za-z0-9._-]+", req.strip())
    assert m, req
    return _norm(m.group(0))


def _project() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            out[_norm(name)] = version.strip()
    return out


def _third_party_imports(root: Path) -> dict[str, set[str]]:
    """Top-level module -> files importing it (absolute imports outside the stdlib/kneeload)."""
    found: dict[str, set[str]] = {}
    # tests/ and loadtests/ import their siblings, and tests import loadtests' modules
    local = {p.stem for p in root.iterdir()} | {p.stem for p in (REPO_ROOT / "loadtests").iterdir()}
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in local or top == "kneeload":
                    continue
                found.setdefault(top, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def _distributions_of(module: str) -> set[str]:
    return {_norm(d) for d in metadata.packages_distributions().get(module, [])}


@pytest.mark.parametrize(
    ("tree", "extras"), [("services", False), ("tests", True), ("loadtests", True)]
)
def test_every_imported_package_is_declared(tree: str, extras: bool) -> None:
    project = _project()
    declared = {_requirement_name(r) for r in project["dependencies"]}
    if extras:
        declared |= {_requirement_name(r) for r in project["optional-dependencies"]["dev"]}
    undeclared = {}
    for module, files in _third_party_imports(REPO_ROOT / tree).items():
        dists = _distributions_of(module)
        if not dists & declared:
            undeclared[module] = (sorted(dists), sorted(files)[:3])
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_every_declared_runtime_dependency_is_imported() -> None:
    """A runtime dependency nothing imports is dead weight (psycopg-pool was one)."""
    used: set[str] = set()
    for module in _third_party_imports(REPO_ROOT / "services"):
        used |= _distributions_of(module)
    unused = {_requirement_name(r) for r in _project()["dependencies"]} - used
    assert not unused, f"declared but never imported by services/: {sorted(unused)}"


def test_production_lock_is_the_dev_lock_without_dev_tools() -> None:
    dev = _pins(REPO_ROOT / "requirements.lock")
    prod = _pins(REPO_ROOT / "requirements-prod.lock")
    assert not DEV_TOOLS & set(prod), sorted(DEV_TOOLS & set(prod))
    assert set(dev) >= DEV_TOOLS
    differ = {n: (v, dev.get(n)) for n, v in prod.items() if dev.get(n) != v}
    assert not differ, f"requirements-prod.lock pins differ from requirements.lock: {differ}"
    for req in _project()["dependencies"]:
        assert _requirement_name(req) in prod, req
    dockerfile = (REPO_ROOT / "infra" / "Dockerfile").read_text()
    installs = [ln for ln in dockerfile.splitlines() if "install" in ln and ".lock" in ln]
    assert installs and all("-r requirements-prod.lock" in ln for ln in installs), installs


def test_dashboard_sdk_build_targets_the_grafana_compose_ships() -> None:
    text = (REPO_ROOT / "infra" / "compose.yaml").read_text()
    grafana = re.search(r"image: (grafana/grafana:(\d+)\.(\d+)\.\d+)\s", text)
    assert grafana, "no pinned grafana/grafana:X.Y.Z image in infra/compose.yaml"
    image = grafana.group(1)
    sdk = metadata.version("grafana-foundation-sdk")  # '<build timestamp>!<grafana version>'
    _build, _, target = sdk.partition("!")
    assert target, f"unpinned/“next” SDK build {sdk}: pin the build for the Grafana you ship"
    assert target.split(".")[:2] == [grafana.group(2), grafana.group(3)], (sdk, image)
    pinned = [r for r in _project()["dependencies"] if r.startswith("grafana-foundation-sdk")]
    assert pinned == [f"grafana-foundation-sdk=={sdk}"]
