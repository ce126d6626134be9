"""`radplan radiomics`: extraction to CSV (authorised, audited), refusals, and the IBSI phantom check."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from tests.conftest import ADMIN, ADMIN_PW, PHYS, PHYS_PW, RAD, RAD_PW, Cli

PASS = {"RADPLAN_PASSPHRASE": "store-passphrase-1"}
RADIOLOGIST = {"RADPLAN_USER": RAD, "RADPLAN_PASSWORD": RAD_PW, **PASS}


def _write(array: np.ndarray, path: Path, spacing: float = 2.0) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((spacing, spacing, spacing))
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture
def ct_case(tmp_path: Path) -> tuple[Path, Path]:
    """A 4 x 4 x 4 cube of 2 mm voxels in air: 40 HU for x < 4, 60 HU for x >= 4."""
    image = np.full((8, 8, 8), -1000, np.int16)
    image[2:6, 2:6, 2:4] = 40
    image[2:6, 2:6, 4:6] = 60
    mask = np.zeros((8, 8, 8), np.uint8)
    mask[2:6, 2:6, 2:6] = 1
    return _write(image, tmp_path / "ct.nii.gz"), _write(mask, tmp_path / "mask.nii.gz")


def test_ibsi_check_passes_every_reference_value(cli: Cli) -> None:
    result = cli("radiomics", "ibsi-check")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["tag", "reference", "tolerance", "ours", "result"]
    assert lines[-1].startswith("482/482 features with a reference value pass")
    volume = next(line for line in lines if line.startswith("morph_volume "))
    assert volume.split()[1:3] == ["556", "4"] and volume.endswith("pass")


def test_extract_writes_ibsi_tagged_csv_and_audits(
    initialised: Cli, ct_case: tuple[Path, Path], tmp_path: Path
) -> None:
    image, mask = ct_case
    out = tmp_path / "features.csv"
    result = initialised(
        "radiomics", "--image", str(image), "--mask", str(mask), "--config", "ibsi-c", "--out", str(out), **RADIOLOGIST
    )
    assert "features (ibsi-c) written" in result.stdout
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["ibsi_tag", "feature", "value"]
    values = {r["ibsi_tag"]: r for r in rows}
    assert float(values["stat_mean"]["value"]) == pytest.approx(50.0)  # 32 voxels of 40 HU, 32 of 60 HU
    assert float(values["morph_vol_approx"]["value"]) == pytest.approx(64 * 8.0)  # mm^3
    assert values["morph_volume"]["feature"] == "original_shape_MeshVolume"
    assert values["dzm_sde_3D"]["feature"] == ""  # pyradiomics has no GLDZM
    assert float(values["szm_sze_3D"]["value"]) == pytest.approx(1 / 32**2)  # two zones of 32 voxels

    # the cohort batch: one good case, one broken; the batch finishes, exits 1 and keeps the error per case
    (tmp_path / "cohort.csv").write_text(f"case_id,image,mask\ngood,{image},{mask}\nbad,{image},missing.nii.gz\n")
    table = tmp_path / "cohort.parquet"
    args = ["radiomics", "batch", "--manifest", str(tmp_path / "cohort.csv"), "--out", str(table)]
    args += ["--config", "ibsi-c", "--workers", "1", "--retries", "0"]
    batch = initialised(*args, check=False, **RADIOLOGIST)
    assert batch.returncode == 1 and "1 ok, 1 failed (0 reused)" in batch.stdout and "progress 2/2" in batch.stderr
    assert "0 reused, 2 to extract" in batch.stderr and table.exists()
    # again: the good case is reused from the output, the failed one is retried; --fresh recomputes both
    resumed = initialised(*args, "--resume", check=False, **RADIOLOGIST)
    assert resumed.returncode == 1 and "1 reused, 1 to extract" in resumed.stderr
    assert "1 ok, 1 failed (1 reused)" in resumed.stdout and "progress 2/2 bad failed" in resumed.stderr
    fresh = initialised(*args, "--fresh", check=False, **RADIOLOGIST)
    assert fresh.returncode == 1 and "0 reused, 2 to extract" in fresh.stderr and "(0 reused)" in fresh.stdout
    log = initialised(
        "audit", "list", "--action", "radiomics.*", "--json", RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW, **PASS
    )  # fmt: skip
    entries = json.loads(log.stdout)
    assert [e["outcome"] for e in entries if e["action"] == "radiomics.extract"] == ["success"]
    batches = [e["details"] for e in entries if e["action"] == "radiomics.batch"]
    assert [(d["ok"], d["failed"], d["reused"]) for d in batches] == [(1, 1, 0), (1, 1, 1), (1, 1, 0)]


def test_refusals(initialised: Cli, ct_case: tuple[Path, Path], tmp_path: Path) -> None:
    image, mask = ct_case
    out = tmp_path / "f.csv"
    args = ["radiomics", "--image", str(image), "--mask", str(mask), "--config", "ibsi-c", "--out", str(out)]
    denied = initialised(*args, check=False, RADPLAN_USER=PHYS, RADPLAN_PASSWORD=PHYS_PW, **PASS)
    assert denied.returncode == 3 and not out.exists()

    wrong_label = initialised(*args, "--label", "7", check=False, **RADIOLOGIST)
    assert wrong_label.returncode == 1 and "label 7 is not in the mask (labels present: [1])" in wrong_label.stderr
    assert not out.exists()

    other_grid = _write(np.ones((8, 8, 8), np.uint8), tmp_path / "other.nii.gz", spacing=1.0)
    mismatch = initialised(*args[:4], str(other_grid), *args[5:], check=False, **RADIOLOGIST)
    assert mismatch.returncode == 1 and "differs from image grid" in mismatch.stderr and not out.exists()

    roi_on_label_image = initialised(*args, "--roi", "GTV", check=False, **RADIOLOGIST)
    assert roi_on_label_image.returncode == 1 and "--roi selects a structure" in roi_on_label_image.stderr

    usage = initialised("radiomics", "--image", str(image), check=False, **RADIOLOGIST)
    assert usage.returncode == 2 and "missing --mask, --out" in usage.stderr

    unknown = initialised(*args[:-4], "--config", "ibsi-z", "--out", str(out), check=False, **RADIOLOGIST)
    assert unknown.returncode == 2 and not out.exists()
    log = initialised("audit", "list", "--action", "radiomics.*", RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW, **PASS)
    assert "minor_failure" in log.stdout  # refused input is audited too


def test_ibsi_check_reports_a_failure(cli: Cli, tmp_path: Path) -> None:
    phantom = Path(__file__).resolve().parents[1] / "data" / "ibsi1-digital-phantom"
    for name in ("image.nii.gz", "mask.nii.gz"):
        (tmp_path / name).write_bytes((phantom / name).read_bytes())
    table = (phantom / "reference_values.csv").read_text().replace("556;4;morph_volume", "600;4;morph_volume")
    (tmp_path / "reference_values.csv").write_text(table)
    result = cli("radiomics", "ibsi-check", "--phantom", str(tmp_path), check=False)
    assert result.returncode == 1 and "1 feature(s) outside the IBSI tolerance" in result.stderr
    assert "481/482 features with a reference value pass" in result.stdout
    assert next(ln for ln in result.stdout.splitlines() if ln.startswith("morph_volume ")).endswith("FAIL")
