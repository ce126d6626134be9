"""The one loader for shipped data in resources/ (rules, model files, report templates, icons).

From a source checkout that is <repo>/resources; in the PyInstaller bundle it is <bundle>/_internal/resources
(sys._MEIPASS), where installer/pyinstaller/radplan.spec puts it. RADPLAN_RESOURCES overrides both (tests, sites).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["resource_path", "resources_root"]


def resources_root() -> Path:
    if env := os.environ.get("RADPLAN_RESOURCES"):
        return Path(env)
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root is not None:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


def resource_path(*parts: str) -> Path:
    """A path under resources/, e.g. resource_path("rules", "nsclc")."""
    return resources_root().joinpath(*parts)
