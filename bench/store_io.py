"""Store I/O benchmark: where should pixel data live? Prints both options side by side with a plaintext baseline.

  A. instances as blobs in the SQLCipher database (what RadPlan did until migration 0007, and what older stores and
     restored backups still hold): one transaction per batch of 32 instances together with the metadata rows;
  B. instances as files encrypted with AES-256-GCM (what RadPlan does now: core.store.blobs.BlobStore, batches of 32
     written, fsync'd and renamed into place, then their rows committed in one transaction);
  C. baseline: plaintext file copy with fsync (what a store without encryption would cost).

Usage: .venv/bin/python bench/store_io.py [--shape 512x512x150] [--repeat 3]
Generates the demo study (seed 0) in a temp dir first; reports MB/s for write and read, and ratios to C.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.demo import generate_demo_study
from core.dicom.importer import import_paths
from core.security.roles import Permission, Role
from core.security.session import Access, User
from core.store.store import Store

ACCESS = Access(User(1, "bench", Role.RADIOLOGIST), Permission.IMPORT_STUDIES)


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_import(files: list[Path], work: Path) -> float:
    """The whole `radplan import` path (parse, checks, metadata, blobs, audit), for reference."""
    store = Store.create(work / "imp", key_mode="passphrase", passphrase=lambda _p: "bench-passphrase")
    seconds = timed(lambda: import_paths(store, ACCESS, files))
    store.close()
    return seconds


def bench_sqlcipher(files: list[Path], work: Path) -> tuple[float, float]:
    """Storage cost only: blobs and a row each, 32 instances per transaction, as the importer commits them."""
    store = Store.create(work / "db", key_mode="passphrase", passphrase=lambda _p: "bench-passphrase")
    with store.transaction() as conn:
        conn.execute("INSERT INTO patients (patient_id) VALUES ('bench')")
        conn.execute("INSERT INTO studies (patient_fk, study_uid, created, updated) VALUES (1, 's', '', '')")
        conn.execute("INSERT INTO series (study_fk, series_uid) VALUES (1, 'se')")

    def write() -> None:
        for start in range(0, len(files), 32):
            with store.transaction() as conn:
                for i, f in enumerate(files[start : start + 32], start=start):
                    data = f.read_bytes()
                    cur = conn.execute(
                        "INSERT INTO instances (series_fk, sop_uid, sop_class_uid, transfer_syntax, size, sha256, "
                        "received) VALUES (1, ?, '', '', ?, '', '')",
                        (str(i), len(data)),
                    )
                    conn.execute("INSERT INTO instance_data VALUES (?, ?)", (cur.lastrowid, data))

    write_s = timed(write)

    def read() -> None:
        for (blob,) in store.conn.execute("SELECT data FROM instance_data ORDER BY instance_fk"):
            assert blob

    store.close()
    store = Store.open(work / "db", passphrase=lambda _p: "bench-passphrase")
    read_s = timed(read)
    store.close()
    return write_s, read_s


def bench_gcm_files(files: list[Path], work: Path) -> tuple[float, float]:
    """The store's own instance files (core.store.blobs) with a row each, as the importer commits them."""
    store = Store.create(work / "files", key_mode="passphrase", passphrase=lambda _p: "bench-passphrase")
    with store.transaction() as conn:
        conn.execute("INSERT INTO patients (patient_id) VALUES ('bench')")
        conn.execute("INSERT INTO studies (patient_fk, study_uid, created, updated) VALUES (1, 's', '', '')")
        conn.execute("INSERT INTO series (study_fk, series_uid) VALUES (1, 'se')")
    names: list[str] = []

    def write() -> None:
        for start in range(0, len(files), 32):
            batch = [f.read_bytes() for f in files[start : start + 32]]
            items = [(store.blobs.name_for(hashlib.sha256(d).hexdigest()), d) for d in batch]
            store.blobs.write(items)
            with store.transaction() as conn:
                for i, (name, data) in enumerate(items, start=start):
                    conn.execute(
                        "INSERT INTO instances (series_fk, sop_uid, sop_class_uid, transfer_syntax, size, sha256, "
                        "received, blob) VALUES (1, ?, '', '', ?, '', '', ?)",
                        (str(i), len(data), name),
                    )
                    names.append(name)

    def read() -> None:
        for (name,) in store.conn.execute("SELECT blob FROM instances ORDER BY id"):
            assert store.blobs.read(name)

    write_s = timed(write)
    read_s = timed(read)
    store.close()
    return write_s, read_s


def bench_plain(files: list[Path], work: Path) -> tuple[float, float]:
    out = work / "plain"
    out.mkdir()

    def write() -> None:
        for i, f in enumerate(files):
            with open(out / f"{i:06d}.dcm", "wb") as fh:
                fh.write(f.read_bytes())
                fh.flush()
                os.fsync(fh.fileno())

    def read() -> None:
        for i, _ in enumerate(files):
            assert (out / f"{i:06d}.dcm").read_bytes()

    return timed(write), timed(read)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="512x512x150")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_demo_study(root / "study", seed=0, shape=shape)  # type: ignore[arg-type]
        files = sorted((root / "study" / "ct").glob("*.dcm"))
        mb = sum(f.stat().st_size for f in files) / 1e6
        results: dict[str, list[tuple[float, float]]] = {
            "A sqlcipher-blobs": [],
            "B aes-gcm-files": [],
            "C plaintext-files": [],
        }
        for r in range(args.repeat):
            for name, fn in (
                ("A sqlcipher-blobs", bench_sqlcipher),
                ("B aes-gcm-files", bench_gcm_files),
                ("C plaintext-files", bench_plain),
            ):
                work = root / f"run{r}-{name[0]}"
                work.mkdir()
                results[name].append(fn(files, work))
        full = statistics.median(bench_import(files, root / f"imp{r}") for r in range(args.repeat))
        print(f"{len(files)} CT instances, {mb:.1f} MB, median of {args.repeat} runs")
        print(f"full 'radplan import' (parse + checks + store + audit): {mb / full:.1f} MB/s, {full:.2f} s")
        print(f"{'option':20} {'write MB/s':>11} {'read MB/s':>10} {'write vs C':>11} {'read vs C':>10}")
        base_w = statistics.median(w for w, _ in results["C plaintext-files"])
        base_r = statistics.median(r for _, r in results["C plaintext-files"])
        for name, runs in results.items():
            w = statistics.median(x for x, _ in runs)
            rd = statistics.median(y for _, y in runs)
            print(f"{name:20} {mb / w:11.1f} {mb / rd:10.1f} {base_w / w:11.2f} {base_r / rd:10.2f}")


if __name__ == "__main__":
    main()
