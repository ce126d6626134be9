"""Cohort batch on a Dask LocalCluster: demo cases, one of them broken; manifest validation."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from core.demo import generate_demo_study
from core.radiomics.batch import read_manifest, run_batch
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
    assert (report.n_ok, report.n_failed) == (2, 1)
    assert sorted(s[2] for s in seen) == ["broken", "p7", "p8"] and seen[-1][:2] == (3, 3)
    table = pq.read_table(out).to_pylist()
    assert [r["case_id"] for r in table] == ["p7", "p8", "broken"]  # manifest order
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
