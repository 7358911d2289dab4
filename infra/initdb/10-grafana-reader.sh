#!/bin/sh
# Runs once, when the TimescaleDB container initialises an empty data volume
# (docker-entrypoint-initdb.d). Creates only the LOGIN role Grafana's data source uses;
# what it may read is storage's: the compose `init` service runs
# `kneeload storage grant-coach/grant-clinic --role grafana_reader ...` (GRANT kneeload_reader,
# which has SELECT on every kneeload_api view, plus the tenant grants RLS checks).
# On an existing volume, create the role once by hand with the same statement.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$KNEELOAD_GRAFANA_DB_PASSWORD" \
     --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'pw';
SQL
