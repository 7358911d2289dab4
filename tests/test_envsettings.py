"""The settings load without pydantic (kneeload._envsettings): what pydantic-settings did for
them — types, precedence, bounds, env file, secrets — by hand (issue #20: cheap start)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kneeload.settings import SecretStr, Settings, SettingsError


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for k in list(os.environ):
        if k.upper().startswith("KNEELOAD_"):
            monkeypatch.delenv(k)
    return monkeypatch


def test_text_from_the_environment_becomes_the_declared_types(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("KNEELOAD_TOPIC_PARTITIONS", " 12 ")
    clean_env.setenv("KNEELOAD_WORKER_TICK_S", "0.25")
    clean_env.setenv("kneeload_alert_trend_alerts", "Yes")  # any case, as pydantic-settings
    clean_env.setenv("KNEELOAD_MQTT_AUTH_DIR", "/tmp/auth")
    clean_env.setenv("KNEELOAD_ADMIN_TOKEN", "tok-123456789")
    clean_env.setenv("KNEELOAD_STORAGE_TIMESCALE", "off")
    s = Settings()
    assert (s.topic_partitions, s.worker_tick_s, s.alert_trend_alerts) == (12, 0.25, True)
    assert s.mqtt_auth_dir == Path("/tmp/auth") and s.storage_timescale == "off"
    assert isinstance(s.admin_token, SecretStr)
    assert s.admin_token.get_secret_value() == "tok-123456789"
    assert "tok-123456789" not in repr(s) + str(s) + s.model_dump_json()
    assert s.notify_smtp_username is None and s.kafka_bootstrap == "127.0.0.1:19092"


def test_arguments_beat_the_environment_which_beats_the_env_file(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / "kneeload.env"
    env_file.write_text(
        "# comment\nexport KNEELOAD_TOPIC_PREFIX='file.'\nKNEELOAD_LOG_LEVEL=DEBUG  # why\n"
        'KNEELOAD_HTTP_PORT="8181"\n'
    )
    clean_env.setenv("KNEELOAD_LOG_LEVEL", "WARNING")
    s = Settings(_env_file=env_file, http_port=9000)
    assert (s.topic_prefix, s.log_level, s.http_port) == ("file.", "WARNING", 9000)
    assert Settings(_env_file=env_file).http_port == 8181


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KNEELOAD_TOPIC_PARTITIONS", "many"),
        ("KNEELOAD_ALERT_TREND_ALERTS", "perhaps"),
        ("KNEELOAD_STORAGE_TIMESCALE", "sometimes"),
        ("KNEELOAD_FLEET_OUTCOME_MIN_N", "0"),  # ge=1
        ("KNEELOAD_FLEET_BWS_TARGET_PCT", "100"),  # lt=100
    ],
)
def test_a_value_that_does_not_fit_names_its_variable(
    clean_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        Settings()


def test_copies_equality_and_mqtt_credentials(clean_env: pytest.MonkeyPatch) -> None:
    s = Settings(mqtt_url="mqtt://bridge:p%40ss@127.0.0.1:1883")
    assert (s.mqtt_url, s.mqtt_username) == ("mqtt://127.0.0.1:1883", "bridge")
    assert s.mqtt_password == SecretStr("p@ss")
    c = s.model_copy(update={"topic_prefix": "x."})
    assert c.topic_prefix == "x." and s.topic_prefix == "kneeload." and c != s
    assert c.model_copy(update={"topic_prefix": "kneeload."}) == s
    assert set(Settings.model_fields) == set(s.model_dump())
    assert Settings.model_fields["kafka_bootstrap"].description


def test_the_settings_command_imports_no_pydantic() -> None:
    probe = "import sys, kneeload.settings as m; m.get_settings(); print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
