"""Accuracy of the shipped thorax model on held-out demo studies (seeds never used in training) at the demo's full
resolution (512 x 512 x 150, 0.8 x 0.8 x 2.5 mm): the CT is read back from the written DICOM series and goes through
prepare -> sliding_window_predict -> restore -> final_masks (structure rules + the manifest's GTV edge refinement,
core.segmentation.refine) with ONNX Runtime on the CPU (PyTorch/ONNX Runtime parity is tested in tests/engine).
Issue 4's thresholds: Dice >= 0.90 for the tumour, >= 0.95 for the lungs and the body; the other organs are held
to the floors the shipped model reaches (regression). The network's own GTV (before refinement) is printed too:
it localises the tumour but under-segments it (docs/segmentation.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import SimpleITK as sitk  # noqa: N813

from core.demo.generator import generate_demo_study
from core.segmentation.models import ModelManifest, get_model
from engines.segmentation.postprocess import final_masks, restore
from engines.segmentation.preprocess import prepare
from engines.segmentation.sliding_window import sliding_window_predict

pytestmark = pytest.mark.slow

HELD_OUT = (0, 1, 2)
THRESHOLDS = {"lung_left": 0.95, "lung_right": 0.95, "body": 0.95, "gtv": 0.90}  # issue 4
#: Regression floors of radplan-thorax-unet 1.1.0 (measured: heart 0.92-0.95, oesophagus 0.92, cord 0.89-0.95).
FLOORS = {"heart": 0.90, "esophagus": 0.88, "spinal_cord": 0.85}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def read_study(folder: Path) -> tuple[np.ndarray, tuple[float, float, float], dict[str, np.ndarray]]:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder / "ct")))
    image = reader.Execute()
    truth = {
        p.name[: -len(".nii.gz")]: sitk.GetArrayFromImage(sitk.ReadImage(str(p)))
        for p in (folder / "truth").glob("*.nii.gz")
    }
    return sitk.GetArrayFromImage(image).astype(np.float32), tuple(image.GetSpacing()), truth


def onnx_predictor(manifest: ModelManifest):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(manifest.model_path), options, providers=["CPUExecutionProvider"])

    def predict(batch: np.ndarray) -> np.ndarray:
        return session.run([manifest.output_name], {manifest.input_name: batch})[0]

    return predict


def segment(
    hu: np.ndarray, spacing, manifest: ModelManifest, predict
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    t0 = time.perf_counter()
    prepared = prepare(hu, spacing, manifest)
    t1 = time.perf_counter()
    probs = sliding_window_predict(
        prepared.image, predict, patch_size=manifest.patch_size, num_classes=manifest.num_classes, overlap=0.5
    )
    t2 = time.perf_counter()
    labels = restore(probs, prepared)
    network_gtv = manifest.structure_masks(labels)["gtv"]
    masks, _notes = final_masks(labels, manifest, hu, spacing)
    masks["network_gtv"] = network_gtv
    t3 = time.perf_counter()
    return masks, {"prepare": t1 - t0, "predict": t2 - t1, "restore": t3 - t2, "total": t3 - t0}


@pytest.fixture(scope="module")
def manifest() -> ModelManifest:
    m = get_model()
    seeds = set(json.loads((m.directory / "manifest.json").read_text())["training"]["seeds"])
    assert not seeds & set(HELD_OUT), "held-out seeds were used in training"
    return m


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("heldout")
    return {seed: root / f"seed{seed}" for seed in HELD_OUT}


def _study(studies: dict[int, Path], seed: int) -> tuple[np.ndarray, Any, dict[str, np.ndarray]]:
    folder = studies[seed]
    if not (folder / "manifest.json").exists():
        generate_demo_study(folder, seed=seed)  # default: 512 x 512 x 150 at 0.8 x 0.8 x 2.5 mm
    return read_study(folder)


@pytest.mark.parametrize("seed", HELD_OUT)
def test_held_out_dice(seed: int, manifest: ModelManifest, studies: dict[int, Path]) -> None:
    hu, spacing, truth = _study(studies, seed)
    assert hu.shape == (150, 512, 512) and spacing == pytest.approx((0.8, 0.8, 2.5))
    masks, timings = segment(hu, spacing, manifest, onnx_predictor(manifest))
    scores = {name: dice(masks[name], truth[name]) for name in manifest.structures}
    line = " ".join(f"{k}={v:.4f}" for k, v in scores.items())
    line += f" (network gtv={dice(masks['network_gtv'], truth['gtv']):.4f})"
    print(f"\nseed {seed}: {line}; time " + " ".join(f"{k}={v:.1f}s" for k, v in timings.items()))
    failed = {k: round(scores[k], 4) for k, t in {**THRESHOLDS, **FLOORS}.items() if scores[k] < t}
    assert not failed, f"Dice below threshold on held-out seed {seed}: {failed}"
