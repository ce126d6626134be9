"""The dark reading-room theme."""

from ui.theme.dark import apply_dark_theme

__all__ = ["apply_dark_theme"]
