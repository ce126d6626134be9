"""Pipeline fixtures: a small demo study, a passphrase store, the acting radiologist, and a stand-in for the engine
worker (writes a SEG of the demo truth masks, as the worker writes its AI SEG) for tests that are not about the
engine."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813

from core.demo import DemoManifest, generate_demo_study
from core.demo.generator import ROI_NAMES
from core.dicom.writers.seg import SegmentSpec, SegOptions, write_seg
from core.pipeline.context import PipelineContext
from core.pipeline.dicom_io import AI_SEG_DESCRIPTION, store_dataset
from core.security.roles import Permission, Role
from core.security.session import Access, User
from core.store.blobs import stored_bytes
from core.store.store import Store

RAD = User(2, "rad1", Role.RADIOLOGIST)
SHAPE, SPACING = (96, 96, 40), (4.0, 4.0, 5.0)
#: Label-map precedence (later wins where truth masks overlap).
ORDER = ("body", "lung_left", "lung_right", "heart", "esophagus", "spinal_cord", "gtv")


def authorize(permission: Permission) -> Access:
    return Access(RAD, permission)


@dataclass(frozen=True)
class Study:
    folder: Path
    manifest: DemoManifest

    @property
    def uid(self) -> str:
        return self.manifest.study_instance_uid


@pytest.fixture(scope="session")
def small_study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    folder = tmp_path_factory.mktemp("pipeline-demo")
    return Study(folder, generate_demo_study(folder, seed=2, shape=SHAPE, spacing_mm=SPACING))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.create(tmp_path / "store", key_mode="passphrase", passphrase=lambda _p: "store-passphrase-1")
    yield s
    s.close()


@dataclass
class TruthSegmenter:
    """Writes the demo truth as the AI SEG (what the engine worker stores), counting its calls; ``fail_first``
    makes the first call fail as a dying worker does."""

    truth: Path
    calls: int = 0
    fail_first: bool = False
    log: list[str] = field(default_factory=list)

    def segment(self, ctx: PipelineContext, study_uid: str, series_uid: str) -> dict[str, Any]:
        from core.pipeline.context import StepError

        self.calls += 1
        if self.fail_first and self.calls == 1:
            raise StepError("segment", "segmentation job 1 failed: worker died (pid 1 is no longer running)")
        with ctx.store.transaction() as conn:
            rows = conn.execute(
                "SELECT i.blob, d.data FROM instances i "
                "LEFT JOIN instance_data d ON d.instance_fk = i.id JOIN series se ON "
                "se.id = i.series_fk WHERE se.series_uid = ?",
                (series_uid,),
            ).fetchall()
            ct = [pydicom.dcmread(io.BytesIO(stored_bytes(conn, *r))) for r in rows]
        labels = np.zeros((len(ct), int(ct[0].Rows), int(ct[0].Columns)), np.uint8)
        for n, name in enumerate(ORDER, start=1):
            mask = sitk.GetArrayFromImage(sitk.ReadImage(str(self.truth / f"{name}.nii.gz"))) > 0
            labels[mask] = n
        seg = write_seg(ct, labels, [SegmentSpec(ROI_NAMES[n][0]) for n in ORDER],
                        SegOptions(series_description=AI_SEG_DESCRIPTION))  # fmt: skip
        store_dataset(ctx.store, ctx.access(Permission.IMPORT_STUDIES), seg, action="segmentation.store")
        return {"seg_sop_instance_uid": str(seg.SOPInstanceUID), "backend": "truth", "model": "truth"}
