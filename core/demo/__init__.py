"""Deterministic synthetic thorax CT demo data (CT series, truth masks, RTSTRUCT, RTDOSE, note, manifest)."""

from core.demo.generator import GENERATOR_VERSION, ROI_NAMES, DemoManifest, DoseModel, generate_demo_study
from core.demo.note import NoteFacts

__all__ = ["GENERATOR_VERSION", "ROI_NAMES", "DemoManifest", "DoseModel", "NoteFacts", "generate_demo_study"]
