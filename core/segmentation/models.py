"""Segmentation model registry: ONNX models with a ``manifest.json`` (and optionally a PyTorch reference) in
``resources/models/<name>/`` (shipped) and ``<data dir>/models/<name>/`` (dropped in by a site, e.g. exported
nnU-Net or MONAI models). A model whose file does not match the manifest's sha256 is listed as refused, never run.

Manifest (JSON): name, version, task ("segmentation"), format ("onnx"), file, sha256, optional torch
{file, sha256, architecture "module:Class", kwargs}, labels (class index -> structure name, "background" first),
roi_names (structure -> DICOM ROI name), spacing_mm [x, y, z], patch_size [z, y, x], divisible_by, normalisation
{kind "ct_clip", clip_hu [lo, hi], mean, std}, input_name, output_name, model_card, and the optional rules
``derived`` (output structure -> the classes whose union it is) and ``largest_component`` (structure -> keep the
largest connected component plus components of at least this fraction of its size).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.errors import RadPlanError
from core.resources import resource_path
from core.segmentation.edit import EditError
from core.segmentation.refine import LesionRefinement

__all__ = [
    "DEFAULT_MODEL",
    "CancelledError",
    "ModelError",
    "ModelInfo",
    "ModelManifest",
    "Normalisation",
    "TorchReference",
    "get_model",
    "list_models",
    "load_manifest",
    "sha256_file",
    "site_models_dir",
    "verify_file",
]

DEFAULT_MODEL = "radplan-thorax-unet"
MANIFEST = "manifest.json"


class ModelError(RadPlanError):
    """A segmentation model is missing, malformed, or its file does not match the manifest's sha256."""


class CancelledError(RadPlanError):
    """The segmentation was cancelled by the user; nothing was written."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def site_models_dir(data_dir: Path) -> Path:
    """Where a site drops its own models: ``<data dir>/models``."""
    return Path(data_dir) / "models"


@dataclass(frozen=True)
class Normalisation:
    """``(clip(hu, clip_hu) - mean) / std``."""

    kind: str
    clip_hu: tuple[float, float]
    mean: float
    std: float

    def apply(self, hu: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
        out = np.clip(np.asarray(hu, dtype=np.float32), self.clip_hu[0], self.clip_hu[1])
        out -= np.float32(self.mean)
        out /= np.float32(self.std)
        return out

    def value_of(self, hu: float) -> float:
        """The normalised value of one HU value (e.g. air, for padding)."""
        return (min(max(hu, self.clip_hu[0]), self.clip_hu[1]) - self.mean) / self.std


@dataclass(frozen=True)
class TorchReference:
    file: str
    sha256: str
    architecture: str
    kwargs: Mapping[str, Any]


@dataclass(frozen=True)
class ModelManifest:
    directory: Path
    name: str
    version: str
    task: str
    format: str
    file: str
    sha256: str
    labels: tuple[str, ...]
    roi_names: Mapping[str, str]
    spacing_mm: tuple[float, float, float]
    patch_size: tuple[int, int, int]
    divisible_by: int
    normalisation: Normalisation
    input_name: str = "image"
    output_name: str = "logits"
    model_card: str = "MODEL_CARD.md"
    torch: TorchReference | None = None
    derived: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    largest_component: Mapping[str, float] = field(default_factory=dict)
    refine: Mapping[str, LesionRefinement] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def model_path(self) -> Path:
        return self.directory / self.file

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def structures(self) -> tuple[str, ...]:
        """Output structures: every class but the background, in class order."""
        return tuple(name for name in self.labels if name != "background")

    def structure_masks(self, labels: NDArray[np.integer[Any]], *, clean: bool = True) -> dict[str, NDArray[np.uint8]]:
        """Per-structure 0/1 masks from an argmax label map: a structure in ``derived`` is the union of its
        classes, any other is ``labels == its class``; then the ``largest_component`` rule (when ``clean``)."""
        from core.segmentation.edit import largest_component  # edit imports nothing from here

        index = {name: k for k, name in enumerate(self.labels)}
        out: dict[str, NDArray[np.uint8]] = {}
        for name in self.structures:
            members = self.derived.get(name, (name,))
            mask = np.isin(labels, [index[m] for m in members])
            if clean and name in self.largest_component:
                mask = largest_component(mask, min_fraction=self.largest_component[name])
            out[name] = mask.astype(np.uint8)
        return out

    def verify(self) -> None:
        """Raise ModelError when the model file is missing or its sha256 differs from the manifest's."""
        verify_file(self.model_path, self.sha256, self.name)


def verify_file(path: Path, expected: str, name: str) -> None:
    if not path.is_file():
        raise ModelError(f"model {name!r}: file {path.name} is missing from {path.parent}; reinstall the model")
    actual = sha256_file(path)
    if actual.lower() != expected.lower():
        raise ModelError(
            f"model {name!r}: {path.name} does not match the sha256 in its manifest (expected {expected[:12]}..., "
            f"found {actual[:12]}...); the file was changed or damaged: reinstall the model"
        )


def _tuple3(value: Any, kind: type, what: str) -> Any:
    items = tuple(kind(v) for v in value)
    if len(items) != 3:
        raise ModelError(f"manifest {what} needs three values, not {len(items)}")
    return items


