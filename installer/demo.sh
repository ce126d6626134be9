#!/usr/bin/env bash
# The main job on built-in defaults, until the end-to-end pipeline lands (issue 10): a fresh encrypted store in
# demo-output/store, a synthetic thorax CT study (seed 1) with truth, RTSTRUCT, RTDOSE and a note, imported as a
# radiologist, listed, and the audit trail verified.
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
"$RADPLAN" demo-data "$OUT/study" --seed 1
"${rad[@]}" "$RADPLAN" import "$OUT/study"
"${rad[@]}" "$RADPLAN" studies
"${admin[@]}" "$RADPLAN" audit verify
echo "demo done: store in $RADPLAN_DATA_DIR, study files in $OUT/study (users demo-admin / demo-rad)"
