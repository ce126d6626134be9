"""A dark, low-luminance theme for reading rooms: near-black surfaces, grey text, one muted accent."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

__all__ = ["ACCENT", "apply_dark_theme"]

ACCENT = "#4f8cc9"
_COLOURS = {
    QPalette.ColorRole.Window: "#1e1f22",
    QPalette.ColorRole.WindowText: "#d0d0d0",
    QPalette.ColorRole.Base: "#16171a",
    QPalette.ColorRole.AlternateBase: "#202226",
    QPalette.ColorRole.ToolTipBase: "#2b2d31",
    QPalette.ColorRole.ToolTipText: "#e0e0e0",
    QPalette.ColorRole.Text: "#d0d0d0",
    QPalette.ColorRole.Button: "#2b2d31",
    QPalette.ColorRole.ButtonText: "#d8d8d8",
    QPalette.ColorRole.BrightText: "#ff6b6b",
    QPalette.ColorRole.Highlight: ACCENT,
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#7fb2e5",
    QPalette.ColorRole.PlaceholderText: "#7a7a7a",
}
_STYLE = f"""
QToolTip {{ border: 1px solid #3a3d42; }}
QTabBar::tab {{ padding: 6px 14px; background: #25272b; color: #b8b8b8; border: 1px solid #2f3237; }}
QTabBar::tab:selected {{ background: #30333a; color: #f0f0f0; border-bottom: 2px solid {ACCENT}; }}
QHeaderView::section {{ background: #25272b; color: #c8c8c8; padding: 4px; border: 0px; }}
QStatusBar {{ background: #17181b; color: #a8a8a8; }}
QLineEdit, QPlainTextEdit, QTextEdit, QSpinBox, QDoubleSpinBox, QComboBox {{
    background: #16171a; border: 1px solid #3a3d42; padding: 3px; }}
QPushButton {{ padding: 5px 12px; border: 1px solid #3a3d42; border-radius: 3px; }}
QPushButton:hover {{ border-color: {ACCENT}; }}
QPushButton:disabled {{ color: #666; }}
QProgressBar {{ border: 1px solid #3a3d42; text-align: center; }}
QProgressBar::chunk {{ background: {ACCENT}; }}
QLabel#error {{ color: #ff8a80; }}
QLabel#notice {{ color: #e0c060; }}
"""


def apply_dark_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    for role, colour in _COLOURS.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6a6a6a"))
    app.setPalette(palette)
    app.setStyleSheet(_STYLE)
