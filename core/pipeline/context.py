"""What every pipeline step gets: the store, who acts (an authorize callable), where the study comes from, options,
the segmentation provider, and a progress sink. No step reads settings, prompts or the environment itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core.errors import RadPlanError
from core.pacs.association import LocalAE
from core.pacs.nodes import PacsNode
from core.security.roles import Permission
from core.security.session import Access
from core.store.store import Store

__all__ = [
    "PipelineContext",
    "PipelineError",
    "PipelineOptions",
    "Progress",
    "Segmenter",
    "StepError",
]

#: progress(step, fraction 0..1, message)
Progress = Callable[[str, float, str], None]


class PipelineError(RadPlanError):
    """The pipeline cannot start or go on; the message says what to do."""


class StepError(PipelineError):
    """A step failed; ``step`` names it. What the completed steps made is kept: running again resumes."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


class Segmenter(Protocol):
    """Produces the AI segmentation of a CT series, stored as a DICOM SEG in the study (the engine worker's job
    through core.jobs in production). Returns at least {"seg_sop_instance_uid": ...}."""

    def segment(self, ctx: PipelineContext, study_uid: str, series_uid: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PipelineOptions:
    """Choices of one run. ``model``/``backend`` None: the engine's defaults."""

    send_back: bool = False
    site: str = "nsclc"
    radiomics_config: str = "clinical"
    model: str | None = None
    backend: str | None = None
    ptv_margin_mm: float = 5.0
    segment_timeout_s: float = 1800.0
    #: Only with the input-folder source: a clinical note text file to attach (default: DIR/note.txt if present).
    note_file: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "send_back": self.send_back,
            "site": self.site,
            "radiomics_config": self.radiomics_config,
            "model": self.model,
            "backend": self.backend,
            "ptv_margin_mm": self.ptv_margin_mm,
        }


def _no_progress(_step: str, _fraction: float, _message: str) -> None:
    return None


@dataclass(frozen=True)
class PipelineContext:
    """Inputs of one run for one study: either ``node`` (a PACS to retrieve from, and send back to) or
    ``input_dir`` (a folder of DICOM files)."""

    store: Store
    authorize: Callable[[Permission], Access]
    study_uid: str
    out_dir: Path
    segmenter: Segmenter
    options: PipelineOptions = PipelineOptions()
    node: PacsNode | None = None
    local: LocalAE | None = None
    input_dir: Path | None = None
    model_roots: tuple[Path, ...] = ()
    progress: Progress = _no_progress
    run_id: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        if self.node is not None:
            return f"pacs:{self.node.name}"
        return f"folder:{self.input_dir}"

    def access(self, permission: Permission) -> Access:
        return self.authorize(permission)

    @property
    def user_name(self) -> str:
        return self.authorize(Permission.RUN_ANALYSIS).user.name
