"""Segmentation model registry: the shipped thorax model, site models dropped into <data dir>/models, sha256
refusal, and `radplan model list`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from core.resources import resource_path
from core.segmentation.models import (
    DEFAULT_MODEL,
    ModelError,
    get_model,
    list_models,
    load_manifest,
    sha256_file,
    site_models_dir,
)
from engines.segmentation.reference import torch_predictor
from engines.segmentation.sliding_window import sliding_window_predict
from engines.segmentation.train import export_onnx
from engines.segmentation.unet import UNet3D

SHIPPED = resource_path("models", DEFAULT_MODEL)


def onnx_predictor(path: Path):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def predict(batch: np.ndarray) -> np.ndarray:
        return session.run(["logits"], {"image": batch})[0]

    return predict


def make_site_model(models_dir: Path, name: str = "site-nnunet-like") -> Path:
    """A small exported model with a manifest in the shipped format (as a site would drop in)."""
    folder = models_dir / name
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    net = UNet3D(1, 3, (4, 8)).eval()
    export_onnx(net, folder / "model.onnx", (16, 16, 16))
    manifest = {
        "name": name, "version": "2.1.0", "task": "segmentation", "format": "onnx", "file": "model.onnx",
        "sha256": sha256_file(folder / "model.onnx"), "labels": ["background", "liver", "spleen"],
        "roi_names": {"liver": "Liver", "spleen": "Spleen"}, "spacing_mm": [1.5, 1.5, 3.0],
        "patch_size": [16, 16, 16], "divisible_by": 2,
        "normalisation": {"kind": "ct_clip", "clip_hu": [-200, 300], "mean": 50, "std": 100},
        "input_name": "image", "output_name": "logits", "model_card": "MODEL_CARD.md",
    }  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_shipped_model_is_listed_verified_and_small() -> None:
    infos = [i for i in list_models() if i.name == DEFAULT_MODEL]
    assert len(infos) == 1 and infos[0].usable and infos[0].source == "shipped"
    m = get_model()
    assert m.labels == ("background", "body", "lung_left", "lung_right", "heart", "spinal_cord", "esophagus", "gtv")
    assert m.roi_names["gtv"] == "GTV" and m.roi_names["lung_left"] == "Lung_L"
    assert set(m.derived["body"]) == set(m.structures)
    assert m.torch is not None and m.torch.architecture == "engines.segmentation.unet:UNet3D"
    assert m.normalisation.kind == "ct_clip" and m.normalisation.std > 0
    size = sum(p.stat().st_size for p in SHIPPED.iterdir())
    assert size < 8 * 1024 * 1024, f"model folder is {size / 1e6:.1f} MB"
    card = (SHIPPED / m.model_card).read_text(encoding="utf-8")
    for heading in ("Intended use", "Training data", "Metrics", "Limitations"):
        assert heading in card
    assert "not for clinical use" in card.lower()
    training = json.loads((SHIPPED / "manifest.json").read_text())["training"]
    assert training["seeds"] and training["command"].startswith("radplan model train")


def test_onnx_matches_the_torch_reference() -> None:
    m = get_model()
    rng = np.random.default_rng(3)
    batch = rng.normal(0.0, 0.6, size=(2, 1, *m.patch_size)).astype(np.float32)
    reference = torch_predictor(m)(batch)
    onnx = onnx_predictor(m.model_path)(batch)
    assert onnx.shape == reference.shape == (2, m.num_classes, *m.patch_size)
    assert float(np.abs(onnx - reference).max()) < 1e-3
    # dynamic Z/Y/X: another multiple of divisible_by runs too
    other = rng.normal(size=(1, 1, 32, 48, 64)).astype(np.float32)
    assert onnx_predictor(m.model_path)(other).shape == (1, m.num_classes, 32, 48, 64)


def test_site_model_is_listed_and_usable(tmp_path: Path) -> None:
    site = site_models_dir(tmp_path / "data")
    make_site_model(site)
    infos = {i.name: i for i in list_models(site_dir=site)}
    assert infos["site-nnunet-like"].usable and infos["site-nnunet-like"].source == "site"
    assert DEFAULT_MODEL in infos  # the shipped one is still there
    m = get_model("site-nnunet-like", site_dir=site)
    assert m.version == "2.1.0" and m.structures == ("liver", "spleen") and m.torch is None
    image = np.random.default_rng(0).normal(size=(20, 24, 30)).astype(np.float32)
    probs = sliding_window_predict(image, onnx_predictor(m.model_path), patch_size=m.patch_size, num_classes=3)
    assert probs.shape == (3, 20, 24, 30)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    with pytest.raises(ModelError, match="no segmentation model 'nope'"):
        get_model("nope", site_dir=site)


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    site = site_models_dir(tmp_path / "data")
    folder = make_site_model(site, "tampered")
    with open(folder / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    info = next(i for i in list_models(site_dir=site) if i.name == "tampered")
    assert not info.usable and "sha256" in (info.refused or "")
    with pytest.raises(ModelError, match="does not match the sha256"):
        get_model("tampered", site_dir=site)
    # a missing file and a broken manifest are refused too, with their reasons
    (folder / "model.onnx").unlink()
    assert "missing" in (next(i for i in list_models(site_dir=site) if i.name == "tampered").refused or "")
    broken = site / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json", encoding="utf-8")
    assert "not readable JSON" in (next(i for i in list_models(site_dir=site) if i.name == "broken").refused or "")


def test_load_manifest_rejects_bad_labels(tmp_path: Path) -> None:
    folder = make_site_model(tmp_path, "bad")
    data = json.loads((folder / "manifest.json").read_text())
    data["derived"] = {"liver": ["liver", "kidney"]}
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="labels"):
        load_manifest(folder)


def test_cli_model_list(cli, data_dir: Path) -> None:
    site = site_models_dir(data_dir)
    make_site_model(site)
    tampered = make_site_model(site, "tampered")
    shutil.copy(tampered / "manifest.json", tampered / "manifest.bak")
    (tampered / "model.onnx").write_bytes(b"not the model")
    rows = {row["name"]: row for row in json.loads(cli("model", "list", "--json").stdout)}
    assert rows[DEFAULT_MODEL]["usable"] and rows[DEFAULT_MODEL]["source"] == "shipped"
    assert rows["site-nnunet-like"]["usable"] and rows["site-nnunet-like"]["labels"][1] == "liver"
    assert not rows["tampered"]["usable"] and "sha256" in rows["tampered"]["refused"]
    text = cli("model", "list").stdout
    assert "REFUSED" in text and "site-nnunet-like 2.1.0 (site)" in text
