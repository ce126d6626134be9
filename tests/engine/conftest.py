"""Engine test fixtures: a tiny randomly initialised model (same manifest format as the shipped one, written into a
temporary site models dir) and small demo studies, so worker mechanics never depend on model accuracy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.tiny_model import SMALL_SHAPE, SMALL_SPACING, write_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def small_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from core.demo.generator import generate_demo_study

    out = tmp_path_factory.mktemp("study")
    generate_demo_study(out, seed=3, shape=SMALL_SHAPE, spacing_mm=SMALL_SPACING)
    return out
