#!/usr/bin/env bash
# The one test command: install, start PostgreSQL and RabbitMQ, lint, type-check, run every test
# on SQLite and PostgreSQL and against the real RabbitMQ, then stop what it started.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

scripts/bootstrap.sh
scripts/browser.sh  # Debian's chromium + chromedriver for tests/web (no-op when present)

# This checkout's own servers (services.sh: a state dir and node name derived from the checkout's
# path, free ports picked automatically), so two runs from two checkouts on one machine never
# reuse, or stop, each other's. Exported: the fault tests restart this PostgreSQL.
eval "export $(scripts/services.sh config | grep '^HOTLINE_TEST_SERVICES_DIR=')"
started_services=0
if scripts/services.sh status >/dev/null 2>&1; then started_services=2; fi  # keep a developer's
cleanup() {
  if [ "$started_services" = 1 ]; then scripts/services.sh stop || true; fi
}
trap cleanup EXIT
eval "$(scripts/services.sh start)"
[ "$started_services" = 2 ] || started_services=1
export HOTLINE_REQUIRE_SERVICES=1

echo "== ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy" >&2
.venv/bin/mypy
echo "== pytest (SQLite + PostgreSQL, embedded broker + RabbitMQ)" >&2
.venv/bin/python -m pytest "$@"
