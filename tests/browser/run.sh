#!/usr/bin/env bash
# Browser test (issue 3): headless Chromium runs echotest.html against a real Portunus binary over
# HTTP long-poll and WebSocket. Installs what it needs when missing (Debian's chromium, the pinned
# npm packages), then runs `node --test tests/browser/` and exits with its status.
# The binary comes from $PORTUNUS_BIN, else target/release/portunus, else target/debug/portunus.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CHROMIUM="${CHROMIUM_BIN:-/usr/bin/chromium}"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ "$APT_UPDATED" = 0 ]; then
    timeout 600 $SUDO apt-get update -q
    APT_UPDATED=1
  fi
  timeout 900 $SUDO apt-get install -y -q --no-install-recommends "$@"
}

if [ ! -x "$CHROMIUM" ]; then
  echo "browser tests: installing chromium (Debian package)"
  apt_install chromium
fi
if ! command -v node >/dev/null 2>&1; then
  echo "browser tests: installing nodejs"
  apt_install nodejs npm
fi

cd "$HERE"
# npm ci when playwright-core is missing or not the version package.json pins.
if ! node -e '
  const want = require("./package.json").devDependencies["playwright-core"];
  const have = require("./node_modules/playwright-core/package.json").version;
  process.exit(want === have ? 0 : 1);
' >/dev/null 2>&1; then
  echo "browser tests: npm ci"
  timeout 600 npm ci --no-audit --no-fund
fi

cd "$ROOT"
status=0
# One file at a time: parallel Chromiums starve each other's encoders (simulcast layers).
for file in tests/browser/*.test.mjs; do
  timeout 600 node --test "$file" || status=$?
done
exit "$status"
