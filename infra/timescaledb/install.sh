#!/usr/bin/env bash
# `make timescaledb`: build TimescaleDB from its unmodified release source and install it into
# Debian's PostgreSQL 15, once per machine. Safe to repeat: nothing is done when the installed
# version already matches. The source is never copied into this repository; it is read from
# TIMESCALEDB_TARBALL (default: ../shared/vendor/timescaledb-<version>.tar.gz beside the
# checkout) and unpacked under var/build/.
#
#   TIMESCALEDB_VERSION   release to install (2.28: the last line supporting PostgreSQL 15)
#   TIMESCALEDB_TARBALL   its source archive (`git archive` of the release tag)
#   PG_CONFIG             the PostgreSQL to build for (Debian's postgresql-15)
#   TIMESCALEDB_JOBS      parallel compile jobs (default: the number of cores)
#
# Build dependencies (Debian packages, installed with apt-get when missing): postgresql-server-dev-15
# cmake build-essential libssl-dev libkrb5-dev. About 10 minutes on 2 cores.
# After installing, the local stack preloads it at its next start (`kneeload stack up`).
set -euo pipefail

VERSION="${TIMESCALEDB_VERSION:-2.28.3}"
TARBALL="${TIMESCALEDB_TARBALL:-../shared/vendor/timescaledb-${VERSION}.tar.gz}"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
BUILD_ROOT="${TIMESCALEDB_BUILD_DIR:-var/build}"
JOBS="${TIMESCALEDB_JOBS:-$(nproc)}"
DEPS=(postgresql-server-dev-15 cmake build-essential libssl-dev libkrb5-dev)

installed_version() {
    [ -x "$PG_CONFIG" ] || return 0
    local control lib v
    control="$("$PG_CONFIG" --sharedir)/extension/timescaledb.control"
    [ -f "$control" ] || return 0
    v="$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" "$control")"
    lib="$("$PG_CONFIG" --pkglibdir)/timescaledb-${v}.so"
    [ -n "$v" ] && [ -f "$lib" ] && echo "$v"
    return 0
}

have="$(installed_version)"
if [ "$have" = "$VERSION" ] && [ -z "${DESTDIR:-}" ]; then
    echo "timescaledb ${VERSION} already installed into $("$PG_CONFIG" --pkglibdir) (nothing to do)"
    exit 0
fi
if [ ! -f "$TARBALL" ]; then
    echo "make timescaledb: no source archive at ${TARBALL}" >&2
    echo "  get timescaledb-${VERSION}.tar.gz (the release's source) and give its path:" >&2
    echo "  make timescaledb TIMESCALEDB_TARBALL=/path/to/timescaledb-${VERSION}.tar.gz" >&2
    echo "  (or install Timescale's own packages; kneeload runs on plain PostgreSQL without it)" >&2
    exit 1
fi

missing=()
for p in "${DEPS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing build dependencies: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "building timescaledb ${VERSION} from ${TARBALL} for $("$PG_CONFIG" --version)${have:+ (installed now: $have)}"
mkdir -p "$BUILD_ROOT"
src="${BUILD_ROOT}/timescaledb-${VERSION}"
rm -rf "$src"
tar -xzf "$TARBALL" -C "$BUILD_ROOT"
[ -d "$src" ] || { echo "make timescaledb: ${TARBALL} did not unpack to ${src}" >&2; exit 1; }
log="${BUILD_ROOT}/timescaledb-${VERSION}.log"
start=$(date +%s)
(
    cd "$src"
    ./bootstrap -DPG_CONFIG="$PG_CONFIG" -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
        -DWARNINGS_AS_ERRORS=OFF -DSEND_TELEMETRY_DEFAULT=OFF
    make -C build -j"$JOBS"
    make -C build install
) >"$log" 2>&1 || { echo "make timescaledb: the build failed; last lines of ${log}:" >&2; tail -n 30 "$log" >&2; exit 1; }
rm -rf "$src"
if [ -n "${DESTDIR:-}" ]; then
    echo "timescaledb ${VERSION} staged under ${DESTDIR} in $(( $(date +%s) - start )) s (log: ${log})"
    exit 0
fi
now="$(installed_version)"
if [ "$now" != "$VERSION" ]; then
    echo "make timescaledb: installed, but PostgreSQL reports '${now}' instead of ${VERSION}" >&2
    exit 1
fi
echo "timescaledb ${VERSION} installed in $(( $(date +%s) - start )) s (log: ${log})."
echo "The local stack preloads it at its next start: kneeload stack down postgres && kneeload stack up postgres"
