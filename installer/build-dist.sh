#!/usr/bin/env bash
# `make dist`: the PyInstaller one-folder bundle (no PyTorch), then .deb, .tar.gz, CycloneDX SBOM and SHA256SUMS in
# dist/release/, signed when RADPLAN_SIGNING_KEY (with GNUPGHOME) is set. Reproducible: SOURCE_DATE_EPOCH is the
# last commit's time unless given; PYTHONHASHSEED is fixed.
# Size budget: the unpacked bundle must stay under RADPLAN_BUNDLE_BUDGET_MB (default 1500 MB; it was 1200 MB until
# the GUI joined the bundle: VTK rendering and Qt OpenGL/PDF took it from 1098 to 1388 MB).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
installer/bootstrap.sh
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}" PYTHONHASHSEED=0
BUILD="${RADPLAN_BUILD_DIR:-$ROOT/build/pyinstaller}"
OUT="${RADPLAN_RELEASE_DIR:-$ROOT/dist/release}"
VERSION=$(.venv/bin/python -c 'from importlib.metadata import version; print(version("radplan"))')
.venv/bin/pyinstaller --noconfirm --clean --log-level WARN --distpath "$BUILD/dist" --workpath "$BUILD/work" \
  installer/pyinstaller/radplan.spec
rm -rf "$BUILD/work"  # PyInstaller's intermediate files (--clean rebuilds them anyway): about 0.5 GB
BUNDLE="$BUILD/dist/radplan"
size_mb=$(( $(du -sk "$BUNDLE" | cut -f1) / 1024 ))
budget="${RADPLAN_BUNDLE_BUDGET_MB:-1500}"
echo "bundle: $BUNDLE, ${size_mb} MB (budget ${budget} MB)"
if [ "$size_mb" -gt "$budget" ]; then
  echo "build-dist: the bundle (${size_mb} MB) is over its size budget (${budget} MB)" >&2
  exit 1
fi
rm -rf "$OUT"
.venv/bin/python installer/package.py --bundle "$BUNDLE" --out "$OUT" --version "$VERSION"
if [ -n "${RADPLAN_SIGNING_KEY:-}" ]; then
  installer/sign.sh "$OUT"
else
  echo "build-dist: RADPLAN_SIGNING_KEY not set: artifacts are unsigned (installer/sign.sh signs them)" >&2
fi
ls -l "$OUT"
