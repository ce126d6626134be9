"""Release fixtures: a throw-away GPG release key and Authenticode test CA, and the full `make dist` build once."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SigningKey:
    gnupghome: Path
    keyid: str
    public: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "GNUPGHOME": str(self.gnupghome), "RADPLAN_SIGNING_KEY": self.keyid}


def make_gpg_key(home: Path, uid: str) -> SigningKey:
    home.mkdir(mode=0o700, parents=True)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", uid, "rsa3072", "sign", "never"],
        env=env,
        check=True,
        capture_output=True,
    )
    listing = subprocess.run(
        ["gpg", "--batch", "--with-colons", "--list-keys"], env=env, check=True, capture_output=True, text=True
    ).stdout
    keyid = next(line.split(":")[4] for line in listing.splitlines() if line.startswith("pub:"))
    public = home.parent / f"{home.name}.asc"
    public.write_bytes(
        subprocess.run(
            ["gpg", "--batch", "--armor", "--export", keyid], env=env, check=True, capture_output=True
        ).stdout
    )
    return SigningKey(home, keyid, public)


@pytest.fixture(scope="session")
def release_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return make_gpg_key(tmp_path_factory.mktemp("keys") / "release", "RadPlan Test Release <release@example.org>")


@pytest.fixture(scope="session")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return make_gpg_key(tmp_path_factory.mktemp("keys") / "other", "Somebody Else <else@example.org>")


@dataclass(frozen=True)
class CodeSigning:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def code_signing(tmp_path_factory: pytest.TempPathFactory) -> CodeSigning:
    d = tmp_path_factory.mktemp("authenticode")

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ossl(
        "req",
        "-x509",
        "-newkey",
        "rsa:3072",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=RadPlan Test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    ossl(
        "req",
        "-newkey",
        "rsa:3072",
        "-nodes",
        "-keyout",
        "code.key",
        "-out",
        "code.csr",
        "-subj",
        "/CN=RadPlan Test Code Signing",
    )
    (d / "ext.cnf").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n"
    )
    ossl(
        "x509",
        "-req",
        "-in",
        "code.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "code.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    return CodeSigning(d / "ca.pem", d / "code.pem", d / "code.key")


@pytest.fixture(scope="session")
def built_release(tmp_path_factory: pytest.TempPathFactory, release_key: SigningKey) -> Iterator[tuple[Path, Path]]:
    """`installer/build-dist.sh` once: (bundle dir, signed release dir)."""
    if shutil.which("dpkg-deb") is None or shutil.which("debsigs") is None:
        pytest.fail("dpkg-deb/debsigs missing: installer/bootstrap.sh installs them")
    base = tmp_path_factory.mktemp("dist")
    env = {
        **release_key.env(),
        "RADPLAN_BUILD_DIR": str(base / "build"),
        "RADPLAN_RELEASE_DIR": str(base / "release"),
        "RADPLAN_COMPRESS_LEVEL": "1",  # content is what is tested; release builds use 6
    }
    result = subprocess.run(
        [str(ROOT / "installer" / "build-dist.sh")], env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    assert result.returncode == 0, f"build-dist failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    yield base / "build" / "dist" / "radplan", base / "release"
    shutil.rmtree(base, ignore_errors=True)  # about 2 GB; pytest keeps the last three runs' temporary folders
