#!/usr/bin/env bash
# Install what the tests need and run them.  Works on a fresh Debian machine as root (CI) or in a
# user's environment; the browser tests use Debian's chromium (Playwright's own download cannot work
# offline).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
  else
    echo "warning: /usr/bin/chromium is missing, browser tests will be skipped (apt-get install chromium)" >&2
  fi
fi

"$PY" -m pip install -q --disable-pip-version-check -r requirements-test.txt
exec "$PY" -m pytest -q "$@"
