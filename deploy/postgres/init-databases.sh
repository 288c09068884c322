#!/bin/sh
# Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d):
# the databases of Temporal (its schema is made by deploy/temporal/setup-schema.sh) and the
# casework store (its schema by `python -m starter db upgrade`).
set -eu
for db in temporal temporal_visibility casework; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -c "CREATE DATABASE $db"
done
