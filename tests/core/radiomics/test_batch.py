"""Cohort batch on a Dask LocalCluster: demo cases, one of them broken; resume from the progress journal;
manifest validation."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from core.demo import generate_demo_study
from core.radiomics.batch import Case, read_manifest, run_batch
from core.radiomics.batch_journal import Journal, case_signature, journal_path, load_reusable
from core.radiomics.extract import extract_files
from core.radiomics.preprocess import RadiomicsInputError


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cohort")
    for seed in (7, 8):
        generate_demo_study(root / f"s{seed}", seed=seed, shape=(96, 96, 24), spacing_mm=(3.0, 3.0, 5.0))
    (root / "broken.nii.gz").write_text("not an image")
    (root / "cohort.csv").write_text(
        "case_id,image,mask,roi,config\n"
        "p7,s7/ct,s7/truth/gtv.nii.gz,,\n"
        "p8,s8/ct,s8/rtstruct.dcm,GTV,ibsi-d\n"
        "broken,s8/ct,broken.nii.gz,,\n"
    )
    return root


@pytest.mark.slow
def test_batch_keeps_going_past_a_broken_case(cohort: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, int, str, str]] = []
    out = tmp_path / "features.parquet"
    cases = read_manifest(cohort / "cohort.csv", "ibsi-c")
    report = run_batch(cases, out, n_workers=2, retries=1, progress=lambda *a: seen.append(a))
    assert (report.n_ok, report.n_failed, report.n_reused) == (2, 1, 0)
    assert seen[0] == (0, 3, "", "reused")  # nothing to resume: every case is extracted
    assert sorted(s[2] for s in seen[1:]) == ["broken", "p7", "p8"] and seen[-1][:2] == (3, 3)
    table = pq.read_table(out).to_pylist()
    assert [r["case_id"] for r in table] == ["p7", "p8", "broken"]  # manifest order
    assert [r["reused"] for r in table] == [False, False, False] and not journal_path(out).exists()
    assert [r["status"] for r in table] == ["ok", "ok", "failed"]
    assert table[2]["error"].startswith("RadiomicsInputError: cannot read image or mask")
    assert "broken.nii.gz" not in table[2]["error"]  # no file paths in messages
    assert table[2]["stat_mean"] is None and table[2]["seconds"] is None
    direct = {
        f.ibsi_tag: f.value for f in extract_files(cohort / "s7" / "ct", cohort / "s7/truth/gtv.nii.gz", "ibsi-c")
    }
    assert table[0]["stat_mean"] == pytest.approx(direct["stat_mean"])
    assert table[0]["szm_sze_3D"] == pytest.approx(direct["szm_sze_3D"])
    assert table[1]["ngt_coarseness_3D"] is not None and table[1]["seconds"] > 0


class _StopBatchError(Exception):
    pass


def _extracted(seen: list[tuple[int, int, str, str]]) -> set[str]:
    """The cases a batch extracted (reported ok/failed), each reported once."""
    ids = [s[2] for s in seen if s[3] != "reused"]
    assert len(ids) == len(set(ids))
    return set(ids)


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal values, NaN equal to NaN."""
    return a.keys() == b.keys() and all(
        x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
        for x, y in ((a[k], b[k]) for k in a)
    )


def _features(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("status", "error", "seconds", "reused") and v is not None}


@pytest.mark.slow
def test_interrupted_batch_resumes_with_the_cases_left(cohort: Path, tmp_path: Path) -> None:
    cases = read_manifest(cohort / "cohort.csv", "ibsi-c")
    out = tmp_path / "features.parquet"

    def stop_after_first_ok(done: int, total: int, case_id: str, status: str) -> None:
        if status == "ok":
            raise _StopBatchError  # as Ctrl+C would, while the other cases are queued or running

    with pytest.raises(_StopBatchError):
        run_batch(cases, out, n_workers=1, retries=0, progress=stop_after_first_ok)
    assert not out.exists()
    lines = [json.loads(line) for line in journal_path(out).read_text().splitlines()]
    done = [r for r in lines if r["status"] == "ok"]
    assert len(done) == 1
    first = done[0]["case_id"]
    assert done[0]["signature"] == case_signature(next(c for c in cases if c.case_id == first))
    with journal_path(out).open("a") as fh:  # the process died while writing the next line
        fh.write('{"case_id": "p8", "status": "ok", "error": "", "seconds": 1.0, "features": {"stat_mean": 4')

    seen: list[tuple[int, int, str, str]] = []
    report = run_batch(cases, out, n_workers=1, retries=0, progress=lambda *a: seen.append(a))
    assert (report.n_ok, report.n_failed, report.n_reused) == (2, 1, 1)
    assert seen[0] == (1, 3, "", "reused") and seen[-1][:2] == (3, 3)
    assert _extracted(seen) == {"p7", "p8", "broken"} - {first}  # only the cases left were submitted
    table = pq.read_table(out).to_pylist()
    assert [r["case_id"] for r in table] == ["p7", "p8", "broken"]  # every case once, manifest order
    assert [r["reused"] for r in table] == [c.case_id == first for c in cases]
    (reused,) = (r for r in table if r["case_id"] == first)
    assert reused["seconds"] == done[0]["seconds"]
    assert _same(_features(reused), {"case_id": first, **done[0]["features"]})  # exactly the journaled values
    assert table[2]["status"] == "failed" and table[2]["error"].startswith("RadiomicsInputError: cannot read")
    assert not journal_path(out).exists()


