#!/usr/bin/env bash
# Usage: apt_install.sh "WHAT IS SKIPPED WITHOUT IT" PACKAGE...
# Installs Debian packages for optional parts of the tests. Needs root (or passwordless sudo) and apt-get;
# without them it says what will be skipped and succeeds, so `make test` still runs everything else.
set -euo pipefail
why="$1"; shift
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "$* not installed and no root: $why will be skipped" >&2; exit 0; fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get: install $* yourself, else $why will be skipped" >&2; exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