def _refinements(value: Mapping[str, Any], labels: tuple[str, ...]) -> dict[str, LesionRefinement]:
    try:
        rules = {str(k): LesionRefinement.from_json(v) for k, v in value.items()}
    except EditError as exc:
        raise ModelError(f"manifest 'refine': {exc}") from exc
    unknown = sorted(({*rules} | {o for r in rules.values() for o in r.within}) - set(labels))
    if unknown:
        raise ModelError(f"manifest 'refine' names structures the model does not output: {', '.join(unknown)}")
    return rules


def load_manifest(directory: Path) -> ModelManifest:
    """Read ``directory/manifest.json`` (not the model file: see ModelManifest.verify)."""
    directory = Path(directory)
    path = directory / MANIFEST
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"no {MANIFEST} in {directory}") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not readable JSON ({exc}); fix or remove the model folder") from exc
    try:
        norm = data["normalisation"]
        torch_ref = data.get("torch")
        labels = tuple(str(n) for n in data["labels"])
        derived = {str(k): tuple(str(m) for m in v) for k, v in data.get("derived", {}).items()}
        unknown = sorted({m for v in derived.values() for m in v} - set(labels))
        if unknown or labels[0] != "background" or len(set(labels)) != len(labels):
            raise ModelError(f"{path}: labels must start with 'background', be unique and cover 'derived'")
        return ModelManifest(
            directory=directory,
            name=str(data["name"]),
            version=str(data["version"]),
            task=str(data.get("task", "segmentation")),
            format=str(data.get("format", "onnx")),
            file=str(data["file"]),
            sha256=str(data["sha256"]),
            labels=labels,
            roi_names={str(k): str(v) for k, v in data.get("roi_names", {}).items()},
            spacing_mm=_tuple3(data["spacing_mm"], float, "spacing_mm"),
            patch_size=_tuple3(data["patch_size"], int, "patch_size"),
            divisible_by=int(data.get("divisible_by", 16)),
            normalisation=Normalisation(
                kind=str(norm.get("kind", "ct_clip")),
                clip_hu=(float(norm["clip_hu"][0]), float(norm["clip_hu"][1])),
                mean=float(norm["mean"]),
                std=float(norm["std"]),
            ),
            input_name=str(data.get("input_name", "image")),
            output_name=str(data.get("output_name", "logits")),
            model_card=str(data.get("model_card", "MODEL_CARD.md")),
            torch=None
            if torch_ref is None
            else TorchReference(
                file=str(torch_ref["file"]),
                sha256=str(torch_ref["sha256"]),
                architecture=str(torch_ref["architecture"]),
                kwargs=dict(torch_ref.get("kwargs", {})),
            ),
            derived=derived,
            largest_component={str(k): float(v) for k, v in data.get("largest_component", {}).items()},
            refine=_refinements(data.get("refine", {}), labels),
            extra={k: v for k, v in data.items() if k in ("training", "metrics", "description")},
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelError(f"{path}: missing or malformed field ({exc}); see docs/segmentation.md") from exc


@dataclass(frozen=True)
class ModelInfo:
    """One model folder as listed: ``manifest`` is None when the manifest itself is unreadable; ``refused``
    gives the reason a model cannot be used (sha256 mismatch, missing file, bad manifest)."""

    directory: Path
    source: str  # "shipped" or "site"
    manifest: ModelManifest | None
    refused: str | None = None

    @property
    def name(self) -> str:
        return self.manifest.name if self.manifest is not None else self.directory.name

    @property
    def usable(self) -> bool:
        return self.refused is None and self.manifest is not None


def _scan(root: Path, source: str) -> list[ModelInfo]:
    if not root.is_dir():
        return []
    infos: list[ModelInfo] = []
    for directory in sorted(p for p in root.iterdir() if (p / MANIFEST).is_file()):
        try:
            manifest = load_manifest(directory)
        except ModelError as exc:
            infos.append(ModelInfo(directory, source, None, str(exc)))
            continue
        if manifest.task != "segmentation":
            continue
        try:
            if manifest.format != "onnx":
                raise ModelError(f"model {manifest.name!r}: format {manifest.format!r} is not supported (onnx only)")
            manifest.verify()
        except ModelError as exc:
            infos.append(ModelInfo(directory, source, manifest, str(exc)))
            continue
        infos.append(ModelInfo(directory, source, manifest))
    return infos


def list_models(root: Path | None = None, site_dir: Path | None = None) -> list[ModelInfo]:
    """Segmentation models shipped under ``root`` (default resources/models) and dropped into ``site_dir``
    (``site_models_dir(settings.data_dir)``), refused ones included with their reason."""
    return _scan(Path(root) if root is not None else resource_path("models"), "shipped") + (
        _scan(Path(site_dir), "site") if site_dir is not None else []
    )


def _version_key(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def get_model(name: str = DEFAULT_MODEL, root: Path | None = None, site_dir: Path | None = None) -> ModelManifest:
    """The usable model called ``name`` (the highest version; a site model wins a tie). ModelError when there is
    none, with the refusal reason when the only candidates were refused."""
    infos = [i for i in list_models(root, site_dir) if i.name == name]
    usable = [i for i in infos if i.usable and i.manifest is not None]
    if not usable:
        if infos:
            raise ModelError("; ".join(i.refused or "" for i in infos))
        known = sorted({i.name for i in list_models(root, site_dir) if i.usable})
        raise ModelError(f"no segmentation model {name!r}; available: {', '.join(known) or 'none'}")
    best = max(usable, key=lambda i: (_version_key(i.manifest.version if i.manifest else ""), i.source == "site"))
    assert best.manifest is not None
    return best.manifest
