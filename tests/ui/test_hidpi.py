"""HiDPI: the viewer at a device pixel ratio of 2 (QT_SCALE_FACTOR=2, in a fresh process: the factor is read when
the application starts). VTK must render into the full device-pixel size of each view, and a click (logical
widget pixels) must land on the point drawn under it (device pixels)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.qt
ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = r"""
import json, sys
import numpy as np
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests/ui"]
from ui.app import create_application
from ui.viewer import ViewerPanel
from test_viewer import synthetic_volume

app = create_application()
panel = ViewerPanel()
panel.resize(600, 600)
panel.show()
for _ in range(50):
    app.processEvents()
panel.set_volume(synthetic_volume())
panel.render_now()
view = panel.views["axial"]
ratio = view.devicePixelRatioF()
w, h = view.width(), view.height()
image = panel.view_pixels("axial")
content = image.max(axis=-1) > 30
half_y, half_x = content.shape[0] // 2, content.shape[1] // 2
quadrants = [float(q.mean()) for q in (content[:half_y, :half_x], content[:half_y, half_x:],
                                       content[half_y:, :half_x], content[half_y:, half_x:])]
clicks = []
for fx, fy in ((0.5, 0.5), (0.3, 0.7), (0.8, 0.25)):
    point = view.display_point(fx * w, fy * h)  # where a click at this logical pixel lands
    clicks.append([fx * w * ratio, fy * h * ratio, *view.pixel_of(point)])  # where that point is drawn
print(json.dumps({"ratio": ratio, "logical": [w, h], "window": list(view.GetRenderWindow().GetSize()),
                  "image": list(image.shape), "quadrants": quadrants, "clicks": clicks}))
panel.close()
"""


def test_viewer_renders_and_picks_at_device_pixel_ratio_2() -> None:
    env = {**os.environ, "QT_SCALE_FACTOR": "2"}
    result = subprocess.run([sys.executable, "-c", _SCRIPT, str(ROOT)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["ratio"] == 2.0
    w, h = out["logical"]
    assert out["window"] == [2 * w, 2 * h]  # VTK renders every device pixel, not a quarter of the view
    assert out["image"][:2] == [2 * h, 2 * w]
    assert min(out["quadrants"]) > 0.2, out["quadrants"]  # the body circle reaches into all four quarters
    for expected_x, expected_y, drawn_x, drawn_y in out["clicks"]:
        assert abs(drawn_x - expected_x) <= 2.5 and abs(drawn_y - expected_y) <= 2.5, out["clicks"]
