"""Package a PyInstaller one-folder bundle into release artifacts, reproducibly.

  .deb   /opt/radplan (the bundle), /usr/bin/radplan (symlink), desktop entry, icon, and the site config
         /etc/radplan/config.toml as a conffile; built by dpkg-deb (xz members: debsigs cannot sign zstd ones)
         from a staging tree whose mtimes are all SOURCE_DATE_EPOCH, with root owner/group and sorted entries.
  .tar.gz the same bundle (sorted, numeric owner 0, fixed mtimes, gzip without name/time).
  SBOM   CycloneDX 1.5 JSON of the Python distributions inside the bundle.
  SHA256SUMS over every artifact.
Two runs on the same bundle give the same bytes (tested). Signing is a separate step (installer/sign.sh).

Usage: python installer/package.py --bundle dist/pyinstaller/radplan --out dist/release --version 0.1.0
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEB_DEPENDS = "libc6, libgl1, libegl1, libxkbcommon-x11-0, libxcb-cursor0, libdbus-1-3, libfontconfig1"


def compress_level() -> int:
    """xz/gzip level: 6 for releases; the tests use 1 (RADPLAN_COMPRESS_LEVEL) since they check content, not size."""
    return int(os.environ.get("RADPLAN_COMPRESS_LEVEL", "6"))


def epoch() -> int:
    return int(os.environ.get("SOURCE_DATE_EPOCH", "0"))


def _normalise_tree(root: Path, mtime: int) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        if not path.is_symlink():
            mode = path.stat().st_mode
            path.chmod(0o755 if path.is_dir() or mode & 0o111 else 0o644)
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    os.utime(root, (mtime, mtime))


def build_deb(bundle: Path, out: Path, version: str) -> Path:
    mtime = epoch()
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "root"
        shutil.copytree(bundle, stage / "opt" / "radplan", symlinks=True)
        (stage / "usr" / "bin").mkdir(parents=True)
        (stage / "usr" / "bin" / "radplan").symlink_to("/opt/radplan/radplan")
        apps = stage / "usr" / "share" / "applications"
        apps.mkdir(parents=True)
        shutil.copy(ROOT / "installer" / "linux" / "radplan.desktop", apps / "radplan.desktop")
        icons = stage / "usr" / "share" / "icons" / "hicolor" / "scalable" / "apps"
        icons.mkdir(parents=True)
        shutil.copy(ROOT / "resources" / "icons" / "radplan.svg", icons / "radplan.svg")
        (stage / "etc" / "radplan").mkdir(parents=True)
        shutil.copy(ROOT / "installer" / "linux" / "config.toml", stage / "etc" / "radplan" / "config.toml")
        size_kib = sum(p.lstat().st_size for p in stage.rglob("*") if not p.is_dir()) // 1024 + 1
        debian = stage / "DEBIAN"
        debian.mkdir()
        (debian / "control").write_text(
            "Package: radplan\n"
            f"Version: {version}\n"
            "Architecture: amd64\n"
            "Maintainer: RadPlan developers <radplan@example.org>\n"
            f"Depends: {DEB_DEPENDS}\n"
            f"Installed-Size: {size_kib}\n"
            "Section: science\n"
            "Priority: optional\n"
            "Homepage: https://example.org/radplan\n"
            "Description: RadPlan clinical workstation (radiotherapy decision support)\n"
            " PACS studies to AI segmentation, radiomics, decision support and PDF treatment plans.\n"
            " Decision support only: every recommendation must be checked by a qualified clinician.\n"
        )
        (debian / "conffiles").write_text("/etc/radplan/config.toml\n")
        _normalise_tree(stage, mtime)
        deb = out / f"radplan_{version}_amd64.deb"
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(mtime)}
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-Zxz", f"-z{compress_level()}", "--build", str(stage), str(deb)],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    return deb


def build_tarball(bundle: Path, out: Path, version: str) -> Path:
    mtime = epoch()
    target = out / f"radplan-{version}-linux-x86_64.tar.gz"
    with (
        open(target, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=compress_level()) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in [bundle, *sorted(bundle.rglob("*"))]:
            info = tar.gettarinfo(str(path), arcname=f"radplan-{version}/{path.relative_to(bundle)}".rstrip("/."))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = mtime
            info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
            if info.isfile():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    return target


def bundled_distributions(bundle: Path) -> list[tuple[str, str]]:
    """(name, version) of every Python distribution whose metadata PyInstaller copied into the bundle, plus the
    top-level packages it collected (from their .dist-info folders)."""
    found = set()
    for info in bundle.rglob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].rpartition("-")
        found.add((name.replace("_", "-").lower(), version))
    return sorted(found)


def build_sbom(bundle: Path, out: Path, version: str, environment: dict[str, str]) -> Path:
    """CycloneDX 1.5 JSON; versions from the bundle's metadata, else from the build environment."""
    names = {n for n, _ in bundled_distributions(bundle)}
    internal = bundle / "_internal"
    for top in sorted(p.name for p in internal.iterdir()) if internal.is_dir() else []:
        key = top.lower().replace("_", "-")
        if key in environment:
            names.add(key)
    versions = dict(bundled_distributions(bundle))
    components = [
        {
            "type": "library",
            "name": n,
            "version": versions.get(n) or environment[n],
            "purl": f"pkg:pypi/{n}@{versions.get(n) or environment[n]}",
            "bom-ref": f"pkg:pypi/{n}",
        }
        for n in sorted(names)
        if (versions.get(n) or environment.get(n))
    ]
    sbom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "serialNumber": "urn:uuid:" + str(_uuid_from(f"radplan-{version}-" + "".join(c["purl"] for c in components))),
        "metadata": {
            "timestamp": _iso(epoch()),
            "component": {"type": "application", "name": "radplan", "version": version, "bom-ref": "radplan"},
        },
        "components": components,
    }
    target = out / f"radplan-{version}.cdx.json"
    target.write_text(json.dumps(sbom, indent=2, sort_keys=True) + "\n")
    return target


def _uuid_from(text: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, text))


def _iso(ts: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_sums(out: Path) -> Path:
    lines = []
    for path in sorted(p for p in out.iterdir() if p.is_file() and p.name not in ("SHA256SUMS", "SHA256SUMS.asc")):
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    target = out / "SHA256SUMS"
    target.write_text("".join(lines))
    return target


def environment_versions() -> dict[str, str]:
    from importlib import metadata

    return {d.metadata["Name"].lower().replace("_", "-"): d.version for d in metadata.distributions()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--version", required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for artifact in (
        build_deb(args.bundle, args.out, args.version),
        build_tarball(args.bundle, args.out, args.version),
        build_sbom(args.bundle, args.out, args.version, environment_versions()),
        write_sums(args.out),
    ):
        print(f"{artifact.name}: {artifact.stat().st_size} bytes")


if __name__ == "__main__":
    main()
