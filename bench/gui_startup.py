"""GUI responsiveness: (1) window visible after start; (2) the longest UI-thread stall (a 10 ms QTimer heartbeat on
the UI thread; the longest gap between ticks) during a PACS retrieve from a real Orthanc and during a segmentation
job run by the real engine worker process. Run under a display:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python bench/gui_startup.py [--runs 5] [--shape 256x256x80]
        [--open-shape 512x512x150] [--skip-startup]

The segmentation uses the AI model when one is installed (resources/models), else the engine's region growing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "pacs")]


def startup(runs: int) -> dict[str, Any]:
    """`radplan gui --startup-probe` against a fresh passphrase store: spawn -> window exposed."""
    data = Path(tempfile.mkdtemp(prefix="radplan-bench-gui-")) / "store"
    env = {**os.environ, "RADPLAN_DATA_DIR": str(data), "RADPLAN_PASSPHRASE": "bench-passphrase-1",
           "RADPLAN_PASSWORD": "bench-admin-pw-1", "PYTHONPATH": str(ROOT)}  # fmt: skip
    subprocess.run([sys.executable, "-m", "app", "init", "--admin", "admin", "--key-mode", "passphrase"], env=env,
                   check=True, capture_output=True)  # fmt: skip
    walls, inside, heavy = [], [], ""
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "app", "gui", "--startup-probe"], env=env,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("gui-visible"):
                walls.append(time.perf_counter() - start)
                inside.append(float(line.split()[1]))
                heavy = line.split("heavy=")[1].strip()
                break
        proc.wait(120)
    shutil.rmtree(data.parent, ignore_errors=True)
    return {"runs": runs, "visible_after_spawn_s_median": round(statistics.median(walls), 3),
            "visible_after_spawn_s_min": round(min(walls), 3),
            "gui_command_to_visible_s_median": round(statistics.median(inside), 3),
            "heavy_modules_loaded_when_visible": heavy}  # fmt: skip


_CONTROL = """
import sys, time
from PySide6.QtCore import QCoreApplication, QTimer
app = QCoreApplication([])
last = [time.perf_counter()]
def tick():
    now = time.perf_counter()
    gap = now - last[0]
    last[0] = now
    if gap > 0.03:
        print(f"{time.time():.3f} {gap:.4f}", flush=True)
