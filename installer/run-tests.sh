#!/usr/bin/env bash
# The whole test suite with real parts: installs what is missing, then runs pytest inside a private D-Bus
# session with a real Secret Service (gnome-keyring) and a virtual X screen (Xvfb) for the Qt/VTK tests.
# Lint (ruff), architecture contracts (import-linter) and mypy run as tests too (tests/test_tooling.py).
# Extra arguments go to pytest, e.g. installer/run-tests.sh -k audit -x
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/installer/bootstrap.sh"
cd "$ROOT"
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-xcb}" PYTHONDONTWRITEBYTECODE=1
exec dbus-run-session -- "$ROOT/installer/with-keyring.sh" \
  xvfb-run -a -s "-screen 0 1920x1080x24" \
  "$ROOT/.venv/bin/python" -m pytest -p no:cacheprovider "$@"
