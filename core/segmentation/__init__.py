"""Segmentation: the model registry (manifests, sha256 checks) and semi-automatic mask edits; the inference
itself runs in engines/segmentation (numpy math) with a backend from engines/backends."""

from __future__ import annotations

from core.segmentation.models import (
    DEFAULT_MODEL,
    CancelledError,
    ModelError,
    ModelInfo,
    ModelManifest,
    Normalisation,
    get_model,
    list_models,
    load_manifest,
    site_models_dir,
)

__all__ = [
    "DEFAULT_MODEL",
    "CancelledError",
    "ModelError",
    "ModelInfo",
    "ModelManifest",
    "Normalisation",
    "get_model",
    "list_models",
    "load_manifest",
    "site_models_dir",
]
