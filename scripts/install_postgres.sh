#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries for the PostgreSQL half of the tests when they are missing.
# The tests start their own throwaway server (tests/pgserver.py); nothing is configured or left running.
# Needs root (or passwordless sudo); without it the PostgreSQL half skips and says why.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "postgresql not installed and no root: the PostgreSQL tests will be skipped" >&2; exit 0; fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get: install postgresql yourself to run the PostgreSQL tests" >&2; exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
