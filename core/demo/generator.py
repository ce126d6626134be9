"""Deterministic synthetic thorax CT demo study: CT series, truth masks, RT Structure Set, RT Dose, note, manifest.

The same seed (and shape and spacing) gives byte-identical files: every random draw comes from numbered streams of
``numpy.random.SeedSequence([seed, stream])``, UIDs are derived from the seed with ``generate_uid(entropy_srcs=...)``
and all dates and times are fixed.

Dose model (Gy; r = distance in mm from ``DoseModel.centre_mm``, the tumour centre)::

    S(r) = (1 + exp(-R / w)) / (1 + exp((r - R) / w))            (S(0) = 1, falls to 1/2 at r = R)
    D(r) = D_presc * S(r) + D_low * exp(-r**2 / (2 * sigma**2)) * (1 - S(r))

with R = (largest tumour surface radius + 7 mm), w = 3 mm, D_presc = 60 Gy, D_low = 6 Gy, sigma = 50 mm. The maximum,
D_presc, is at the centre. The dose is not masked by the body outline.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813
from numpy.typing import NDArray
from pydicom.uid import generate_uid

from core.demo.ct_series import CtSeriesHeader, write_ct_series
from core.demo.note import NoteFacts, draw_note_facts, render_note
from core.demo.phantom import STRUCTURES, Phantom, VolumeGeometry, build_phantom, lobe_of, stream_rng
from core.dicom.writers.rtdose import DoseGrid, RtDoseOptions, write_rtdose
from core.dicom.writers.rtstruct import ImageSeriesReference, RoiSpec, StructureSetOptions, write_rtstruct

__all__ = ["GENERATOR_VERSION", "ROI_NAMES", "DemoManifest", "DoseModel", "generate_demo_study"]

GENERATOR_VERSION = "1.0.0"
STUDY_DATE, STUDY_TIME = "20240315", "093000"
#: Truth structure -> (ROI name, RT ROI Interpreted Type, display colour).
ROI_NAMES: dict[str, tuple[str, str, tuple[int, int, int]]] = {
    "body": ("Body", "EXTERNAL", (0, 255, 0)), "lung_left": ("Lung_L", "ORGAN", (0, 128, 255)),
    "lung_right": ("Lung_R", "ORGAN", (0, 200, 255)), "heart": ("Heart", "ORGAN", (255, 0, 128)),
    "spinal_cord": ("SpinalCord", "ORGAN", (255, 255, 0)), "esophagus": ("Esophagus", "ORGAN", (255, 128, 0)),
    "gtv": ("GTV", "GTV", (255, 0, 0)),
}  # fmt: skip
_MALE = (
    "AUGUSTIN",
    "BARNABY",
    "CORNELIUS",
    "DESMOND",
    "EZEKIEL",
    "FLORIAN",
    "GIDEON",
    "HORATIO",
    "IGNATIUS",
    "JOACHIM",
)
_FEMALE = ("ADELAIDE", "BRUNHILDE", "CLEMENTINE", "DAPHNE", "EUPHEMIA", "FIONNUALA", "GWENDOLYN", "HENRIETTA",
           "IMOGEN", "JOSEPHINE")  # fmt: skip


@dataclass(frozen=True)
class DoseModel:
    """Parameters of the analytic dose (see the module docstring); lengths in mm, doses in Gy."""

    centre_mm: tuple[float, float, float]
    radius_mm: float
    falloff_mm: float = 3.0
    prescription_gy: float = 60.0
    low_dose_gy: float = 6.0
    low_dose_sigma_mm: float = 50.0
    formula: str = (
        "S(r) = (1 + exp(-R/w)) / (1 + exp((r - R)/w)); "
        "D(r) = D_presc*S(r) + D_low*exp(-r^2/(2*sigma^2))*(1 - S(r)); r = |x - centre| in mm"
    )

    def dose_gy(self, points_mm: NDArray[np.float64]) -> NDArray[np.float64]:
        """Dose (Gy) at patient points (..., 3) in mm."""
        r = np.linalg.norm(np.asarray(points_mm, dtype=np.float64) - np.asarray(self.centre_mm), axis=-1)
        big_r, w = self.radius_mm, self.falloff_mm
        s = (1.0 + math.exp(-big_r / w)) / (1.0 + np.exp((r - big_r) / w))
        low = self.low_dose_gy * np.exp(-(r**2) / (2.0 * self.low_dose_sigma_mm**2))
        return np.asarray(self.prescription_gy * s + low * (1.0 - s), dtype=np.float64)


@dataclass(frozen=True)
class DemoManifest:
    """Everything about a generated study (written to ``manifest.json``); lengths in mm, volumes in cc, paths
    relative to the study folder. ``rtplan_sop_instance_uid`` is referenced by the RT Dose but not written."""

    seed: int
    generator_version: str
    patient_id: str
    patient_name: str
    patient_birth_date: str
    patient_sex: str
    study_date: str
    study_instance_uid: str
    ct_series_instance_uid: str
    frame_of_reference_uid: str
    rtstruct_sop_instance_uid: str
    rtstruct_series_instance_uid: str
    rtdose_sop_instance_uid: str
    rtdose_series_instance_uid: str
    rtplan_sop_instance_uid: str
    ct_sop_instance_uids: tuple[str, ...]
    n_ct_instances: int
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    structure_volumes_cc: dict[str, float]
    roi_names: dict[str, str]
    tumour_centre_mm: tuple[float, float, float]
    tumour_diameter_mm: float
    tumour_max_radius_mm: float
    laterality: str
    lobe: str
    dose_model: DoseModel
    dose_grid_origin_mm: tuple[float, float, float]
    dose_grid_spacing_mm: tuple[float, float, float]
    dose_grid_shape: tuple[int, int, int]
    note_facts: NoteFacts
    files: tuple[str, ...] = field(default=())

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> DemoManifest:
        data: dict[str, Any] = json.loads(text)
        tuples = {n for n, f in cls.__dataclass_fields__.items() if str(f.type).startswith("tuple")}
        for name in tuples:
            data[name] = tuple(data[name])
        model = data["dose_model"]
        data["dose_model"] = DoseModel(**{**model, "centre_mm": tuple(model["centre_mm"])})
        data["note_facts"] = NoteFacts(**data["note_facts"])
        return cls(**data)


def _uid(seed: int, geometry: VolumeGeometry, *parts: str) -> str:
    return str(
        generate_uid(entropy_srcs=["RadPlan demo", str(seed), repr(geometry.shape), repr(geometry.spacing_mm), *parts])
    )


def _identity(seed: int) -> tuple[str, str, str, str, int]:
    """(patient name, patient ID, birth date YYYYMMDD, sex, age in years at the study date)."""
    rng = stream_rng(seed, 0)
    sex = "M" if rng.random() < 0.6 else "F"
    names = _MALE if sex == "M" else _FEMALE
    name = f"DEMOPATIENT^{names[int(rng.integers(len(names)))]}"
    study = date(int(STUDY_DATE[:4]), int(STUDY_DATE[4:6]), int(STUDY_DATE[6:]))
    birth = date(study.year - int(rng.integers(48, 85)), int(rng.integers(1, 13)), int(rng.integers(1, 29)))
    age = study.year - birth.year - ((study.month, study.day) < (birth.month, birth.day))
    return name, f"RPD-{(seed * 7919 + 40961) % 100000:05d}", birth.strftime("%Y%m%d"), sex, age


def _dose_grid(phantom: Phantom) -> DoseGrid:
    """A grid of at least 2.5 mm (twice the CT pixel in-plane), over the body in-plane and the CT slices."""
    g = phantom.geometry
    dxy = (max(2.5, 2.0 * g.spacing_mm[0]), max(2.5, 2.0 * g.spacing_mm[1]))
    dz = max(2.5, g.spacing_mm[2])
    body = np.any(phantom.masks["body"], axis=0)
    lo, hi = [], []
    for axis, proj, d in ((0, body.any(axis=0), dxy[0]), (1, body.any(axis=1), dxy[1])):
        coords = g.axis_mm(axis)[proj]
        lo.append(round(max(float(coords.min()) - d, float(g.axis_mm(axis)[0])), 2))
        hi.append(min(float(coords.max()) + d, float(g.axis_mm(axis)[-1])))
    z = g.axis_mm(2)
    counts = [int((hi[a] - lo[a]) // dxy[a]) + 1 for a in (0, 1)] + [int((z[-1] - z[0] + 1e-6) // dz) + 1]
    return DoseGrid((counts[0], counts[1], counts[2]), (dxy[0], dxy[1], dz), (lo[0], lo[1], float(z[0])))


def _write_truth(out: Path, phantom: Phantom) -> list[str]:
    g = phantom.geometry
    (out / "truth").mkdir(parents=True, exist_ok=True)
    files = []
    for name in STRUCTURES:
        image: Any = sitk.GetImageFromArray(phantom.masks[name])  # SimpleITK is not annotated
        image.SetSpacing(g.spacing_mm)
        image.SetOrigin(g.origin_mm)
        image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
        sitk.WriteImage(image, str(out / "truth" / f"{name}.nii.gz"), True, 1)
        files.append(f"truth/{name}.nii.gz")
    return files


def generate_demo_study(
    out: Path,
    *,
    seed: int = 0,
    shape: tuple[int, int, int] = (512, 512, 150),
    spacing_mm: tuple[float, float, float] = (0.8, 0.8, 2.5),
) -> DemoManifest:
    """Write the demo study for ``seed`` into ``out`` (created if needed; files of the same names are replaced,
    other files there are left alone).

    ``shape`` is (columns, rows, slices) and ``spacing_mm`` (column spacing, row spacing, slice spacing) in mm.
    """
    if seed < 0:
        raise ValueError("seed must be non-negative")
    if min(shape) < 8 or min(spacing_mm) <= 0.0:
        raise ValueError("shape needs at least 8 voxels per axis and spacing must be positive")
    out = Path(out)
    geometry = VolumeGeometry.centred(
        (int(shape[0]), int(shape[1]), int(shape[2])),
        (float(spacing_mm[0]), float(spacing_mm[1]), float(spacing_mm[2])),
    )
    phantom = build_phantom(geometry, seed)
    name, patient_id, birth, sex, age = _identity(seed)
    uid = {key: _uid(seed, geometry, key) for key in ("study", "ct", "for", "rtstruct", "rs", "rtdose", "rd", "plan")}
    ct_uids = tuple(_uid(seed, geometry, "ct", str(k)) for k in range(geometry.shape[2]))
    header = CtSeriesHeader(
        patient_name=name, patient_id=patient_id, patient_birth_date=birth, patient_sex=sex,
        patient_age=f"{age:03d}Y", study_instance_uid=uid["study"], study_date=STUDY_DATE, study_time=STUDY_TIME,
        study_id="DEMO1", accession_number=f"ACC{patient_id[4:]}", study_description="CT THORAX RT PLANNING",
        referring_physician_name="PULMO^A", series_instance_uid=uid["ct"], frame_of_reference_uid=uid["for"],
        sop_instance_uids=ct_uids,
    )  # fmt: skip
    ct_paths, headers = write_ct_series(out / "ct", phantom.hu, geometry, header)
    reference = ImageSeriesReference.from_datasets(headers)
    files = [p.relative_to(out).as_posix() for p in ct_paths] + _write_truth(out, phantom)

    rois = {
        roi: RoiSpec(phantom.masks[key], interpreted_type=kind, color=color, generation_algorithm="AUTOMATIC")
        for key, (roi, kind, color) in ROI_NAMES.items()
    }
    rs_options = StructureSetOptions(
        date=STUDY_DATE, time=STUDY_TIME, label="DEMO", name="Demo truth", sop_instance_uid=uid["rtstruct"],
        series_instance_uid=uid["rs"], series_number=2, series_description="Truth structures (synthetic)",
    )  # fmt: skip
    write_rtstruct(rois, reference, rs_options).save_as(out / "rtstruct.dcm", enforce_file_format=True)

    tumour = phantom.tumour
    model = DoseModel(centre_mm=tumour.centre_mm, radius_mm=round(tumour.max_radius_mm + 7.0, 2))
    grid = _dose_grid(phantom)
    k, j, i = np.indices(grid.array_shape).reshape(3, -1)
    dose = model.dose_gy(grid.points_mm(np.stack([k, j, i], axis=1))).reshape(grid.array_shape)
    rd_options = RtDoseOptions(
        date=STUDY_DATE, time=STUDY_TIME, referenced_plan_uid=uid["plan"], sop_instance_uid=uid["rtdose"],
        series_instance_uid=uid["rd"], series_number=3, series_description="Analytic dose (synthetic)",
        comment="Analytic demo dose; see manifest.json",
    )  # fmt: skip
    write_rtdose(dose, grid, reference, rd_options).save_as(out / "rtdose.dcm", enforce_file_format=True)

    lobe = lobe_of(phantom.anatomy, tumour.centre_mm)
    diameter = round(tumour.longest_diameter_mm(), 2)
    facts = draw_note_facts(stream_rng(seed, 5), age_years=age, sex=sex, longest_diameter_mm=diameter, lobe=lobe)
    iso = f"{STUDY_DATE[:4]}-{STUDY_DATE[4:6]}-{STUDY_DATE[6:]}"
    note = render_note(
        facts,
        patient_name=name,
        patient_id=patient_id,
        birth_date=f"{birth[:4]}-{birth[4:6]}-{birth[6:]}",
        visit_date=iso,
    )
    (out / "note.txt").write_text(note, encoding="utf-8", newline="\n")
    files += ["rtstruct.dcm", "rtdose.dcm", "note.txt", "manifest.json"]

    voxel_cc = geometry.voxel_volume_mm3 / 1000.0
    manifest = DemoManifest(
        seed=seed, generator_version=GENERATOR_VERSION, patient_id=patient_id, patient_name=name,
        patient_birth_date=birth, patient_sex=sex, study_date=STUDY_DATE, study_instance_uid=uid["study"],
        ct_series_instance_uid=uid["ct"], frame_of_reference_uid=uid["for"], rtstruct_sop_instance_uid=uid["rtstruct"],
        rtstruct_series_instance_uid=uid["rs"], rtdose_sop_instance_uid=uid["rtdose"],
        rtdose_series_instance_uid=uid["rd"], rtplan_sop_instance_uid=uid["plan"], ct_sop_instance_uids=ct_uids,
        n_ct_instances=len(ct_paths), shape=geometry.shape, spacing_mm=geometry.spacing_mm,
        origin_mm=geometry.origin_mm,
        structure_volumes_cc={n: int(np.count_nonzero(phantom.masks[n])) * voxel_cc for n in STRUCTURES},
        roi_names={key: value[0] for key, value in ROI_NAMES.items()}, tumour_centre_mm=tumour.centre_mm,
        tumour_diameter_mm=diameter, tumour_max_radius_mm=round(tumour.max_radius_mm, 4),
        laterality=facts.laterality, lobe=lobe, dose_model=model, dose_grid_origin_mm=grid.origin_mm,
        dose_grid_spacing_mm=grid.spacing_mm, dose_grid_shape=grid.shape, note_facts=facts, files=tuple(files),
    )  # fmt: skip
    (out / "manifest.json").write_text(manifest.to_json(), encoding="utf-8", newline="\n")
    return manifest
