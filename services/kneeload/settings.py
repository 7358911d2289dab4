"""The one settings object.

Every value comes from the environment, prefixed ``KNEELOAD_`` (for example
``KNEELOAD_KAFKA_BOOTSTRAP``). Defaults point at the local stack; ``make up`` writes
the local database's generated password to libpq's password file ``var/pg/pgpass``,
which a password-less database URL uses, so the CLI works after ``make up`` without
exporting anything. ``var/kneeload.env`` (optional, KEY=value lines) is read as a
fallback; real environment variables always win.

Nothing here is a secret baked into code: the local stack's password is generated
on first start and lives only under the git-ignored ``var/``.

Secrets are held as :class:`SecretStr` (pydantic's interface, :mod:`kneeload._envsettings`:
the settings load without pydantic) — tokens, passwords, the notification routing
document with its webhook URLs: their ``repr``/``str`` print ``**********``, and code reads them
with :func:`reveal` at the point of use. Credentials given inside ``KNEELOAD_MQTT_URL`` are moved
into ``mqtt_username``/``mqtt_password``. The database password is not a setting at all: libpq
reads it from its password file (the local stack's ``var/pg/pgpass``) or ``PGPASSWORD`` (compose);
a URL that embeds one anyway is masked by ``kneeload settings`` and in logs
(:mod:`kneeload.logs`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from kneeload._envsettings import EnvSettings, Field, SecretStr, SettingsError

__all__ = ["REPO_ROOT", "SecretStr", "Settings", "SettingsError", "get_settings", "reveal"]

#: Repository root when running from a checkout (services/kneeload/settings.py -> ../../)
REPO_ROOT = Path(__file__).resolve().parents[2]


def _env_file() -> Path:
    return Path(os.environ.get("KNEELOAD_VAR_DIR", str(REPO_ROOT / "var"))) / "kneeload.env"


class Settings(EnvSettings):
    """kneeload configuration. Every field maps to ``KNEELOAD_<FIELD NAME IN CAPITALS>``."""

    env_prefix = "KNEELOAD_"

    # --- where things are -------------------------------------------------
    var_dir: Path = Field(
        REPO_ROOT / "var", description="Runtime data of the local stack (git-ignored)"
    )
    kafka_bootstrap: str = Field(
        "127.0.0.1:19092", description="Kafka bootstrap servers, comma separated"
    )
    kafka_controller_port: int = Field(
        19093, description="Local KRaft controller port (local stack only)"
    )
    database_url: str = Field(
        "postgresql://kneeload@127.0.0.1:55432/kneeload",
        description="PostgreSQL URL (libpq form) without the password: libpq takes it from its password file "
        "(the local stack's var/pg/pgpass) or PGPASSWORD",
    )
    mqtt_url: str = Field(
        "mqtt://127.0.0.1:11883",
        description="MQTT broker URL mqtt://host:port (user:password@ in it move to the two settings below)",
    )
    mqtt_username: str | None = Field(
        None, description="MQTT login of this process (the bridge: its service account)"
    )
    mqtt_password: SecretStr | None = Field(None, description="MQTT password (secret)")
    schemas_dir: Path | None = Field(
        None, description="Directory of the event JSON Schemas (default: schemas/ of the checkout)"
    )

    # --- topics -------------------------------------------------------------
    topic_prefix: str = Field(
        "kneeload.",
        description="Prefix of every topic name (lets tests and tenants share a broker)",
    )
    topic_partitions: int = Field(
        6, description="Partitions of keyed stream topics (the unit of scale-out)"
    )
    topic_replication: int = Field(1, description="Replication factor (3 in production)")

    # --- local stack sizing -------------------------------------------------
    kafka_heap: str = Field("1g", description="Kafka broker heap (-Xms/-Xmx) for the local stack")

    # --- services -----------------------------------------------------------
    http_host: str = Field("127.0.0.1", description="Ingest gateway bind address")
    http_port: int = Field(8080, description="Ingest gateway port")
    admin_token: SecretStr | None = Field(
        None, description="Token for the admin HTTP paths (secret; required to use them)"
    )
    log_level: str = Field("INFO", description="Log level of the services")

    # --- storage --------------------------------------------------------------
    storage_timescale: Literal["auto", "on", "off"] = Field(
        "auto",
        description="TimescaleDB: auto (use it when the running server has it loaded) | on "
        "(require it; a clear error when the server cannot) | off (plain PostgreSQL; the local "
        "stack then does not preload it). A database keeps the flavour of its first migration",
    )
    storage_premake_days: int = Field(
        7, description="Plain PostgreSQL: time partitions created ahead by migrate (days)"
    )
    storage_sink_group: str = Field(
        "kneeload-sink", description="Kafka consumer group of `kneeload sink`"
    )
    storage_sink_max_records: int = Field(
        2000, description="Most Kafka messages the sink writes in one transaction"
    )
    storage_sink_poll_ms: int = Field(
        200, description="How long the sink waits for messages per poll (ms)"
    )
    storage_sink_validate: str = Field(
        "low_volume",
        description="Sink-side JSON Schema validation: all | low_volume (every topic except the per-sample "
        "ones, which the producers validated; the database's types still reject bad rows) | none",
    )
    storage_backoff_initial_s: float = Field(
        0.5, description="Sink: first back-off after a database error (s)"
    )
    storage_backoff_max_s: float = Field(
        15.0, description="Sink: back-off cap while the database is down (s)"
    )
    storage_sink_crash_after_db_commit: int = Field(
        0,
        description="TESTING ONLY: exit abruptly after this many database commits, before the Kafka offset commit",
    )

    # --- worker -------------------------------------------------------------
    worker_app_id: str = Field(
        "worker",
        description="Faust app id (prefixed with topic_prefix): consumer group and changelog names",
    )
    worker_session_gap_s: float = Field(
        600.0, description="Event-time inactivity gap that ends a session (s)"
    )
    worker_lateness_horizon_s: float = Field(
        3 * 86400.0,
        description="Samples older than watermark − horizon are stored and flagged late, not counted (s)",
    )
    worker_day_grace_s: float = Field(
        3600.0,
        description="A local day is final once the athlete's watermark passes midnight + this grace (s)",
    )
    worker_max_sample_interval_s: float = Field(
        5.0,
        description="A sample counts for the time since the previous sample, capped at this (s)",
    )
    worker_first_sample_interval_s: float = Field(
        1.0, description="Interval credited to the first sample of a session (s)"
    )
    worker_bws_stale_s: float = Field(
        30.0,
        description="Treadmill telemetry older than this no longer supplies a sample's BWS (s)",
    )
    worker_idle_close_s: float = Field(
        60.0,
        description="Processing-time timer: an athlete silent this long gets open sessions closed and "
        "days up to its watermark's day finalised (demo compresses weeks into minutes; 0 = off) (s)",
    )
    worker_publish_interval_s: float = Field(
        5.0,
        description="Minimum processing-time interval between provisional (open/provisional) publishes per athlete (s)",
    )
    worker_tick_s: float = Field(1.0, description="Processing-time timer period of the worker (s)")
    worker_stall_timeout_s: float = Field(
        120.0,
        description="A worker behind on its input that processes, commits and recovers nothing for this long "
        "exits with status 75 for its supervisor to restart it (Faust can stop consuming after a rebalance; "
        "kneeload's choice; 0 = off) (s)",
    )
    worker_watchdog_interval_s: float = Field(
        10.0, description="How often the worker's stall watchdog looks (s)"
    )
    worker_unit_timeout_s: float = Field(
        60.0, description="Unit silent longer than this is offline (s; registry timeout_s wins)"
    )
    worker_unit_status_interval_s: float = Field(
        30.0, description="Minimum interval between unchanged unit_status publishes (s)"
    )
    fleet_running_min_speed_mps: float = Field(
        0.5,
        description="Belt speed from which a LEVER unit counts as running, for calibration (m/s; kneeload's choice)",
    )
    fleet_drift_bias_pp: float = Field(
        3.0,
        description="|measured − commanded support| above which a unit is drifting (percentage points; kneeload's choice)",
    )
    fleet_drift_critical_pp: float = Field(
        6.0,
        description="Mean |bias| of a drift episode from which unit_calibration_drift is critical (pp; kneeload's choice)",
    )
    fleet_drift_running_s: float = Field(
        1800.0,
        description="Running time |bias| must stay above fleet_drift_bias_pp before unit_calibration_drift (s; kneeload's choice)",
    )
    fleet_opening_hours: str = Field(
        "Mon-Fri 07:00-20:00; Sat 08:00-14:00",
        description="Clinic opening hours for utilisation and downtime, local time ('Mon-Fri 07:00-20:00; Sat 08:00-14:00'; a placeholder, kneeload's choice)",
    )
    fleet_timezone: str = Field(
        "UTC", description="IANA time zone of the opening hours (e.g. Europe/Copenhagen)"
    )
    fleet_clinic_opening_hours: str | None = Field(
        None,
        description='Per-clinic opening hours, JSON: {"clinic-id": {"timezone": "Europe/Oslo", "hours": "Mon-Fri 08:00-18:00"}}; others use fleet_opening_hours',
    )
    fleet_outcome_min_n: int = Field(
        5,
        ge=1,
        description="Athletes an outcome figure of a unit or clinic needs before it is shown, compared or ranked; below it withheld, n shown (kneeload's own choice)",
    )
    fleet_bws_target_pct: float = Field(
        5.0,
        ge=0.0,
        lt=100.0,
        description="BWS at or below which an athlete counts as progressed in the fleet outcomes (%; issue #15, one 5 % step from none)",
    )
    fleet_outcome_window_days: float = Field(
        14.0,
        gt=0.0,
        description="First and last window of the fleet outcomes' pain trajectory (days; issue #15's two weeks)",
    )
    alert_trend_alerts: bool = Field(
        False,
        description="Raise acwr_high and load_spike_wow alerts (off: neither predicted injury in Frandsen et al. 2025; both stay computed and shown)",
    )
    alert_spike_window_days: float = Field(
        30.0,
        description="Window of the session-spike ceiling: the longest session of this many days before (Frandsen et al. 2025)",
    )
    alert_spike_min_sessions: int = Field(
        3,
        description="Sessions the ceiling window must hold before a session-spike verdict (kneeload's choice)",
    )
    worker_alert_cooldown_s: float = Field(
        12 * 3600.0, description="Alert cooldown per kind and subject (event time, s)"
    )
    worker_acwr_history_days: int = Field(
        60, description="Daily loads kept per athlete for late-day recompute (days)"
    )
    worker_pain_preset: str = Field(
        "lever", description="Pain-monitoring preset: lever | silbernagel"
    )
    worker_pain_trend_delta_nrs: float = Field(
        1.0,
        gt=0.0,
        description="Change of mean weekly pain that reads worsening/improving on the overview and raises pain_trend_worsening (NRS points; kneeload's choice, below the ~2-point clinically important difference)",
    )
    worker_default_body_mass_kg: float = Field(
        70.0, description="Body mass used before an athlete's registry record arrives (kg)"
    )

    # --- ingest -------------------------------------------------------------
    ingest_max_body_bytes: int = Field(
        1_048_576,
        description="Largest JSON request body the gateway accepts (bytes; larger -> 413)",
    )
    ingest_max_upload_bytes: int = Field(
        33_554_432, description="Largest FIT/TCX activity upload (bytes; larger -> 413)"
    )
    ingest_max_future_skew_s: float = Field(
        300.0,
        description="Samples/reports timed more than this many seconds after the gateway clock are rejected",
    )
    ingest_dedupe_keys: int = Field(
        500_000,
        description="Recent record ids remembered per gateway/bridge process (duplicate detection)",
    )
    ingest_linger_ms: int = Field(5, description="Kafka producer linger of the gateways (ms)")
    ingest_produce_timeout_s: float = Field(
        5.0,
        description="Longest the HTTP gateway waits for Kafka per send and per acknowledgement before answering 503 kafka_unavailable (s)",
    )
    ingest_retry_after_s: int = Field(
        5, description="Retry-After of a 503 kafka_unavailable answer (s)"
    )
    ingest_workers: int = Field(1, description="uvicorn worker processes of `kneeload ingest`")
    mqtt_topic_root: str = Field(
        "lever", description="MQTT topic root of LEVER units: <root>/<unit_id>/<kind>"
    )
    mqtt_bridge_client_id: str = Field(
        "kneeload-bridge", description="Fixed MQTT client id of the bridge (its persistent session)"
    )
    mqtt_auth_dir: Path | None = Field(
        None,
        description="Where the broker's device password/ACL files go (default: <var_dir>/mosquitto/conf.d)",
    )
    mqtt_anonymous: bool = Field(
        False,
        description="OPT-OUT of the local stack's MQTT security, for local experiments only: Mosquitto starts "
        "letting anonymous clients publish anywhere (no per-unit accounts, no ACL). Applies when the broker starts",
    )

    # --- notify ---------------------------------------------------------------
    notify_routes_file: Path | None = Field(
        None,
        description="JSON file routing alerts to channels per team/clinic (README 'Dashboards and alerts')",
    )
    notify_routes: SecretStr | None = Field(
        None,
        description="The same routing document inline as JSON (secret: it holds webhook URLs; wins over notify_routes_file)",
    )
    notify_group_id: str = Field(
        "kneeload-notify", description="Kafka consumer group of the notifier"
    )
    notify_max_attempts: int = Field(
        6, description="Delivery attempts per (alert, channel) before dead-lettering"
    )
    notify_backoff_base_s: float = Field(2.0, description="First retry delay; doubles per attempt")
    notify_backoff_max_s: float = Field(300.0, description="Upper bound of a retry delay")
    notify_timeout_s: float = Field(
        10.0, description="Timeout of one webhook/SMTP delivery attempt"
    )
    notify_lease_s: float = Field(
        60.0,
        description="A claimed delivery not finished within this is retried (crashed notifier)",
    )
    notify_rate_limit_window_s: float = Field(300.0, description="Per-recipient rate-limit window")
    notify_rate_limit_count: int = Field(
        3, description="Messages per recipient per window; the rest fold into one digest"
    )
    notify_poll_s: float = Field(
        0.5, description="How often the delivery loop looks for due deliveries"
    )
    notify_smtp_host: str = Field("127.0.0.1", description="SMTP server for email channels")
    notify_smtp_port: int = Field(8025, description="SMTP port")
    notify_smtp_from: str = Field("kneeload@localhost", description="From address of alert emails")
    notify_smtp_security: Literal["none", "starttls", "ssl"] = Field(
        "none",
        description="SMTP transport: starttls (port 587) | ssl (implicit TLS, port 465) | none (a local relay only)",
    )
    notify_smtp_username: str | None = Field(
        None,
        description="SMTP login (AUTH); needs starttls or ssl unless the server is on loopback",
    )
    notify_smtp_password: SecretStr | None = Field(
        None, description="SMTP password (secret: printed and logged masked)"
    )
    notify_smtp_ca_file: Path | None = Field(
        None,
        description="PEM CA bundle to trust for the SMTP server's certificate (default: the system's)",
    )
    notify_retry_after_max_s: float = Field(
        3600.0,
        description="Longest Retry-After (429/503 from a webhook or Slack) the notifier honours (s)",
    )
    notify_ack_token: SecretStr | None = Field(
        None,
        description="Bearer token of POST /alerts/{id}/ack (secret; falls back to admin_token; unset disables the endpoint)",
    )
    notify_ack_host: str = Field(
        "127.0.0.1", description="Bind address of the acknowledgement endpoint"
    )
    notify_ack_port: int = Field(8090, description="Port of the acknowledgement endpoint")
    grafana_datasource_uid: str = Field(
        "kneeload-pg", description="UID of the PostgreSQL data source the dashboards use"
    )

    def model_post_init(self) -> None:
        """``mqtt://user:pass@host`` -> plain URL + username + secret password."""
        u = urlsplit(self.mqtt_url)
        if u.username is None and u.password is None:
            return
        if self.mqtt_username is None and u.username:
            self.mqtt_username = unquote(u.username)
        if self.mqtt_password is None and u.password is not None:
            self.mqtt_password = SecretStr(unquote(u.password))
        self.mqtt_url = urlunsplit(u._replace(netloc=u.netloc.rsplit("@", 1)[1]))


