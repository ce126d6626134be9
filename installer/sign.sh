#!/usr/bin/env bash
# Sign a release folder made by installer/package.py:
#   every .deb with debsigs (origin signature), every .msi/.exe with osslsigncode (Authenticode), then a fresh
#   SHA256SUMS over all artifacts with a detached, ASCII-armoured GPG signature (SHA256SUMS.asc).
# Keys come from the environment, never from the repository:
#   GNUPGHOME + RADPLAN_SIGNING_KEY   the GPG key (fingerprint or id) for .deb and SHA256SUMS;
#   RADPLAN_AUTHENTICODE_CERT + RADPLAN_AUTHENTICODE_KEY   PEM certificate chain and key for MSI/EXE (a PKCS#11
#   token works through osslsigncode's -pkcs11engine/-pkcs11module options: set RADPLAN_OSSLSIGNCODE_ARGS).
# Usage: installer/sign.sh RELEASE_DIR
set -euo pipefail
DIR="${1:?usage: installer/sign.sh RELEASE_DIR}"
: "${RADPLAN_SIGNING_KEY:?set RADPLAN_SIGNING_KEY (and GNUPGHOME) to the release GPG key}"
cd "$DIR"
shopt -s nullglob
# debsigs runs `gpg --openpgp --detach-sign`, which picks SHA-1 in OpenPGP mode, and debsig-verify rightly rejects
# SHA-1 signatures: give debsigs a gpg that appends --digest-algo SHA512 (its own --gpgopts option is ignored).
wrap=$(mktemp -d)
trap 'rm -rf "$wrap"' EXIT
printf '#!/bin/sh\nexec %s "$@" --digest-algo SHA512\n' "$(command -v gpg)" > "$wrap/gpg"
chmod +x "$wrap/gpg"
for deb in *.deb; do
  debsigs --delete=origin "$deb" >/dev/null 2>&1 || true
  PATH="$wrap:$PATH" debsigs --sign=origin --default-key="$RADPLAN_SIGNING_KEY" "$deb"
done
for bin in *.msi *.exe; do
  if [ -n "${RADPLAN_AUTHENTICODE_CERT:-}" ]; then
    # shellcheck disable=SC2086
    osslsigncode sign -certs "$RADPLAN_AUTHENTICODE_CERT" -key "$RADPLAN_AUTHENTICODE_KEY" \
      ${RADPLAN_OSSLSIGNCODE_ARGS:-} -h sha256 -n "RadPlan Workstation" -in "$bin" -out "$bin.signed" >/dev/null
    mv "$bin.signed" "$bin"
  else
    echo "sign.sh: $bin left unsigned (RADPLAN_AUTHENTICODE_CERT not set)" >&2
  fi
done
files=()
for f in *; do
  case "$f" in SHA256SUMS|SHA256SUMS.asc) ;; *) [ -f "$f" ] && files+=("$f") ;; esac
done
LC_ALL=C sha256sum "${files[@]}" | LC_ALL=C sort -k2 > SHA256SUMS
rm -f SHA256SUMS.asc
gpg --batch --yes --local-user "$RADPLAN_SIGNING_KEY" --armor --detach-sign --output SHA256SUMS.asc SHA256SUMS
echo "signed ${#files[@]} artifacts in $DIR"
