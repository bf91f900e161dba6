#!/usr/bin/env bash
# Debian's chromium for the dashboard's browser tests (Playwright drives it; no browser download).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "chromium is missing and installing it needs root: sudo apt-get install chromium" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium >/dev/null
echo "installed $(/usr/bin/chromium --version)"
