#!/usr/bin/env bash
# Build the Windows MSI with msitools' wixl from a payload folder (the Windows PyInstaller bundle).
# Usage: installer/build-msi.sh PAYLOAD_DIR OUT.msi VERSION
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PAYLOAD="$(cd "${1:?payload dir}" && pwd)"; OUT="${2:?output .msi}"; VERSION="${3:?version}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
find "$PAYLOAD" -type f | LC_ALL=C sort |
  wixl-heat --var var.SourceDir -p "$PAYLOAD/" --directory-ref INSTALLDIR --component-group CG.payload --win64 \
  > "$tmp/payload.wxs"
# wixl resolves File/@Source relative to the .wxs folder: put both sources and a link to the payload in $tmp.
cp "$HERE/windows/radplan.wxs" "$tmp/radplan.wxs"
ln -s "$PAYLOAD" "$tmp/payload"
sed -i 's|\$(var.SourceDir)/|payload/|' "$tmp/payload.wxs"
OUT_ABS="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
(cd "$tmp" && wixl -a x64 -D Version="$VERSION" -D Win64=yes -o "$OUT_ABS" radplan.wxs payload.wxs)
