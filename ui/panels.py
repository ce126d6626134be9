"""Panel factory: each panel module is imported only when a role that sees it signs in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:
    from ui.main_window import MainWindow

__all__ = ["build_panel"]


def build_panel(name: str, shell: MainWindow) -> QWidget:
    if name == "worklist":
        from ui.worklist.panel import WorklistPanel

        return WorklistPanel(shell)
    if name == "viewer":
        from ui.viewer_host import ViewerHost

        return ViewerHost(shell)
    if name == "segmentation":
        from ui.segmentation.panel import SegmentationPanel

        return SegmentationPanel(shell)
    if name == "analysis":
        from ui.analysis.panel import AnalysisPanel

        return AnalysisPanel(shell)
    if name == "plan":
        from ui.plan_review.panel import PlanReviewPanel

        return PlanReviewPanel(shell)
    if name == "jobs":
        from ui.jobs.panel import JobsPanel

        return JobsPanel(shell)
    if name == "settings":
        from ui.settings.panel import SettingsPanel

        return SettingsPanel(shell)
    raise KeyError(name)
