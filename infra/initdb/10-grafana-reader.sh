#!/bin/sh
# Runs once, when the TimescaleDB container initialises an empty data volume
# (docker-entrypoint-initdb.d). Creates only the LOGIN role Grafana's data source uses
# ($KNEELOAD_GRAFANA_DB_USER, default grafana_reader); what it may read is storage's: the compose
# `init` service runs `kneeload storage grant-coach/grant-clinic --role <it> ...` (GRANT
# kneeload_reader, which has SELECT on every kneeload_api view, plus the tenant grants RLS checks).
# Idempotent: an existing role is left as it is, so it can be re-run by hand on an existing
# volume (tests/stack/test_compose.py runs it against the local PostgreSQL).
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$KNEELOAD_GRAFANA_DB_PASSWORD" \
     -v role="${KNEELOAD_GRAFANA_DB_USER:-grafana_reader}" \
     --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'role', :'pw')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')
\gexec
SQL
