#!/usr/bin/env bash
# Prepare a development/runtime environment for RadPlan on Debian (bookworm or newer):
#   1. Debian packages from installer/debian-packages.txt (only the missing ones; sudo when not root);
#   2. .venv/ in the repository root with every Python package pinned in requirements/lock.txt;
#   3. the known install traps, solved once here (see docs/install.md):
#      - pyradiomics 3.1.0 is sdist-only for Python >= 3.10 and its sdist lacks two C headers and carries a wrong
#        version: we fetch the 3.1.0 and 3.0.1 sdists (sha256-pinned), add the identical headers from 3.0.1, fix the
#        version and build a wheel once, cached in .venv/wheelhouse/;
#      - experta 1.9.4 pins frozendict 1.2 (broken on Python >= 3.10): everything is installed with --no-deps from
#        the lock, which pins frozendict 2.x;
#      - torch is pinned to 2.13.0: the CPU build on machines without an NVIDIA GPU (the local wheel, or the PyTorch
#        CPU index), the CUDA build from PyPI where nvidia-smi works.
# Re-running is fast: each step is skipped when its stamp matches.
# Usage: installer/bootstrap.sh [--no-apt]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
LOCK="$ROOT/requirements/lock.txt"
log() { printf '[bootstrap] %s\n' "$*" >&2; }

install_debian_packages() {
  local wanted missing=()
  wanted=$(grep -Ev '^\s*(#|$)' "$ROOT/installer/debian-packages.txt")
  for p in $wanted; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { log "need root or sudo to install: ${missing[*]}"; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || log "apt-get update failed; trying with the current lists"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts orthanc as a system service on install; the tests start their own instances.
  if [[ " ${missing[*]} " == *" orthanc "* ]] && command -v service >/dev/null; then
    $SUDO service orthanc stop >/dev/null 2>&1 || true
  fi
}

build_pyradiomics_wheel() {
  local wh="$VENV/wheelhouse"
  ls "$wh"/pyradiomics-3.1.0-*.whl >/dev/null 2>&1 && return 0
  log "building pyradiomics 3.1.0 from its sdist (one time)"
  local tmp; tmp=$(mktemp -d)
  local base=https://files.pythonhosted.org/packages
  curl -fsSL -o "$tmp/a.tgz" "$base/03/c1/20fc2c50ab1e3304da36d866042a1905a2b05a1431ece35448ab6b4578f2/pyradiomics-3.1.0.tar.gz"
  curl -fsSL -o "$tmp/b.tgz" "$base/1b/35/c7f7fb7affd302fd8107dcee6b6e7aaf3708b75ad69d5f9a3dfcadb73eaa/pyradiomics-3.0.1.tar.gz"
  (cd "$tmp" && sha256sum -c --quiet - <<SUMS
24722c962a6bbd09bc39c1c67dbffe92435f9692a421fabaae8a6b4511eb48e4  a.tgz
47c57f441d6cb7973fa3b2ea48d3948df78e3348e1c69e1e2ff19001601fc2f5  b.tgz
SUMS
  )
  tar -xzf "$tmp/a.tgz" -C "$tmp" && tar -xzf "$tmp/b.tgz" -C "$tmp"
  cp "$tmp"/pyradiomics-3.0.1/radiomics/src/*.h "$tmp"/pyradiomics-3.1.0/radiomics/src/
  sed -i 's/^version = "3.0.1a1"/version = "3.1.0"/' "$tmp"/pyradiomics-3.1.0/pyproject.toml
  # Build requirements (numpy, setuptools, versioneer) come from the lock, installed before this step.
  "$VENV/bin/pip" wheel -q --no-build-isolation --no-deps -w "$wh" "$tmp/pyradiomics-3.1.0"
  rm -rf "$tmp"
}

install_torch() {
  if "$VENV/bin/python" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null; then
    return 0
  fi
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    log "NVIDIA GPU found: installing the CUDA build of torch 2.13.0"
    "$VENV/bin/pip" install -q "torch==2.13.0"
  else
    log "no NVIDIA GPU: installing the CPU build of torch 2.13.0"
    # A local CPU wheel (pip's configured find-links) first; else the PyTorch CPU index.
    "$VENV/bin/pip" install -q --no-deps --no-index "torch==2.13.0" 2>/dev/null ||
      "$VENV/bin/pip" install -q --no-deps "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
  fi
}

main() {
  [ "${1:-}" = "--no-apt" ] || install_debian_packages
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PY" -m venv "$VENV"
  fi
  local stamp="$VENV/.radplan-stamp" want
  want=$(cat "$LOCK" "$ROOT/pyproject.toml" "$0" | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  log "installing pinned Python packages from requirements/lock.txt"
  # torch and pyradiomics are special (see above); everything else straight from the lock, no resolver.
  grep -Ev '^(torch|pyradiomics)==' "$LOCK" > "$VENV/lock-main.txt"
  "$VENV/bin/pip" install -q --no-deps -r "$VENV/lock-main.txt"
  install_torch
  build_pyradiomics_wheel
  "$VENV/bin/pip" install -q --no-deps --no-index --find-links "$VENV/wheelhouse" "pyradiomics==3.1.0"
  "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e "$ROOT"
  echo "$want" > "$stamp"
  log "environment ready: $VENV"
}
main "$@"
