#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries for the PostgreSQL half of the tests when they are missing.
# The tests start their own throwaway server (tests/pgserver.py); nothing is configured or left running.
# Needs root (or passwordless sudo); without it the PostgreSQL half skips and says why.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
  exit 0
fi
exec bash "$(dirname "$0")/apt_install.sh" "the PostgreSQL tests" postgresql
