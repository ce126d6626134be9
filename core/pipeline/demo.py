"""The demo: a synthetic study with its clinical note as a structured report, served by an embedded PACS."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom

from core.demo import DemoManifest, generate_demo_study
from core.pacs.embedded import EmbeddedPacs
from core.pacs.nodes import PacsNode
from core.pipeline.dicom_io import note_to_sr

__all__ = ["DemoStudy", "demo_study", "pacs_files", "start_demo_pacs"]


@dataclass(frozen=True)
class DemoStudy:
    folder: Path
    manifest: DemoManifest

    @property
    def study_uid(self) -> str:
        return self.manifest.study_instance_uid


def demo_study(
    folder: Path,
    *,
    seed: int = 1,
    shape: tuple[int, int, int] = (512, 512, 150),
    spacing_mm: tuple[float, float, float] = (0.8, 0.8, 2.5),
) -> DemoStudy:
    """Generate the demo study (kept when the same one is there already) and write its note as ``note.dcm``."""
    manifest_path = folder / "manifest.json"
    manifest = DemoManifest.from_json(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else None
    if manifest is None or (manifest.seed, tuple(manifest.shape)) != (seed, tuple(shape)):
        manifest = generate_demo_study(folder, seed=seed, shape=shape, spacing_mm=spacing_mm)
    ct = pydicom.dcmread(folder / "ct" / sorted(p.name for p in (folder / "ct").iterdir())[0], stop_before_pixels=True)
    note = note_to_sr((folder / "note.txt").read_text(encoding="utf-8"), ct)
    note.save_as(folder / "note.dcm", enforce_file_format=True)
    return DemoStudy(folder, manifest)


def pacs_files(folder: Path) -> list[Path]:
    """What a clinical PACS would hold of the demo study: CT, RT Dose and the note (not the truth masks nor the
    truth RT Structure Set, which are not inputs of the pipeline)."""
    return [*sorted((folder / "ct").glob("*.dcm")), folder / "rtdose.dcm", folder / "note.dcm"]


def start_demo_pacs(folder: Path, *, our_ae: str, our_port: int) -> tuple[EmbeddedPacs, PacsNode]:
    """An embedded PACS serving the demo study on a free loopback port, with our AE as its C-MOVE destination."""
    pacs = EmbeddedPacs(ae_title="RADPLANDEMO", move_destinations={our_ae: ("127.0.0.1", our_port)})
    pacs.add(pydicom.dcmread(p) for p in pacs_files(folder))
    pacs.start()
    node = PacsNode(
        name="demo-pacs", ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.port, timeout_s=30.0, retries=1
    )
    return pacs, node
