#!/usr/bin/env bash
# The main job on built-in defaults (issue 10): a fresh encrypted store in demo-output/store with a demo admin and a
# radiologist, then `radplan demo`: an embedded demo PACS (in-process pynetdicom SCP) serves a synthetic thorax CT
# study (seed 1, 512x512x150) with an RT Dose and a clinical note; the whole pipeline runs against it (retrieve, AI
# segmentation in the engine worker, radiomics, NLP, model scores, rule base, draft plan with DVH, PDF, C-STORE of
# SEG/RTSTRUCT/PDF back) and the audit trail is verified. With a display and the GUI installed the app opens on the
# result; headless (CI) it prints the PDF path. RADPLAN_DEMO_ARGS passes options (e.g. "--shape 128x128x60").
# The store key goes to the OS keyring when a Secret Service runs, else it is wrapped by a demo passphrase
# (RADPLAN_PASSPHRASE, default below: for demo data only, never for patient data).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${RADPLAN_DEMO_DIR:-$ROOT/demo-output}"
RADPLAN="$ROOT/.venv/bin/radplan"
rm -rf "$OUT"
mkdir -p "$OUT"
export RADPLAN_DATA_DIR="$OUT/store"
export RADPLAN_PASSPHRASE="${RADPLAN_PASSPHRASE:-radplan-demo-only-passphrase}"
admin=(env RADPLAN_USER=demo-admin RADPLAN_PASSWORD=demo-admin-password)
rad=(env RADPLAN_USER=demo-rad RADPLAN_PASSWORD=demo-rad-password)
"${admin[@]}" "$RADPLAN" init --admin demo-admin
"${admin[@]}" RADPLAN_NEW_PASSWORD=demo-rad-password "$RADPLAN" user add demo-rad --role radiologist
headless=(--headless)
if { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; } && "$RADPLAN" gui --help >/dev/null 2>&1; then
    headless=()  # a display and the GUI: the app opens on the result
fi
# shellcheck disable=SC2086  # RADPLAN_DEMO_ARGS is a list of options
"${rad[@]}" "$RADPLAN" demo --out "$OUT/demo" "${headless[@]}" ${RADPLAN_DEMO_ARGS:-}
"${admin[@]}" "$RADPLAN" audit verify
echo "demo done: store in $RADPLAN_DATA_DIR, study and results in $OUT/demo (users demo-admin / demo-rad)"
