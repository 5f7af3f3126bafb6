#!/usr/bin/env bash
# Installs Debian's Chromium for the end-to-end browser test when it is missing.
# Needs root (or passwordless sudo); without it the browser test skips and says why.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
exec bash "$(dirname "$0")/apt_install.sh" "the browser test" chromium chromium-driver fonts-dejavu-core
