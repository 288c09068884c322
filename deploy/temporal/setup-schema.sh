#!/bin/sh
# One-shot (temporalio/admin-tools): create or upgrade Temporal's own schema in PostgreSQL
# with Temporal's tool, as the production server image expects (it sets up nothing itself).
# Idempotent: setup-schema creates the version table only where it is missing, and
# update-schema applies only the versions not applied yet. Any failure stops the stack.
set -eu
: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${POSTGRES_PWD:?}"
SCHEMA=/etc/temporal/schema/postgresql/v12
for pair in temporal:temporal temporal_visibility:visibility; do
  db=${pair%%:*}
  dir=${pair#*:}
  sql() {
    temporal-sql-tool --plugin postgres12 --endpoint "$POSTGRES_SEEDS" --port 5432 \
      --user "$POSTGRES_USER" --password "$POSTGRES_PWD" --database "$db" "$@"
  }
  sql setup-schema -v 0.0
  sql update-schema -d "$SCHEMA/$dir/versioned"
done
echo "Temporal schema ready"
