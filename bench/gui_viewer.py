"""Viewer responsiveness: time to first image after opening a stored study, and slice-scrolling frame rate.

Run under Xvfb (software OpenGL, Mesa llvmpipe) the way the tests run:

  xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python bench/gui_viewer.py [--shape 512x512x150] [--frames 150]

1. Generates the demo study (seed 0), imports it into a fresh encrypted store (passphrase mode).
2. Opens it as the workstation does: ``study_volumes`` (audited read of the instances from SQLCipher, DICOM
   decode, volume checks) -> ``ViewerPanel.set_volume`` -> the three slice views rendered. Reported: load, display
   and total ("time to first image"; goal < 1 s), then the 3-D view's first render (done after the first image).
3. Scrolls the axial view through ``--frames`` slices with each 512x512-pixel view re-rendered on every step
   (the scrolled view and the two linked views whose crosshair moved): frames per second (goal >= 30), with the
   CT alone and then with segmentation, RTSTRUCT contours and the dose wash/isodose lines on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pydicom
from PySide6.QtWidgets import QApplication

from core.demo import generate_demo_study
from core.demo.generator import DemoManifest
from core.dicom.importer import import_paths
from core.dicom.volumes import study_volumes
from core.plan.dose_io import read_dose_file
from core.plan.structures import read_rtstruct_structures
from core.security.roles import Permission, Role
from core.security.session import Access, User
from core.store.store import Store

USER = User(1, "bench", Role.RADIOLOGIST)
VIEW_PX = 512


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def wait(app: QApplication, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.005)


def scroll_fps(app: QApplication, panel, frames: int, view: str = "axial", everything: bool = False) -> float:  # type: ignore[no-untyped-def]
    """Scroll ``frames`` slices (bouncing at the ends), rendering after each step: the scrolled view always, the
    linked views at most every LINKED_REFRESH_S (``everything``: all three views every step)."""
    n = panel.state.geometry.slice_count(view)
    direction = 1
    panel.render_now()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(frames):
        index = panel.state.slice_index(view)
        if not 0 <= index + direction < n:
            direction = -direction
        panel.scroll(view, direction)
        panel.render_now(everything=everything)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    app.processEvents()
    print(
        f"  {view} x{frames}{' (all views every step)' if everything else ''}: {frames / elapsed:.1f} fps, "
        f"{1000 * elapsed / frames:.1f} ms wall and {1000 * cpu / frames:.1f} ms CPU (this process, all threads) "
        "per step"
    )
    return frames / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="512x512x150", help="columns x rows x slices")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=3, help="openings of the study (median reported)")
    parser.add_argument("--demo", type=Path, help="demo study folder to use (generated there when missing)")
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split("x"))
    app = QApplication.instance() or QApplication(sys.argv)
    from ui.viewer import ViewerPanel
    from ui.viewer.panel import LINKED_REFRESH_S
    from ui.viewer.vtk_util import is_software_renderer

    with tempfile.TemporaryDirectory(prefix="radplan-bench-viewer-") as tmp:
        work = Path(tmp)
        demo = args.demo or work / "demo"
        t = time.perf_counter()
        if (demo / "manifest.json").exists():
            manifest = DemoManifest.from_json((demo / "manifest.json").read_text(encoding="utf-8"))
        else:
            manifest = generate_demo_study(demo, seed=0, shape=shape)  # type: ignore[arg-type]
            print(f"demo study {args.shape}: generated in {time.perf_counter() - t:.1f} s")
        store = Store.create(work / "store", key_mode="passphrase", passphrase=lambda _p: "bench-passphrase")
        t = time.perf_counter()
        import_paths(store, Access(USER, Permission.IMPORT_STUDIES), [demo])
        print(f"imported into the encrypted store in {time.perf_counter() - t:.1f} s")
        read = Access(USER, Permission.READ_PATIENT_DATA)

        t = time.perf_counter()
        panel = ViewerPanel()
        panel.resize(2 * VIEW_PX + 2, 2 * VIEW_PX + 2)
        panel.show()
        wait(app, 0.3)
        print(f"panel created and shown in {time.perf_counter() - t:.2f} s (including 0.3 s of event processing)")
        sizes = {n: tuple(v.GetRenderWindow().GetSize()) for n, v in panel.views.items()}
        software = is_software_renderer(panel.views["axial"].GetRenderWindow())
        report = str(panel.views["axial"].GetRenderWindow().ReportCapabilities())
        renderer = next((ln.split(":", 1)[1].strip() for ln in report.splitlines() if "renderer string" in ln), "?")

        loads, displays, totals, three_d, cpu_load, cpu_display = [], [], [], [], [], []
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            volumes = study_volumes(store, read, manifest.study_instance_uid)
            volume = next(v for v in volumes.volumes if v.modality == "CT")
            t1, c1 = time.perf_counter(), time.process_time()
            panel.set_volume(volume)  # renders the three slice views before returning
            t2, c2 = time.perf_counter(), time.process_time()
            loads.append(t1 - t0)
            displays.append(t2 - t1)
            totals.append(t2 - t0)
            cpu_load.append(c1 - c0)
            cpu_display.append(c2 - c1)
            assert panel.view_pixels("axial").std() > 10, "blank first image"
            t3 = time.perf_counter()
            while panel.volume_view is not None and panel.volume_view.volume is None:
                app.processEvents()
            panel.render_now()
            three_d.append(time.perf_counter() - t3)
            wait(app, 0.1)
        print(f"OpenGL renderer: {renderer} (software: {software}); view sizes {sizes}")
        print(
            f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
            f"load average {os.getloadavg()[0]:.1f} at start of the runs"
        )
        print(f"volume {volume.array.shape} float32 {volume.array.nbytes / 1e6:.0f} MB")
        print(
            f"time to first image (median of {args.repeat}): {statistics.median(totals):.3f} s "
            f"= load from store {statistics.median(loads):.3f} s + display {statistics.median(displays):.3f} s "
            f"(all runs: {', '.join(f'{v:.3f}' for v in totals)}); CPU: load {statistics.median(cpu_load):.3f} s, "
            f"display {statistics.median(cpu_display):.3f} s"
        )
        mapper = panel.volume_view.mapper_kind if panel.volume_view is not None else "none"
        print(f"3-D view ready {statistics.median(three_d):.3f} s after the first image ({mapper})")

        fps_plain = scroll_fps(app, panel, args.frames)
        fps_plain_all = scroll_fps(app, panel, args.frames, everything=True)
        fps_coronal = scroll_fps(app, panel, args.frames, "coronal")
        truth = {p.name.split(".")[0]: p for p in sorted((demo / "truth").glob("*.nii.gz"))}
        import SimpleITK as sitk  # noqa: N813

        masks = {n: sitk.GetArrayFromImage(sitk.ReadImage(str(p))).astype(np.uint8) for n, p in truth.items()}
        t = time.perf_counter()
        panel.set_segmentation(masks)
        panel.set_structures(read_rtstruct_structures(pydicom.dcmread(demo / "rtstruct.dcm")))
        panel.set_dose(read_dose_file(demo / "rtdose.dcm"))
        panel.render_now()
        print(f"overlays on ({len(masks)} masks, RTSTRUCT, dose) in {time.perf_counter() - t:.3f} s")
        panel.set_cursor(manifest.tumour_centre_mm)
        fps_overlays = scroll_fps(app, panel, args.frames)
        fps_overlays_all = scroll_fps(app, panel, args.frames, everything=True)
        print(f"views {VIEW_PX}x{VIEW_PX} pixels; fps = scroll steps per second, the scrolled view rendered every step")
        print(
            f"axial scrolling, CT only: {fps_plain:.1f} fps (linked views every {LINKED_REFRESH_S * 1000:.0f} ms); "
            f"{fps_plain_all:.1f} fps rendering all three views every step; coronal scrolling {fps_coronal:.1f} fps"
        )
        print(
            f"axial scrolling with segmentation + contours + dose: {fps_overlays:.1f} fps; "
            f"{fps_overlays_all:.1f} fps rendering all three views every step"
        )
        panel.close()
        panel.deleteLater()  # destroy the VTK widgets while Qt and VTK are both alive (not in interpreter teardown)
        app.processEvents()
        del panel
        store.close()


if __name__ == "__main__":
    main()