@pytest.mark.slow
def test_resume_recomputes_changed_and_failed_cases_and_fresh_recomputes_all(cohort: Path, tmp_path: Path) -> None:
    root = tmp_path / "cohort"
    shutil.copytree(cohort, root)
    cases = read_manifest(root / "cohort.csv", "ibsi-c")
    out = tmp_path / "features.parquet"
    first = run_batch(cases, out, n_workers=1, retries=0)
    assert (first.n_ok, first.n_failed, first.n_reused) == (2, 1, 0)
    before = pq.read_table(out).to_pylist()

    mask = root / "s7" / "truth" / "gtv.nii.gz"  # p7's mask: same content, newer modification time
    st = mask.stat()
    os.utime(mask, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    seen: list[tuple[int, int, str, str]] = []
    report = run_batch(cases, out, n_workers=1, retries=0, progress=lambda *a: seen.append(a))
    assert (report.n_ok, report.n_failed, report.n_reused) == (2, 1, 1)
    assert seen[0] == (1, 3, "", "reused") and _extracted(seen) == {"p7", "broken"}  # changed and failed
    after = pq.read_table(out).to_pylist()
    assert [r["case_id"] for r in after] == ["p7", "p8", "broken"]
    assert [r["reused"] for r in after] == [False, True, False]
    assert _same(_features(after[1]), _features(before[1])) and after[1]["seconds"] == before[1]["seconds"]
    assert _same(_features(after[0]), _features(before[0]))  # recomputed from the same content
    assert after[2]["status"] == "failed" and after[2]["error"] == before[2]["error"]
    assert after[2]["error"].startswith("RadiomicsInputError: cannot read image or mask")

    seen.clear()
    fresh = run_batch(cases, out, n_workers=1, retries=0, progress=lambda *a: seen.append(a), resume=False)
    assert (fresh.n_ok, fresh.n_failed, fresh.n_reused) == (2, 1, 0)
    assert seen[0] == (0, 3, "", "reused") and _extracted(seen) == {"p7", "p8", "broken"}
    assert [r["reused"] for r in pq.read_table(out).to_pylist()] == [False, False, False]
    assert not journal_path(out).exists()


def test_journal_reuses_only_unchanged_ok_rows(tmp_path: Path) -> None:
    files = {}
    for name in ("a.nii.gz", "b.nii.gz", "m.nii.gz"):
        files[name] = tmp_path / name
        files[name].write_bytes(name.encode())
    cases = [
        Case("a", files["a.nii.gz"], files["m.nii.gz"], "ibsi-c"),
        Case("b", files["b.nii.gz"], files["m.nii.gz"], "ibsi-c", label=2),
        Case("c", files["a.nii.gz"], files["m.nii.gz"], "ibsi-c"),
        Case("d", files["a.nii.gz"], files["m.nii.gz"], "ibsi-c", roi="GTV"),
    ]
    sigs = [case_signature(c) for c in cases]
    out = tmp_path / "features.parquet"
    journal = Journal(out, [])
    values = {"stat_mean": 0.1 + 0.2, "morph_moran_i": math.nan, "stat_max": math.inf}
    journal.append(
        {"case_id": "a", "status": "ok", "error": "", "seconds": 1.5, "features": values, "signature": sigs[0]}
    )
    journal.append(
        {"case_id": "b", "status": "failed", "error": "E: x", "seconds": None, "features": {}, "signature": sigs[1]}
    )
    changed = case_signature(Case("c", files["a.nii.gz"], files["m.nii.gz"], "ibsi-b"))  # another configuration
    journal.append(
        {"case_id": "c", "status": "ok", "error": "", "seconds": 1.0, "features": values, "signature": changed}
    )
    journal.close()
    with journal_path(out).open("a") as fh:
        fh.write(
            json.dumps(
                {"case_id": "d", "status": "ok", "error": "", "seconds": 1.0, "features": values, "signature": sigs[3]}
            )[:-3]
        )  # cut short: the process died mid-write
    out.write_text("not a Parquet file")  # an unreadable earlier output is not an error either
    reusable = load_reusable(cases, sigs, out)
    assert list(reusable) == ["a"]  # b failed, c's inputs changed, d's line is incomplete
    assert _same(reusable["a"]["features"], values) and reusable["a"]["features"]["stat_mean"] == 0.1 + 0.2

    older_code = [dict(sig, extractor="radplan 0.0.1, pyradiomics 3.0") for sig in sigs]
    assert "radplan" in sigs[0]["extractor"] and load_reusable(cases, older_code, out) == {}  # another release

    os.utime(files["m.nii.gz"], ns=(1, 1))  # the shared mask changed: nothing is reused
    assert load_reusable(cases, [case_signature(c) for c in cases], out) == {}


def test_manifest_validation(tmp_path: Path) -> None:
    bad = tmp_path / "m.csv"
    for text, message in (
        ("case_id,image\n", "lacks the column"),
        ("case_id,image,mask\n", "no case"),
        ("case_id,image,mask\na,i,m\na,i,m\n", "line 3: empty or repeated case_id"),
        ("case_id,image,mask,config\na,i,m,ibsi-z\n", "line 2: unknown configuration"),
        ("case_id,image,mask,label\na,i,m,one\n", "label must be an integer"),
    ):
        bad.write_text(text)
        with pytest.raises(RadiomicsInputError, match=message):
            read_manifest(bad, "clinical")
    bad.write_text("case_id,image,mask,label\na,img.nrrd,mask.nii.gz,2\n")
    (case,) = read_manifest(bad, "ibsi-a")
    assert case.image == tmp_path / "img.nrrd" and case.label == 2 and case.config == "ibsi-a"
