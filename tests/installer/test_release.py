"""Release artifacts: the real bundle and .deb, installed and run offline; reproducibility; signatures and
verification, including tampering. The full build runs once per session (marked slow; it runs in CI)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest

from tests.installer.conftest import ROOT, CodeSigning, SigningKey

VERIFY = [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "installer" / "verify")]
PACKAGE = [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "installer" / "package.py")]


def verify(release: Path, key: SigningKey, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VERIFY, str(release), "--key", str(key.public), *extra], capture_output=True, text=True, check=False
    )


def sign(release: Path, key: SigningKey, code: CodeSigning | None = None) -> None:
    env = key.env()
    if code is not None:
        env.update(RADPLAN_AUTHENTICODE_CERT=str(code.cert), RADPLAN_AUTHENTICODE_KEY=str(code.key))
    subprocess.run([str(ROOT / "installer" / "sign.sh"), str(release)], env=env, check=True, capture_output=True)


def sign_sums(release: Path, key: SigningKey) -> None:
    """(Re-)sign SHA256SUMS alone, as an attacker or a careless release manager could."""
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--yes",
            "--local-user",
            key.keyid,
            "--armor",
            "--detach-sign",
            "--output",
            str(release / "SHA256SUMS.asc"),
            str(release / "SHA256SUMS"),
        ],
        env=key.env(),
        check=True,
        capture_output=True,
    )


def fake_bundle(root: Path) -> Path:
    bundle = root / "bundle"
    (bundle / "_internal" / "pydicom-3.0.2.dist-info").mkdir(parents=True)
    (bundle / "radplan").write_text("#!/bin/sh\necho 'radplan, version 9.9.9'\n")
    (bundle / "radplan").chmod(0o755)
    (bundle / "_internal" / "data.bin").write_bytes(bytes(range(256)) * 40)
    return bundle


def package(bundle: Path, out: Path, version: str = "9.9.9", epoch: str = "1700000000") -> None:
    subprocess.run(
        [*PACKAGE, "--bundle", str(bundle), "--out", str(out), "--version", version],
        env={**os.environ, "SOURCE_DATE_EPOCH": epoch},
        check=True,
        capture_output=True,
    )


def test_packaging_is_reproducible(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path)
    package(bundle, tmp_path / "a")
    os.utime(bundle / "_internal" / "data.bin", (1, 1))  # file times in the input do not leak into the output
    package(bundle, tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == [
        "SHA256SUMS",
        "radplan-9.9.9-linux-x86_64.tar.gz",
        "radplan-9.9.9.cdx.json",
        "radplan_9.9.9_amd64.deb",
    ]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    package(bundle, tmp_path / "c", epoch="1700000001")
    deb = "radplan_9.9.9_amd64.deb"
    assert (tmp_path / "c" / deb).read_bytes() != (tmp_path / "a" / deb).read_bytes()


def test_deb_layout(tmp_path: Path) -> None:
    package(fake_bundle(tmp_path), tmp_path / "out")
    deb = tmp_path / "out" / "radplan_9.9.9_amd64.deb"
    listing = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True).stdout
    for path in (
        "./opt/radplan/radplan",
        "./usr/bin/radplan -> /opt/radplan/radplan",
        "./usr/share/applications/radplan.desktop",
        "./usr/share/icons/hicolor/scalable/apps/radplan.svg",
        "./etc/radplan/config.toml",
    ):
        assert path in listing, path
    assert all(" root/root " in line for line in listing.splitlines())
    assert subprocess.run(
        ["dpkg-deb", "--field", str(deb), "Package", "Version"], capture_output=True, text=True, check=True
    ).stdout.split() == ["Package:", "radplan", "Version:", "9.9.9"]
    conffiles = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True, check=True).stdout
    assert b"/etc/radplan/config.toml" in conffiles


def test_verify_accepts_signed_and_refuses_tampering(
    tmp_path: Path, release_key: SigningKey, other_key: SigningKey
) -> None:
    release = tmp_path / "release"
    package(fake_bundle(tmp_path), release)
    sign(release, release_key)
    ok = verify(release, release_key)
    assert ok.returncode == 0, ok.stderr
    assert "3 artifacts" in ok.stdout

    def broken(name: str) -> Path:
        copy = tmp_path / name
        shutil.copytree(release, copy)
        return copy

    flipped = broken("flipped")
    deb = flipped / "radplan_9.9.9_amd64.deb"
    data = bytearray(deb.read_bytes())
    data[len(data) // 2] ^= 0xFF
    deb.write_bytes(bytes(data))
    result = verify(flipped, release_key)
    assert result.returncode == 1 and "radplan_9.9.9_amd64.deb: SHA-256 does not match" in result.stderr

    sums = broken("sums")
    (sums / "SHA256SUMS").write_text((sums / "SHA256SUMS").read_text().replace("a", "b", 1))
    result = verify(sums, release_key)
    assert result.returncode == 1 and "SHA256SUMS signature is not valid" in result.stderr

    extra = broken("extra")
    (extra / "surprise.sh").write_text("echo hi\n")
    assert "not covered by SHA256SUMS: surprise.sh" in verify(extra, release_key).stderr

    wrong = verify(release, other_key)
    assert wrong.returncode == 1 and "signature is not valid" in wrong.stderr


def test_unsigned_or_wrongly_signed_deb_is_refused(
    tmp_path: Path, release_key: SigningKey, other_key: SigningKey
) -> None:
    unsigned = tmp_path / "unsigned"
    package(fake_bundle(tmp_path), unsigned)
    # SHA256SUMS signed by the release key, but the .deb itself carries no signature
    sign_sums(unsigned, release_key)
    result = verify(unsigned, release_key)
    assert result.returncode == 1 and "debsig-verify refused it" in result.stderr

    mixed = tmp_path / "mixed"
    package(fake_bundle(tmp_path / "m"), mixed)
    sign(mixed, other_key)  # the .deb (and SUMS) signed with somebody else's key; then SUMS re-signed with ours
    assert verify(mixed, other_key).returncode == 0  # a valid signature, just not by the release key
    sign_sums(mixed, release_key)
    result = verify(mixed, release_key)
    assert result.returncode == 1 and "debsig-verify refused it" in result.stderr


def test_msi_builds_signs_and_verifies(tmp_path: Path, release_key: SigningKey, code_signing: CodeSigning) -> None:
    """The MSI definition builds with wixl (from a stand-in payload: the real one is the Windows bundle built on a
    Windows runner) with a per-machine scope and a fixed UpgradeCode, and is Authenticode-signed and verified."""
    payload = tmp_path / "payload"
    (payload / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "README.md", payload / "docs" / "README.md")
    shutil.copy(ROOT / "installer" / "linux" / "config.toml", payload / "config.toml")
    release = tmp_path / "release"
    release.mkdir()
    msi = release / "radplan-9.9.9-x64.msi"
    subprocess.run(
        [str(ROOT / "installer" / "build-msi.sh"), str(payload), str(msi), "9.9.9"], check=True, capture_output=True
    )
    props = subprocess.run(
        ["msiinfo", "export", str(msi), "Property"], capture_output=True, text=True, check=True
    ).stdout
    assert "UpgradeCode\t{6F1C2B7E-3D4A-4E5B-9C8D-7A6B5C4D3E2F}" in props and "ALLUSERS\t1" in props
    sign(release, release_key, code_signing)
    ok = verify(release, release_key, "--ca", str(code_signing.ca))
    assert ok.returncode == 0, ok.stderr
    data = bytearray(msi.read_bytes())
    cabinet = data.index(b"MSCF")  # the embedded cabinet with the payload files
    data[cabinet + 200] ^= 0x01
    msi.write_bytes(bytes(data))
    subprocess.run(["sh", "-c", "sha256sum *.msi > SHA256SUMS"], cwd=release, check=True)
    sign_sums(release, release_key)
    bad = verify(release, release_key, "--ca", str(code_signing.ca))
    assert bad.returncode == 1 and "Authenticode signature not valid" in bad.stderr


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_full_release_installs_and_runs_offline(
    built_release: tuple[Path, Path], release_key: SigningKey, tmp_path: Path
) -> None:
    bundle, release = built_release
    assert not list(bundle.rglob("torch")), "PyTorch must not be in the runtime bundle"
    ok = verify(release, release_key)
    assert ok.returncode == 0, ok.stderr
    sbom = json.loads(next(release.glob("*.cdx.json")).read_text())
    names = {c["name"] for c in sbom["components"]}
    assert {"pydicom", "numpy", "onnxruntime", "sqlcipher3"} <= names and "torch" not in names
    deb = next(release.glob("*.deb"))
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    exe = root / "opt" / "radplan" / "radplan"
    offline = ["unshare", "--net", "--"] if os.geteuid() == 0 and shutil.which("unshare") else []
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "RADPLAN_DATA_DIR": str(tmp_path / "data"),
        "RADPLAN_SITE_CONFIG": str(root / "etc" / "radplan" / "config.toml"),
    }
    version = subprocess.run([*offline, str(exe), "--version"], env=env, capture_output=True, text=True, check=True)
    assert version.stdout.startswith("radplan, version ")
    doctor = json.loads(
        subprocess.run(
            [*offline, str(exe), "doctor", "--json"], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    backends = {b["name"]: b for b in doctor["inference_backends"]}
    assert backends["onnxruntime"]["available"] and not backends["torch"]["available"]
    # the frozen engine end to end: a small demo series segmented by the shipped model, the SEG written by highdicom
    # (its standard tables are data files the bundle must carry)
    study, out = tmp_path / "study", tmp_path / "seg"
    run = [*offline, str(exe)]
    subprocess.run([*run, "demo-data", "--shape", "96x96x40", "--spacing", "4x4x5", str(study)], env=env, check=True)
    seg = subprocess.run(
        [*run, "segment", "--input", str(study / "ct"), "--backend", "onnxruntime", "--out", str(out)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert seg.returncode == 0, seg.stderr[-2000:]
    ds = pydicom.dcmread(out / "seg.dcm")
    assert ds.Modality == "SEG" and len(ds.SegmentSequence) >= 5
    assert (out / "gtv.nii.gz").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_deb_installs_and_uninstalls_with_dpkg(built_release: tuple[Path, Path]) -> None:
    if os.geteuid() != 0:
        pytest.skip("dpkg -i needs root (CI runs as root); the dpkg -x test covers the bundle otherwise")
    if subprocess.run(["dpkg", "-s", "radplan"], capture_output=True, check=False).returncode == 0:
        pytest.skip("a radplan package is already installed on this machine; not touching it")
    deb = next(built_release[1].glob("*.deb"))
    subprocess.run(["dpkg", "-i", str(deb)], check=True, capture_output=True)
    try:
        out = subprocess.run(["/usr/bin/radplan", "--version"], capture_output=True, text=True, check=True)
        assert out.stdout.startswith("radplan, version ")
        assert Path("/etc/radplan/config.toml").is_file()
    finally:
        subprocess.run(["dpkg", "--purge", "radplan"], check=True, capture_output=True)
    assert not Path("/opt/radplan").exists() and not Path("/usr/bin/radplan").exists()
