#!/bin/sh
# Entrypoint of the compose `mosquitto` service (POSIX sh: the eclipse-mosquitto image's busybox).
#
# kneeload writes the broker's account files (kneeload.passwd, kneeload.acl) into a volume shared
# with its services; Mosquitto must read them as its own user and be told when they change.
# This script installs them into $MOSQUITTO_AUTH_DIR (owner $MOSQUITTO_USER, mode 600), starts
# Mosquitto, and every $KNEELOAD_MQTT_AUTH_POLL_S seconds re-installs and SIGHUPs it when the
# source files changed (a unit registered, a key rotated or revoked). The broker re-checks
# connected clients on SIGHUP: a revoked unit is disconnected.
#
# tests/stack/test_compose.py runs this very script with Debian's mosquitto and these variables
# pointed at a temporary directory.
set -eu
SRC=${KNEELOAD_MQTT_AUTH_DIR:-/var/lib/kneeload/mqtt-auth}
DST=${MOSQUITTO_AUTH_DIR:-/mosquitto/auth}
CONF=${MOSQUITTO_CONF:-/mosquitto/config/mosquitto.conf}
OWNER=${MOSQUITTO_USER:-mosquitto}
POLL=${KNEELOAD_MQTT_AUTH_POLL_S:-2}
FILES="kneeload.passwd kneeload.acl"

fingerprint() {
  (cd "$SRC" && cat $FILES 2>/dev/null) | cksum
}

install_files() {
  for f in $FILES; do
    cp "$SRC/$f" "$DST/$f.new"
    chown "$OWNER" "$DST/$f.new"
    chmod 600 "$DST/$f.new"
    mv "$DST/$f.new" "$DST/$f"
  done
}

mkdir -p "$DST"
waited=0
for f in $FILES; do
  while [ ! -s "$SRC/$f" ]; do
    if [ "$waited" -ge 120 ]; then
      echo "start.sh: $SRC/$f missing: run \`kneeload registry mqtt-auth enable\` (the init service)" >&2
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
done
install_files
last=$(fingerprint)

mosquitto -c "$CONF" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT

while kill -0 "$pid" 2>/dev/null; do
  sleep "$POLL" &
  wait $! || true
  now=$(fingerprint)
  if [ "$now" != "$last" ]; then
    install_files
    kill -HUP "$pid" 2>/dev/null || true
    last=$now
    echo "start.sh: kneeload's accounts changed: broker reloaded"
  fi
done
wait "$pid"
