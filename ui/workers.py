"""Background work for the GUI: the UI thread only paints. Tasks run on a QThreadPool; their signals reach the UI
thread queued. Every task gets a CancelToken; `run_in_process` runs CPU-heavy functions in a separate process
(radiomics, NLP) so the GUI never waits for the GIL."""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from core.workstation.messages import friendly_message

__all__ = ["CancelToken", "CancelledTask", "TaskInfo", "TaskRunner", "run_in_process"]

log = logging.getLogger("radplan.gui")
Report = Callable[[float, str], None]


class CancelledTask(Exception):  # noqa: N818 - a control-flow signal, not an error shown to anyone
    """Raised inside a task when its token was cancelled."""


class CancelToken:
    def __init__(self) -> None:
        self.event = threading.Event()

    def cancel(self) -> None:
        self.event.set()

    @property
    def cancelled(self) -> bool:
        return self.event.is_set()

    def check(self) -> None:
        if self.event.is_set():
            raise CancelledTask


@dataclass
class TaskInfo:
    id: int
    name: str
    status: str = "running"  # running, done, failed, cancelled
    progress: float = 0.0
    message: str = ""
    error: str = ""
    started: float = field(default_factory=time.monotonic)
    token: CancelToken = field(default_factory=CancelToken)


class _Signals(QObject):
    progress = Signal(int, float, str)
    finished = Signal(int, object)
    failed = Signal(int, str)
    cancelled = Signal(int)


class _Task(QRunnable):
    def __init__(self, info: TaskInfo, fn: Callable[[CancelToken, Report], Any], doing: str, signals: _Signals):
        super().__init__()
        self.info, self.fn, self.doing, self.signals = info, fn, doing, signals
        self.setAutoDelete(True)

    def run(self) -> None:
        task_id = self.info.id

        last = [0.0]

        def report(fraction: float, message: str = "") -> None:
            self.info.token.check()
            now = time.monotonic()
            if now - last[0] >= 0.05 or fraction >= 1.0:  # at most 20 progress repaints a second per task
                last[0] = now
                self.signals.progress.emit(task_id, float(fraction), message)

        try:
            result = self.fn(self.info.token, report)
        except CancelledTask:
            self.signals.cancelled.emit(task_id)
        except BaseException as exc:  # every failure becomes a sentence; details go to the log file
            if self.info.token.cancelled:
                self.signals.cancelled.emit(task_id)
                return
            log.info("task %s failed: %s", self.info.name, type(exc).__name__, exc_info=exc)
            self.signals.failed.emit(task_id, friendly_message(exc, self.doing))
        else:
            self.signals.finished.emit(task_id, result)


class TaskRunner(QObject):
    """Starts tasks and keeps their state for the jobs panel. Callbacks run on the UI thread."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None, max_threads: int = 4) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.tasks: dict[int, TaskInfo] = {}
        self._ids = itertools.count(1)
        self._callbacks: dict[int, tuple[Callable[..., None] | None, ...]] = {}
        self._quiet: set[int] = set()
        self._closed = False
        self.signals = _Signals()
        self.signals.progress.connect(self._on_progress)
        self.signals.finished.connect(self._on_finished)
        self.signals.failed.connect(self._on_failed)
        self.signals.cancelled.connect(self._on_cancelled)

    def submit(
        self,
        name: str,
        fn: Callable[[CancelToken, Report], Any],
        *,
        doing: str,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        on_cancel: Callable[[], None] | None = None,
        quiet: bool = False,
    ) -> TaskInfo:
        """quiet: a periodic housekeeping task, forgotten once finished (not listed in the jobs panel)."""
        info = TaskInfo(next(self._ids), name)
        if self._closed:  # the window is closing: nothing new starts (the store may be closed already)
            info.status, info.message = "cancelled", "window closed"
            return info
        if quiet:
            self._quiet.add(info.id)
        self.tasks[info.id] = info
        self._callbacks[info.id] = (on_done, on_error, on_progress, on_cancel)
        self.pool.start(_Task(info, fn, doing, self.signals))
        self.changed.emit()
        return info

    def cancel(self, task_id: int) -> None:
        info = self.tasks.get(task_id)
        if info is not None and info.status == "running":
            info.token.cancel()
            info.message = "cancelling..."
            self.changed.emit()

    def listed(self) -> list[TaskInfo]:
        """The tasks the jobs panel shows (housekeeping tasks left out)."""
        return [t for t in self.tasks.values() if t.id not in self._quiet]

    def running(self) -> list[TaskInfo]:
        return [t for t in self.tasks.values() if t.status == "running"]

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel every running task, start no new one, wait for the pool."""
        self._closed = True
        for task in self.running():
            task.token.cancel()
        return self.wait_idle(timeout_ms)

    def wait_idle(self, timeout_ms: int = 30000) -> bool:
        return bool(self.pool.waitForDone(timeout_ms))

    def _on_progress(self, task_id: int, fraction: float, message: str) -> None:
        info = self.tasks[task_id]
        info.progress, info.message = fraction, message
        cb = self._callbacks.get(task_id, (None,) * 4)[2]
        if cb:
            cb(fraction, message)
        self.changed.emit()

    def _finish(self, task_id: int, status: str, index: int, *args: Any) -> None:
        info = self.tasks[task_id]
        info.status = status
        if status == "done":
            info.progress = 1.0
        cb = self._callbacks.pop(task_id, (None,) * 4)[index]
        if task_id in self._quiet:
            self._quiet.discard(task_id)
            del self.tasks[task_id]
        self.changed.emit()
        if cb:
            cb(*args)

    def _on_finished(self, task_id: int, result: object) -> None:
        self._finish(task_id, "done", 0, result)

    def _on_failed(self, task_id: int, message: str) -> None:
        self.tasks[task_id].error = message
        self.tasks[task_id].message = "failed"
        self._finish(task_id, "failed", 1, message)

    def _on_cancelled(self, task_id: int) -> None:
        self.tasks[task_id].message = "cancelled"
        self._finish(task_id, "cancelled", 3)


def _child(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        conn.send(("ok", fn(*args, **kwargs)))
    except BaseException as exc:  # the parent turns it into a sentence
        conn.send(("error", (type(exc).__name__, str(exc), isinstance(exc, (ValueError, KeyError)))))
    finally:
        conn.close()


class ProcessTaskError(Exception):
    """A function run in a separate process raised; message is the child's exception text."""


def run_in_process(
    fn: Callable[..., Any], *args: Any, token: CancelToken | None = None, timeout_s: float = 1800, **kwargs: Any
) -> Any:
    """fn(*args, **kwargs) in a fresh process (spawn): the GIL stays free for the GUI; cancel terminates it."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args, kwargs), daemon=True, name="radplan-analysis")
    proc.start()
    child.close()
    deadline = time.monotonic() + timeout_s
    try:
        while not parent.poll(0.1):
            if token is not None and token.cancelled:
                raise CancelledTask
            if not proc.is_alive() and not parent.poll(0.1):
                raise ProcessTaskError(f"the analysis process ended unexpectedly (exit code {proc.exitcode})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the analysis did not finish within {timeout_s:.0f} s")
        status, value = parent.recv()
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(5)
        parent.close()
    if status == "error":
        name, text, is_value = value
        raise (ValueError(text) if is_value else ProcessTaskError(f"{text} ({name})"))
    return value
