"""The production compose file, proven as far as a machine without a container engine allows.

* It is valid for Docker Compose: loaded and validated by compose-go — the library
  `docker compose config` uses — built from the Go module proxy (infra/composecheck).
* Everything it refers to exists: bind-mounted files and folders, the build context and the
  Dockerfile's COPY sources, every `kneeload` command and option its services run, every
  variable the containers' scripts and Grafana's provisioning read, the account files the broker
  is configured with.
* Its versions agree with the local stack's and with what the dashboards were built for.
* Its start-up commands run here, against the local stack: initdb's role script, the `init`
  service's script (migrate, topics, grants, MQTT accounts — with the broker not yet up, as in
  compose), Mosquitto's start.sh with Debian's mosquitto, and the bridge with the compose
  environment — a unit registered afterwards publishes through broker and bridge into Kafka.
* The services image's Python environment (requirements-prod.lock, no dev tools) imports every
  kneeload module.

Not executed here (README "Production"): the images themselves (no container engine), Grafana
(not installable), TimescaleDB inside the timescale image, and Docker's volume and network
handling.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import pytest

from kneeload.bridge.mqttauth import MqttAuth
from kneeload.settings import REPO_ROOT, Settings

INFRA = REPO_ROOT / "infra"
KNEELOAD_IMAGE = "kneeload:latest"


def _check_env() -> dict[str, str]:
    env = dict(os.environ)
    for line in (INFRA / "compose-check.env").read_text().splitlines():
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k] = v
    return env


def _composecheck(*args: str) -> subprocess.CompletedProcess[str]:
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is required to validate infra/compose.yaml (compose-go); install golang")
    return subprocess.run(
        [go, "run", ".", *args, "../compose.yaml"],
        cwd=INFRA / "composecheck",
        env=_check_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    out = _composecheck("-json")
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


@pytest.fixture(scope="module")
def services(project: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(project["services"])


def _kneeload_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services.items() if s.get("image") == KNEELOAD_IMAGE}


def _init_script(services: dict[str, dict[str, Any]]) -> str:
    init = services["init"]
    assert init["entrypoint"] == ["/bin/sh", "-ec"]
    (script,) = init["command"]
    return str(script)


def test_compose_file_is_valid_and_has_every_service() -> None:
    out = _composecheck()
    assert out.returncode == 0, out.stderr
    for service in (
        "kafka",
        "timescaledb",
        "grafana",
        "mosquitto",
        "init",
        "ingest",
        "mqtt-bridge",
        "worker",
        "sink",
        "notify",
    ):
        assert f"\n  {service}:\n" in out.stdout, service


# --------------------------------------------------------------------------- files


def _host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The repository file a container path is bind-mounted from (None: not a bind mount)."""
    for v in service.get("volumes") or []:
        target = v["target"].rstrip("/")
        if v["type"] == "bind" and (
            container_path == target or container_path.startswith(target + "/")
        ):
            return Path(v["source"]) / container_path[len(target) :].lstrip("/")
    return None


