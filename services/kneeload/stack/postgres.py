"""PostgreSQL 15 (Debian's postgresql-15) in a cluster owned by the project under ``var/pg``.

PostgreSQL refuses to run as root, and sessions and CI run as root, so the cluster runs as the
``postgres`` system user (created by Debian's package). The superuser ``kneeload`` gets a random
password generated on first start; it is written to libpq's password file ``var/pg/pgpass`` and
never appears in code. Health is ``pg_isready``.

TimescaleDB: when the extension is installed into this PostgreSQL (``make timescaledb``), the
cluster is started with ``shared_preload_libraries = 'timescaledb'`` (unless
``KNEELOAD_STORAGE_TIMESCALE=off``) — the extension cannot be created otherwise — with its
telemetry off and enough background workers for its policy jobs. The setting is given at every
start, so a cluster made before the extension was installed picks it up at its next start.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from kneeload.settings import Settings
from kneeload.stack.procs import StackError, port_conflict, port_open, wait_until

NAME = "postgres"
SETTING = "KNEELOAD_DATABASE_URL"
RUN_AS = "postgres"
BINDIR = Path("/usr/lib/postgresql/15/bin")

TUNING = {
    "shared_buffers": "1GB",
    "work_mem": "32MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "15min",
    "max_connections": "200",
    "wal_compression": "on",
    "log_min_duration_statement": "2000",
    # time-partitioned tables: one query can touch hundreds of partitions (and their indexes)
    "max_locks_per_transaction": "1024",
}


#: given with the preload: TimescaleDB runs one scheduler per database plus its policy jobs
#: (compression, retention, continuous-aggregate refresh) as background workers
TIMESCALE_TUNING = {
    "shared_preload_libraries": "timescaledb",
    "timescaledb.telemetry_level": "off",
    "timescaledb.max_background_workers": "16",
    "max_worker_processes": "32",
}


def timescaledb_version() -> str | None:
    """The TimescaleDB version installed into this PostgreSQL (its control file's
    ``default_version`` with the matching library present), None when it is not installed."""
    control = Path(_pg_config("--sharedir")) / "extension" / "timescaledb.control"
    try:
        text = control.read_text()
    except OSError:
        return None
    m = re.search(r"^default_version\s*=\s*'([^']+)'", text, re.MULTILINE)
    if m is None:
        return None
    lib = Path(_pg_config("--pkglibdir")) / f"timescaledb-{m.group(1)}.so"
    return m.group(1) if lib.exists() else None


def _pg_config(flag: str) -> str:
    fallback = {
        "--sharedir": "/usr/share/postgresql/15",
        "--pkglibdir": "/usr/lib/postgresql/15/lib",
    }
    try:
        out = subprocess.run(
            [_bin("pg_config"), flag], capture_output=True, text=True, check=False
        ).stdout.strip()
    except (OSError, StackError):
        out = ""
    return out or fallback[flag]


def preloads_timescaledb(s: Settings) -> bool:
    """Whether :func:`start` preloads TimescaleDB: installed, and not switched off."""
    return s.storage_timescale != "off" and timescaledb_version() is not None


def server_options(s: Settings) -> dict[str, str]:
    """The ``-c`` settings the cluster is started with."""
    return {**TUNING, **(TIMESCALE_TUNING if preloads_timescaledb(s) else {})}


def preload_note(s: Settings) -> str | None:
    """A running cluster started without the TimescaleDB preload although it is installed:
    what to do (the running server is never restarted behind the user's back)."""
    if not preloads_timescaledb(s) or not healthy(s):
        return None
    import psycopg

    host, port, _db, user = _endpoint(s)
    pw = _paths(s)["pw"]
    try:
        with psycopg.connect(
            host=host,
            port=port,
            user=user,
            password=pw.read_text().strip() if pw.exists() else None,
            dbname="postgres",
            connect_timeout=5,
        ) as conn:
            row = conn.execute("SHOW shared_preload_libraries").fetchone()
    except psycopg.Error:
        return None
    if row is not None and "timescaledb" in str(row[0]):
        return None
    return (
        f"TimescaleDB {timescaledb_version()} is installed but this running PostgreSQL was "
        "started without it (shared_preload_libraries); restart it to use it "
        "(`kneeload stack down postgres && kneeload stack up postgres`), or set "
        "KNEELOAD_STORAGE_TIMESCALE=off to silence this"
    )


def _paths(s: Settings) -> dict[str, Path]:
    root = s.var_dir / "pg"
    return {
        "root": root,
        "data": root / "data",
        "run": root / "run",
        "log": root / "postgres.log",
        "pw": root / "superuser.password",
    }


def _endpoint(s: Settings) -> tuple[str, int, str, str]:
    u = urlsplit(s.database_url)
    return (
        u.hostname or "127.0.0.1",
        u.port or 5432,
        (u.path or "/kneeload").lstrip("/") or "kneeload",
        u.username or "kneeload",
    )


def _as_postgres(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", RUN_AS, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]


def _bin(name: str) -> str:
    path = BINDIR / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        raise StackError(
            f"postgres: {name} not found; install Debian's postgresql-15 (`make debs`)."
        )
    return found


def healthy(s: Settings) -> bool:
    host, port, db, user = _endpoint(s)
    out = subprocess.run(
        [_bin("pg_isready"), "-h", host, "-p", str(port), "-d", db, "-U", user, "-t", "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.returncode == 0


def _running(s: Settings) -> bool:
    p = _paths(s)
    if not (p["data"] / "postmaster.pid").exists():
        return False
    out = _as_postgres([_bin("pg_ctl"), "-D", str(p["data"]), "status"])
    return out.returncode == 0


def status(s: Settings) -> dict[str, object]:
    host, port, db, _ = _endpoint(s)
    return {
        "component": NAME,
        "running": _running(s),
        "endpoint": f"{host}:{port}/{db}",
        "healthy": healthy(s),
        "log": str(_paths(s)["log"]),
    }


def _ensure_traversable(path: Path) -> None:
    """The postgres user must be able to reach var/pg through the checkout's directories."""
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
        except OSError:
            continue
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)


def start(s: Settings) -> bool:
    p = _paths(s)
    host, port, db, user = _endpoint(s)
    if _running(s):
        wait_until(lambda: healthy(s), timeout_s=60, what="postgres", log=p["log"])
        _ensure_database(p, host, port, db, user)
        _write_env(s)
        return False
    if port_open(host, port):
        raise port_conflict(host, port, component="postgres", setting=SETTING)
    uid = pwd.getpwnam(RUN_AS).pw_uid if os.geteuid() == 0 else os.geteuid()
    gid = pwd.getpwnam(RUN_AS).pw_gid if os.geteuid() == 0 else os.getegid()
    p["root"].mkdir(parents=True, exist_ok=True)
    _ensure_traversable(p["root"])
    os.chown(p["root"], uid, gid)
    p["run"].mkdir(exist_ok=True)
    os.chown(p["run"], uid, gid)
    fresh = not (p["data"] / "PG_VERSION").exists()
    if fresh:
        password = secrets.token_urlsafe(24)
        p["pw"].write_text(password)
        os.chmod(p["pw"], 0o600)
        pwfile = p["root"] / ".initdb.pw"
        pwfile.write_text(password)
        os.chown(pwfile, uid, gid)
        os.chmod(pwfile, 0o600)
        try:
            out = _as_postgres(
                [
                    _bin("initdb"),
                    "-D",
                    str(p["data"]),
                    "-U",
                    user,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=peer",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if out.returncode != 0:
            raise StackError(f"postgres: initdb failed:\n{out.stdout}\n{out.stderr}")
    log = p["log"]
    if not log.exists():
        log.touch()
    os.chown(log, uid, gid)
    # the tuning is given at every start, so a cluster made by an older kneeload gets it too
    tuning = " ".join(f"-c {k}={v}" for k, v in server_options(s).items())
    opts = f"-p {port} -c listen_addresses={host} -k {p['run']} {tuning}"
    out = _as_postgres(
        [
            _bin("pg_ctl"),
            "-D",
            str(p["data"]),
            "-l",
            str(log),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
        ]
    )
    if out.returncode != 0:
        raise StackError(
            f"postgres: pg_ctl start failed:\n{out.stdout}\n{out.stderr}" + _log_tail(log)
        )
    wait_until(lambda: healthy(s), timeout_s=60, what="postgres", log=log)
    _ensure_database(p, host, port, db, user)
    _write_env(s)
    return True


def _log_tail(log: Path) -> str:
    from kneeload.stack.procs import tail

    return tail(log)


def _ensure_database(p: dict[str, Path], host: str, port: int, db: str, user: str) -> None:
    """Create the application database on first start (over TCP, as the generated superuser)."""
    import psycopg

    password = p["pw"].read_text().strip() if p["pw"].exists() else None
    with psycopg.connect(
        host=host,
        port=port,
        user=user,
        password=password,
        dbname="postgres",
        autocommit=True,
        connect_timeout=10,
    ) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{db}" OWNER "{user}"')


def _write_env(s: Settings) -> None:
    """Record the generated password in libpq's password file ``var/pg/pgpass``.

    The settings object points a password-less ``KNEELOAD_DATABASE_URL`` at this file, so the
    CLI works after ``make up`` with nothing exported. Only host, port and user are matched:
    the URL's database name stays whatever the caller chose (a test's or the demo's database
    never leaks into a file that outlives it). An older ``var/kneeload.env`` line holding a URL
    is removed.
    """
    p = _paths(s)
    if not p["pw"].exists():
        return
    host, port, _db, user = _endpoint(s)
    password = p["pw"].read_text().strip()
    pgpass = p["root"] / "pgpass"
    pgpass.write_text(f"{host}:{port}:*:{user}:{password}\n")
    os.chmod(pgpass, 0o600)
    env = s.var_dir / "kneeload.env"
    if env.exists():
        lines = [
            ln for ln in env.read_text().splitlines() if not ln.startswith("KNEELOAD_DATABASE_URL=")
        ]
        if lines:
            env.write_text("\n".join(lines) + "\n")
        else:
            env.unlink()


def stop(s: Settings, mode: str = "fast") -> bool:
    """Stop the cluster; ``mode`` is pg_ctl's: ``fast`` (default: roll back open
    transactions, checkpoint) or ``immediate`` (like a crash: WAL recovery at the next
    start — what ``make chaos`` does to its own cluster)."""
    if mode not in ("smart", "fast", "immediate"):
        raise ValueError(f"unknown pg_ctl stop mode {mode!r}")
    p = _paths(s)
    if not _running(s):
        return False
    out = _as_postgres([_bin("pg_ctl"), "-D", str(p["data"]), "-m", mode, "-w", "-t", "60", "stop"])
    if out.returncode != 0:
        raise StackError(f"postgres: pg_ctl stop failed:\n{out.stdout}\n{out.stderr}")
    return True
