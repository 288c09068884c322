#!/usr/bin/env bash
# Runs the test suite so that the exit code reflects the tests, not the interpreter's
# shutdown: a process using the Temporal SDK can abort with 134 after all its work succeeded
# (sdk-python issue 300). tests/conftest.py writes pytest's own exit status to a file in
# pytest_sessionfinish; when the process dies by a signal after that, we trust the file.
set -u
cd "$(dirname "$0")/.."
mkdir -p var
status_file=var/pytest-exit-status
rm -f "$status_file"
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -ge 128 ] && [ -s "$status_file" ]; then
  echo "pytest process ended with $rc at interpreter shutdown; the tests' own status was $(cat "$status_file")"
  rc=$(cat "$status_file")
fi
exit "$rc"