def test_every_referenced_file_exists(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for v in svc.get("volumes") or []:
            if v["type"] == "bind":
                assert Path(v["source"]).exists(), f"{name}: bind source {v['source']} missing"
        build = svc.get("build")
        if build:
            context = Path(build["context"])
            dockerfile = context / build["dockerfile"]
            assert dockerfile.is_file(), dockerfile
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY "):
                    for src in line.split()[1:-1]:
                        assert (context / src).exists(), f"Dockerfile COPY {src}: missing"
    # Mosquitto: its entrypoint script and configuration come from the repository
    mq = services["mosquitto"]
    start = _host_path(mq, mq["entrypoint"][-1])
    assert start == INFRA / "mosquitto" / "start.sh" and start.is_file()
    conf = _host_path(mq, "/mosquitto/config/mosquitto.conf")
    assert conf is not None and conf.is_file()
    # initdb scripts run by the postgres entrypoint: executable
    initdb = _host_path(services["timescaledb"], "/docker-entrypoint-initdb.d")
    assert initdb is not None
    for script in initdb.glob("*.sh"):
        assert os.access(script, os.X_OK), f"{script} is not executable"
    for target in ("/etc/grafana/provisioning/datasources", "/var/lib/grafana/dashboards"):
        path = _host_path(services["grafana"], target)
        assert path is not None and path.is_dir() and any(path.iterdir()), target


def test_broker_account_files_are_the_ones_kneeload_writes(
    services: dict[str, dict[str, Any]],
) -> None:
    """mosquitto.conf names the files start.sh installs from the volume init and ingest write."""
    conf = (INFRA / "mosquitto" / "mosquitto.conf").read_text()
    start = (INFRA / "mosquitto" / "start.sh").read_text()
    auth = MqttAuth(Settings(), directory=Path("/x"))
    dst = re.search(r"DST=\$\{MOSQUITTO_AUTH_DIR:-([^}]+)\}", start)
    src = re.search(r"SRC=\$\{KNEELOAD_MQTT_AUTH_DIR:-([^}]+)\}", start)
    assert dst and src
    for directive, f in (("password_file", auth.passwd_file), ("acl_file", auth.acl_file)):
        assert f"{directive} {dst.group(1)}/{f.name}\n" in conf, directive
        assert f.name in start
    assert re.search(r"^allow_anonymous true$", conf, re.M)  # confined by the ACL's first rule
    volume = "mqtt-auth"
    mounts = {
        n: [v for v in s.get("volumes") or [] if v.get("source") == volume]
        for n, s in services.items()
    }
    writers = {n for n, m in mounts.items() if m and not m[0].get("read_only")}
    assert writers == {"init", "ingest"}, writers  # the registry's writers, nobody else
    assert mounts["mosquitto"][0]["read_only"]
    for n in (*writers, "mosquitto"):
        assert mounts[n][0]["target"] == src.group(1), n
    for n in writers:
        assert services[n]["environment"]["KNEELOAD_MQTT_AUTH_DIR"] == src.group(1), n


# ------------------------------------------------------------------------ commands


def _check_command(words: list[str]) -> None:
    """``kneeload <words>`` names a real command, and every ``--option`` it uses exists."""
    import click

    from kneeload.cli import root

    cmd: click.Command = root
    path: list[str] = []
    ctx = click.Context(root)
    for w in words:
        if w.startswith("-") or not isinstance(cmd, click.Group):
            break
        sub = cmd.get_command(ctx, w)
        assert sub is not None, f"`kneeload {' '.join([*path, w])}` does not exist"
        cmd, path = sub, [*path, w]
    assert not isinstance(cmd, click.Group), f"`kneeload {' '.join(path)}` is a group"
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    for w in words:
        if w.startswith("--"):
            assert w.split("=")[0] in known, f"`kneeload {' '.join(path)}` has no option {w}"


def test_every_kneeload_command_of_the_services_exists(
    services: dict[str, dict[str, Any]],
) -> None:
    checked = []
    for name, svc in _kneeload_services(services).items():
        if name == "init":
            continue
        assert svc["command"], name
        _check_command(list(svc["command"]))
        checked.append(name)
    for line in _init_script(services).splitlines():
        line = line.strip()
        if line.startswith("kneeload "):
            _check_command(shlex.split(line)[1:])
            checked.append(line.split()[1])
    assert {"ingest", "mqtt-bridge", "worker", "sink", "notify", "migrate", "registry"} <= set(
        checked
    )


# ----------------------------------------------------------------------- variables


def _settings_keys() -> set[str]:
    return {f"KNEELOAD_{n.upper()}" for n in Settings.model_fields}


def test_every_variable_is_known_and_set(services: dict[str, dict[str, Any]]) -> None:
    known = _settings_keys()
    for name, svc in _kneeload_services(services).items():
        for key in svc["environment"]:
            assert key in known or key == "PGPASSWORD", f"{name}: {key} is no kneeload setting"
        url = svc["environment"]["KNEELOAD_DATABASE_URL"]
        assert urlsplit(url).password is None, f"{name}: password in the database URL"
    # production.env.example documents every variable compose interpolates
    compose = (INFRA / "compose.yaml").read_text()
    example = {
        ln.split("=", 1)[0]
        for ln in (INFRA / "production.env.example").read_text().splitlines()
        if "=" in ln and not ln.startswith("#")
    }
    interpolated = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", compose))
    assert interpolated <= example, sorted(interpolated - example)
    for key in example:
        assert key in known or key in interpolated or key in compose, f"example: unknown {key}"
    # Grafana's provisioning reads ${VAR}s its container must have
    grafana_env = set(services["grafana"]["environment"])
    for f in (REPO_ROOT / "dashboards" / "provisioning").rglob("*.yaml"):
        for var in set(re.findall(r"\$\{([A-Z0-9_]+)\}", f.read_text())):
            assert var in grafana_env, f"{f.name} reads {var}, grafana has no such variable"
    # the initdb script's variables are in the database container's environment
    db_env = set(services["timescaledb"]["environment"])
    for script in (INFRA / "initdb").glob("*.sh"):
        for var in set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", script.read_text())):
            assert var in db_env, f"{script.name} reads {var}"


def test_versions_agree_with_the_local_stack_and_the_dashboards(
    services: dict[str, dict[str, Any]],
) -> None:
    from kneeload.dashboards.build import datasource_provisioning
    from kneeload.stack import postgres

    tag = services["timescaledb"]["image"].split(":")[1]
    m = re.fullmatch(r"(\d+\.\d+\.\d+)-pg(\d+)", tag)
    assert m, tag
    pg_major = int(m.group(2))
    assert f"/{pg_major}/" in str(postgres.BINDIR)  # the local stack's Debian postgresql-15
    ds = datasource_provisioning()["datasources"][0]["jsonData"]
    assert ds["postgresVersion"] == pg_major * 100
    vendored = list(Path("/work/shared/vendor").glob("timescaledb-*.tar.gz"))
    for tarball in vendored:  # the source the local stack builds TimescaleDB from
        assert tarball.name == f"timescaledb-{m.group(1)}.tar.gz", (tarball, tag)
    pom = (INFRA / "kafka" / "pom.xml").read_text()
    kafka = re.search(r"<kafka.version>([\d.]+)</kafka.version>", pom)
    assert kafka and services["kafka"]["image"] == f"apache/kafka:{kafka.group(1)}"


# ------------------------------------------------ the start-up commands, run here


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def compose_like(
    settings: Settings, services: dict[str, dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """The compose environment mapped onto the local stack: own database, topic prefix,
    account folder, Grafana role; Kafka and PostgreSQL are the local ones."""
    import psycopg

    run = uuid.uuid4().hex[:8]
    # under var/ (not pytest's 0700 tmp): Mosquitto reads its files as the mosquitto user
    tmp_path = settings.var_dir / f"compose-test-{run}"
    tmp_path.mkdir(mode=0o755)
    base = urlsplit(settings.database_url)
    db = f"kneeload_compose_{run}"
    admin = urlunsplit(base._replace(path="/postgres"))
    role = f"grafana_reader_{run}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEELOAD_")}
    env |= {
        "KNEELOAD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "KNEELOAD_DATABASE_URL": urlunsplit(base._replace(path=f"/{db}")),
        "KNEELOAD_TOPIC_PREFIX": f"{settings.topic_prefix}compose-{run}.",
        "KNEELOAD_TOPIC_REPLICATION": "1",
        "KNEELOAD_MQTT_URL": f"mqtt://127.0.0.1:{_free_port()}",  # nothing there yet
        "KNEELOAD_MQTT_AUTH_DIR": str(tmp_path / "mqtt-auth"),
        "KNEELOAD_MQTT_USERNAME": services["init"]["environment"]["KNEELOAD_MQTT_USERNAME"],
        "KNEELOAD_MQTT_PASSWORD": f"bridge-{uuid.uuid4().hex}",
        "KNEELOAD_GRAFANA_DB_USER": role,
        "KNEELOAD_GRAFANA_TEAMS": f"team-{run}",
        "KNEELOAD_GRAFANA_CLINICS": f"clinic-{run}",
        "KNEELOAD_VAR_DIR": str(settings.var_dir),
    }
    try:
        yield {"env": env, "db": db, "admin": admin, "role": role, "run": run, "tmp": tmp_path}
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def _sh(script: str, env: dict[str, str], timeout: int = 300) -> str:
    out = subprocess.run(
        ["/bin/sh", "-ec", script], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, (
        f"{script[:300]}\n--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}"
    )
    return out.stdout


def _kneeload_on_path(env: dict[str, str]) -> dict[str, str]:
    return env | {"PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}"}


def test_compose_start_up_runs_against_the_local_stack(
    compose_like: dict[str, Any], services: dict[str, dict[str, Any]], settings: Settings
) -> None:
    import paho.mqtt.client as mqtt
    import psycopg

    from kneeload.stack import postgres
    from kneeload.topics import topic_name

    env = _kneeload_on_path(compose_like["env"])
    db_url = urlsplit(env["KNEELOAD_DATABASE_URL"])
    # 1. initdb/10-grafana-reader.sh, as the postgres entrypoint runs it (twice: idempotent)
    psql_env = env | {
        "PATH": f"{postgres.BINDIR}:{env['PATH']}",
        "PGHOST": db_url.hostname or "127.0.0.1",
        "PGPORT": str(db_url.port),
        "PGPASSFILE": str(settings.var_dir / "pg" / "pgpass"),
        "POSTGRES_USER": db_url.username or "kneeload",
        "POSTGRES_DB": compose_like["db"],
        "KNEELOAD_GRAFANA_DB_PASSWORD": "grafana-pw",
    }
    for _ in range(2):
        _sh(f"sh {INFRA / 'initdb' / '10-grafana-reader.sh'}", psql_env)
    # 2. the init service's script, verbatim ($$ is compose's escape for $)
    report = _sh(_init_script(services).replace("$$", "$"), env)
    assert '"broker": "not reachable' in report  # compose: Mosquitto starts after init
    with psycopg.connect(env["KNEELOAD_DATABASE_URL"]) as conn:
        granted = conn.execute(
            "SELECT pg_has_role(%s, 'kneeload_reader', 'MEMBER')", (compose_like["role"],)
        ).fetchone()
        assert granted == (True,)
    auth_dir = Path(env["KNEELOAD_MQTT_AUTH_DIR"])
    auth = MqttAuth(Settings(mqtt_auth_dir=auth_dir), directory=auth_dir)
    assert auth.users()[env["KNEELOAD_MQTT_USERNAME"]]["role"] == "bridge"
    assert not auth.account_file.exists()  # an explicit password is not stored in clear
    # 3. Mosquitto's start.sh with Debian's mosquitto, paths of the image mapped to tmp
    tmp: Path = compose_like["tmp"]
    port = int(env["KNEELOAD_MQTT_URL"].rsplit(":", 1)[1])
    conf = (INFRA / "mosquitto" / "mosquitto.conf").read_text()
    conf = conf.replace("/mosquitto/", f"{tmp}/mosquitto/").replace(
        "listener 1883", f"listener {port} 127.0.0.1"
    )
    (tmp / "mosquitto" / "data").mkdir(parents=True)
    (tmp / "mosquitto.conf").write_text(conf)
    owner = (
        "mosquitto"
        if os.geteuid() == 0 and _user_exists("mosquitto")
        else pwd.getpwuid(os.geteuid()).pw_name
    )
    if owner == "mosquitto":
        shutil.chown(tmp / "mosquitto" / "data", "mosquitto")
    mq_env = env | {
        "PATH": f"/usr/sbin:{env['PATH']}",
        "MOSQUITTO_AUTH_DIR": str(tmp / "mosquitto" / "auth"),
        "MOSQUITTO_CONF": str(tmp / "mosquitto.conf"),
        "MOSQUITTO_USER": owner,
        "KNEELOAD_MQTT_AUTH_POLL_S": "1",
    }
    broker = subprocess.Popen(
        ["/bin/sh", str(INFRA / "mosquitto" / "start.sh")],
        env=mq_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    bridge: subprocess.Popen[str] | None = None
    try:
        user, password = env["KNEELOAD_MQTT_USERNAME"], env["KNEELOAD_MQTT_PASSWORD"]
        _until(lambda: _connects(mqtt, port, user, password), 30, "the bridge account", broker)
        assert not _connects(mqtt, port, user, "wrong")
        # 4. the bridge with the mqtt-bridge service's environment
        assert {"KNEELOAD_MQTT_USERNAME", "KNEELOAD_MQTT_PASSWORD"} <= set(
            services["mqtt-bridge"]["environment"]
        )  # compose gives the bridge its account explicitly, as here
        bridge_env = {k: v for k, v in env.items() if k != "KNEELOAD_MQTT_AUTH_DIR"}
        bridge_env["KNEELOAD_MQTT_BRIDGE_CLIENT_ID"] = f"compose-bridge-{compose_like['run']}"
        bridge = subprocess.Popen(
            [sys.executable, "-m", "kneeload", *services["mqtt-bridge"]["command"]],
            env=bridge_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # 5. a clinic registers a unit (the registry CLI the README names); start.sh reloads
        run = compose_like["run"]
        unit = f"lever-compose-{run}"
        added = _sh(f"kneeload registry add-device {unit} --kind lever_unit --clinic c-{run}", env)
        key = orjson.loads(added)["api_key"]
        _until(
            lambda: _connects(mqtt, port, unit, key),
            30,
            "start.sh to install the unit's account",
            broker,
        )
        record = f"compose-{uuid.uuid4().hex[:10]}"
        payload = orjson.dumps(
            {
                "record_id": record,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "belt_speed_mps": 2.0,
                "incline_pct": 0.0,
                "bws_pct": 10.0,
            }
        )
        prefixed = settings.model_copy(update={"topic_prefix": env["KNEELOAD_TOPIC_PREFIX"]})
        name = topic_name("treadmill.telemetry", prefixed)
        _until(
            lambda: _publish_and_find(mqtt, port, unit, key, payload, settings, name, record),
            60,
            "the unit's telemetry in Kafka through the bridge",
            broker,
        )
    finally:
        if bridge is not None:
            bridge.terminate()
            bridge.wait(20)
        broker.terminate()
        out, _ = broker.communicate(timeout=20)
    assert "accounts changed: broker reloaded" in out, out[-2000:]


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _until(cond: Any, timeout_s: float, what: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert proc.poll() is None, f"{what}: process exited"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _connects(mqtt: Any, port: int, user: str, password: str) -> bool:
    ok: list[bool] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}")
    c.username_pw_set(user, password)
    c.on_connect = lambda _c, _u, _f, rc, _p=None: ok.append(not rc.is_failure)
    try:
        c.connect("127.0.0.1", port, keepalive=5)
    except OSError:
        return False
    deadline = time.monotonic() + 5
    while not ok and time.monotonic() < deadline:
        c.loop(timeout=0.1)
    c.disconnect()
    return bool(ok and ok[0])


def _publish_and_find(
    mqtt: Any, port: int, unit: str, key: str, payload: bytes, s: Settings, topic: str, record: str
) -> bool:
    from kafka import KafkaConsumer, TopicPartition

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{unit}-{uuid.uuid4().hex[:4]}")
    c.username_pw_set(unit, key)
    c.connect("127.0.0.1", port, keepalive=5)
    c.loop_start()
    c.publish(f"lever/{unit}/telemetry", payload, qos=1).wait_for_publish(10)
    c.disconnect()
    c.loop_stop()
    time.sleep(1.0)
    consumer = KafkaConsumer(bootstrap_servers=s.kafka_bootstrap, consumer_timeout_ms=1000)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return any(record.encode() in (m.value or b"") for m in consumer)
    finally:
        consumer.close()


# ---------------------------------------------------------------- production image


def test_production_lock_alone_runs_kneeload(tmp_path: Path) -> None:
    """A venv from requirements-prod.lock (what the image installs) imports every kneeload
    module and runs the CLI: nothing at runtime needs a dev tool."""
    uv = Path(sys.executable).with_name("uv")
    venv = tmp_path / "prod"
    subprocess.run(
        [str(uv), "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120
    )
    py = venv / "bin" / "python"
    for args in (
        ["-r", str(REPO_ROOT / "requirements-prod.lock")],
        ["--no-deps", "-e", str(REPO_ROOT)],
    ):
        subprocess.run(
            [str(uv), "pip", "install", "-q", "--python", str(py), *args], check=True, timeout=600
        )
    probe = (
        "import importlib, pkgutil, kneeload\n"
        "for m in pkgutil.walk_packages(kneeload.__path__, 'kneeload.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "import importlib.util as u\n"
        "print(sorted(n for n in ('pytest','mypy','ruff','hypothesis') if u.find_spec(n)))\n"
    )
    out = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"
    cli = subprocess.run(
        [str(venv / "bin" / "kneeload"), "settings"], capture_output=True, text=True, timeout=120
    )
    assert cli.returncode == 0 and "KNEELOAD_DATABASE_URL" in cli.stdout, cli.stderr