def reveal(value: SecretStr | str | None) -> str | None:
    """The plain text of a secret setting, at the point of use (a ``model_copy`` may have put
    a plain string or a pydantic ``SecretStr`` there: all are accepted)."""
    if value is None or isinstance(value, str):
        return value
    return value.get_secret_value()


def _load() -> Settings:
    env_file = _env_file()
    s = Settings(_env_file=env_file) if env_file.exists() else Settings()
    return _with_local_passfile(s)


def _with_local_passfile(s: Settings) -> Settings:
    """Let a password-less database URL use the local stack's generated password.

    ``make up`` writes ``var/pg/pgpass`` (libpq's password-file format, matched on host and
    port), so ``KNEELOAD_DATABASE_URL=postgresql://kneeload@127.0.0.1:PORT/db`` works for the
    local cluster without the password ever being typed or committed.
    """
    from urllib.parse import urlsplit

    url = s.database_url
    passfile = s.var_dir / "pg" / "pgpass"
    if urlsplit(url).password or "passfile=" in url or not passfile.exists():
        return s
    sep = "&" if "?" in url else "?"
    return s.model_copy(update={"database_url": f"{url}{sep}passfile={passfile}"})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (environment first, then ``var/kneeload.env``)."""
    return _load()


def reload_settings() -> Settings:
    """Forget the cached settings (tests change the environment)."""
    get_settings.cache_clear()
    return get_settings()
