"""Window/level presets for CT, in Hounsfield units.

A window of width W centred at level L maps L - W/2 to black and L + W/2 to white. The values are the ones in
common clinical use; sources:

- lung W 1500 / L -600, mediastinum W 350 / L 50, bone W 2000 / L 300 (thorax CT):
  Radiopaedia, "Windowing (CT)", https://radiopaedia.org/articles/windowing-ct (lung 1500/-600,
  mediastinum 350/50, bone 1800-2000/300-400).
- soft tissue W 400 / L 40: Radiopaedia, same article (soft tissues 350-400/20-60); also the "abdomen soft tissue"
  preset of 3D Slicer's CT window presets (W 400, L 40).
- brain W 80 / L 40: Radiopaedia, same article (brain 80/40); 3D Slicer's "CT-Brain" preset (W 100, L 50) is the
  nearby alternative.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["DEFAULT_PRESET", "WINDOW_PRESETS", "WindowPreset", "preset_for"]


@dataclass(frozen=True)
class WindowPreset:
    """A display window: ``window`` (width, HU, > 0) centred at ``level`` (HU)."""

    name: str
    window: float
    level: float

    def __post_init__(self) -> None:
        if not self.window > 0.0:
            raise ValueError(f"preset {self.name!r}: the window width must be positive (HU)")

    @property
    def range_hu(self) -> tuple[float, float]:
        """(lowest, highest) HU shown as black and white."""
        return self.level - self.window / 2.0, self.level + self.window / 2.0


WINDOW_PRESETS = MappingProxyType(
    {
        p.name: p
        for p in (
            WindowPreset("lung", 1500.0, -600.0),
            WindowPreset("mediastinum", 350.0, 50.0),
            WindowPreset("bone", 2000.0, 300.0),
            WindowPreset("soft tissue", 400.0, 40.0),
            WindowPreset("brain", 80.0, 40.0),
        )
    }
)
"""The presets by name (lung, mediastinum, bone, soft tissue, brain)."""

DEFAULT_PRESET = "mediastinum"


def preset_for(name: str) -> WindowPreset:
    """The preset called ``name`` (case-insensitive; '_' and '-' read as spaces); KeyError naming the presets."""
    key = name.strip().lower().replace("_", " ").replace("-", " ")
    try:
        return WINDOW_PRESETS[key]
    except KeyError:
        raise KeyError(f"no window preset {name!r} (there are: {', '.join(WINDOW_PRESETS)})") from None
