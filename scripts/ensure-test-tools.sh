#!/usr/bin/env bash
# Runs before `npm test`: installs what the tests drive besides Node, from Debian's packages, when it is
# missing. The browser tests use Debian's Chromium through playwright-core, which never downloads one.
set -euo pipefail
if [ -n "${CHROMIUM_PATH:-}" ] || command -v chromium >/dev/null; then exit 0; fi
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
echo "npm test: installing Debian's chromium for the browser tests" >&2
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
