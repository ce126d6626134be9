#!/usr/bin/env bash
# Run a command with a real Secret Service: a gnome-keyring daemon with an unlocked, throw-away login keyring.
# Meant to run inside `dbus-run-session`, which gives the command (and the daemon) a private session bus.
# The keyring files live in a temporary XDG_DATA_HOME that is removed afterwards.
set -euo pipefail
[ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ] || { echo "with-keyring.sh: run me under dbus-run-session" >&2; exit 2; }
KEYRING_HOME=$(mktemp -d -t radplan-keyring.XXXXXX)
trap 'rm -rf "$KEYRING_HOME"' EXIT
export XDG_DATA_HOME="$KEYRING_HOME/data" XDG_RUNTIME_DIR="$KEYRING_HOME/run"
mkdir -p "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
# --unlock reads the login keyring's password on stdin (created on first use); the secrets component
# registers org.freedesktop.secrets on this session bus.
eval "$(printf 'radplan-test-keyring' | gnome-keyring-daemon --unlock --components=secrets)"
export GNOME_KEYRING_CONTROL
"$@"
