#!/usr/bin/env bash
# Installs Debian's Chromium for the end-to-end browser test when it is missing.
# Needs root (or passwordless sudo); without it the browser test skips and says why.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "chromium not installed and no root: the browser test will be skipped" >&2; exit 0; fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get: install chromium yourself to run the browser test" >&2; exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