t = QTimer(interval=10); t.timeout.connect(tick); t.start()
QTimer.singleShot(int(float(sys.argv[1]) * 1000), app.quit)
app.exec()
"""


class Control:
    """A bare process with the same 10 ms QTimer heartbeat and no work: its gaps are the machine's own scheduling
    stalls (CPU contention), the baseline for ours."""

    def __init__(self, seconds: float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _CONTROL, str(seconds)], stdout=subprocess.PIPE, text=True)

    def gaps(self) -> list[tuple[float, float]]:
        out, _ = self.proc.communicate(timeout=3600)
        return [(float(a), float(b)) for a, b in (line.split() for line in out.splitlines() if line.strip())]


def longest_between(gaps: list[tuple[float, float]], start: float, end: float) -> float:
    return max((g for t, g in gaps if start <= t <= end), default=0.0)


class Heartbeat:
    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.last = time.perf_counter()
        self.longest = 0.0
        self.timer = QTimer(interval=10)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

        self.where = ""
        self._samples: list[tuple[float, str]] = []
        import threading

        main = threading.get_ident()

        def watch() -> None:  # what the UI thread is doing while a tick is overdue (top frames of our code)
            import traceback

            while True:
                time.sleep(0.02)
                late = time.perf_counter() - self.last
                if late > 0.08:
                    frame = sys._current_frames().get(main)
                    stack = traceback.extract_stack(frame) if frame is not None else []
                    ours = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in stack
                            if "/work/main/" in f.filename or "site-packages/" in f.filename][-3:]  # fmt: skip
                    where = " <- ".join(reversed(ours)) or "Qt event loop (C++ / GIL wait)"
                    others = []  # a worker thread holding the GIL in one long C call stalls the UI thread too
                    for ident, other in sys._current_frames().items():
                        if ident in (main, threading.get_ident()):
                            continue
                        top = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in traceback.extract_stack(other)
                               if "/work/main/" in f.filename][-2:]  # fmt: skip
                        if top:
                            others.append(" <- ".join(reversed(top)))
                    if others:
                        where += " | other threads: " + "; ".join(others)
                    self._samples.append((late, where))

        threading.Thread(target=watch, daemon=True).start()

    def reset(self) -> None:
        self.last, self.longest, self.where = time.perf_counter(), 0.0, ""
        self._samples = []

    def cause(self) -> str:
        return max(self._samples)[1] if self._samples else ""

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.last)
        self.last = now


def stalls(shape: tuple[int, int, int], open_shape: tuple[int, int, int] = (96, 96, 40)) -> dict[str, Any]:
    from orthanc_server import OrthancServer, free_port

    from app.bootstrap import AppContext, Credentials
    from core.demo import generate_demo_study
    from core.pacs.nodes import PacsNode, add_node
    from core.security.roles import Permission
    from core.security.session import Session
    from core.settings import Settings
    from core.store.users import UserRepository
    from core.workstation.context import WorkstationContext
    from core.workstation.demo import ADMIN, RADIOLOGIST, build_demo_workspace
    from ui.app import create_application, keep_torch_out
    from ui.main_window import MainWindow
    from ui.smoke import wait_until

    keep_torch_out()
    qt = create_application()
    qt.setProperty("radplan_no_dialogs", True)
    root = Path(tempfile.mkdtemp(prefix="radplan-bench-stall-"))
    full = open_shape[0] >= 256
    ws = build_demo_workspace(root / "ws", shape=open_shape,  # the study opened and segmented
                              spacing_mm=(0.8, 0.8, 2.5) if full else (4.0, 4.0, 5.0))  # fmt: skip
    pacs_study = root / "pacs-study"
    manifest = generate_demo_study(pacs_study, seed=11, shape=shape, spacing_mm=(1.5, 1.5, 3.0))
    port = free_port()
    server = OrthancServer(root / "orthanc", modalities={"RADPLAN": port}).start()
    out: dict[str, Any] = {"retrieve_study": f"{shape[0]}x{shape[1]}x{shape[2]} CT + RTSTRUCT + RTDOSE"}
    try:
        server.upload(sorted(pacs_study.rglob("*.dcm")))
        admin = UserRepository(ws.store).authenticate(ADMIN, ws.passwords[ADMIN])
        add_node(ws.store, Session(admin).authorize(Permission.MANAGE_PACS),
                 PacsNode("orthanc", server.aet, "127.0.0.1", server.dicom_port, timeout_s=30))  # fmt: skip
        ws.store.close()
        settings = Settings(data_dir=ws.data_dir, storage_port=port)
        app = AppContext(settings=settings, credentials=Credentials(user=lambda: RADIOLOGIST,
                         password=lambda _n: "", passphrase=lambda _p: ws.passphrase))  # fmt: skip
        store = app.store()
        ctx = WorkstationContext(settings=settings, open_store=lambda: store, ensure_worker=app.ensure_worker,
                                 demo_folder=ws.demo_folder)  # fmt: skip
        window = MainWindow(ctx, store)
        window.resize(1440, 900)
        window.show()
        wait_until(window.isVisible, 10)
        window.login.user.setText(RADIOLOGIST)
        window.login.password.setText(ws.passwords[RADIOLOGIST])
        beat = Heartbeat()
        window.login.button.click()
        assert wait_until(lambda: window.pages.currentIndex() == 1, 60)
        wait_until(lambda: not window.runner.running(), 120)  # module warm-up done
        out |= {"sign_in_and_warm_up_longest_ui_stall_ms": round(beat.longest * 1000, 1),
                "sign_in_stall_ui_thread_was_in": beat.cause()}  # fmt: skip
        control = Control(900)
        windows: dict[str, tuple[float, float]] = {}
        # retrieve
        worklist = window.panels["worklist"]
        assert wait_until(lambda: worklist.node.count() == 1, 30)
        window.show_panel("worklist")
        wait_until(lambda: False, 0.5)
        beat.reset()
        t0 = time.perf_counter()
        w0 = time.time()
        task = worklist.retrieve(manifest.study_instance_uid)
        assert wait_until(lambda: task.status != "running", 600), task.message
        windows["retrieve"] = (w0, time.time())
        out |= {"retrieve_status": task.status, "retrieve_s": round(time.perf_counter() - t0, 2),
                "retrieve_longest_ui_stall_ms": round(beat.longest * 1000, 1), "retrieve_note": task.error,
                "retrieve_stall_ui_thread_was_in": beat.cause()}  # fmt: skip
        # segmentation (engine process); the viewer shows the study meanwhile
        window.open_study(ws.study_uid)
        assert wait_until(lambda: window.study is not None, 120)
        wait_until(lambda: False, 2.0)  # the viewer's first renders
        seg = window.panels["segmentation"]
        demo = json.loads((ws.demo_folder / "manifest.json").read_text())
        host = window.panels["viewer"]
        if host.viewer is not None:
            host.viewer.set_cursor(demo["tumour_centre_mm"])
        has_model = any((ROOT / "resources" / "models").glob("*/manifest.json"))
        seg.method.setCurrentIndex(0 if has_model else 1)
        seg.label.setCurrentText("gtv")
        window.show_panel("segmentation")
        wait_until(lambda: False, 1.0)
        beat.reset()
        t0 = time.perf_counter()
        w0 = time.time()
        seg.run_segmentation()
        assert wait_until(lambda: seg.task is not None and seg.task.status != "running", 900), seg.message.text()
        job_s = time.perf_counter() - t0
        # the masks' arrival (undo record, packing for the viewer) belongs to the segmentation's window
        wait_until(lambda: getattr(host, "masks_up_to_date", True), 60)
        wait_until(lambda: False, 0.3)
        windows["segmentation"] = (w0, time.time())
        during_job, during_cause = beat.longest, beat.cause()
        window.show_panel("viewer")  # the masks appear in the viewer (VTK renders on the UI thread)
        beat.reset()
        wait_until(lambda: False, 2.0)
        out |= {"segmented_study": "x".join(map(str, open_shape)) + " CT",
                "segmentation_method": "AI model" if has_model else "engine region growing",
                "segmentation_status": seg.task.status, "segmentation_s": round(job_s, 2),
                "segmentation_longest_ui_stall_ms": round(during_job * 1000, 1),
                "segmentation_message": seg.message.text()[:160], "segmentation_stall_ui_thread_was_in": during_cause,
                "viewer_first_render_with_masks_longest_stall_ms": round(beat.longest * 1000, 1),
                "viewer_stall_ui_thread_was_in": beat.cause()}  # fmt: skip
        window.close()
        window.runner.wait_idle(30000)
        app.close()
        control.proc.terminate()
        gaps = control.gaps()
        for name, (a, b) in windows.items():
            out[f"{name}_control_process_longest_gap_ms"] = round(longest_between(gaps, a, b) * 1000, 1)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)  # the workspaces and Orthanc's storage (1 GB at full size)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--shape", default="256x256x80", help="PACS study CT size COLSxROWSxSLICES")
    parser.add_argument(
        "--open-shape",
        default="96x96x40",
        help="size of the study opened and segmented (512x512x150: "
        "full size; its masks' arrival is the largest UI-thread work of a segmentation)",
    )
    args = parser.parse_args()
    cols, rows, slices = (int(v) for v in args.shape.split("x"))
    load = os.getloadavg()
    result = {"cpus": os.cpu_count(), "load_average_1m_at_start": round(load[0], 2)}
    result |= {} if args.skip_startup else startup(args.runs)
    open_shape = tuple(int(v) for v in args.open_shape.split("x"))
    result |= stalls((cols, rows, slices), (open_shape[0], open_shape[1], open_shape[2]))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
