"""WorkerHost: starts the worker process, hands it the store key over a pipe, watches it, and when it dies marks
its job failed with the reason (exit code or signal) and starts a new one, so the app carries on.

The key goes to the child's stdin as one hex line and the pipe is closed at once: it never appears in argv, the
environment or a file. The worker's log goes to <data_dir>/logs/worker.log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from core.jobs import JobQueue
from engines.exit_codes import EXIT_LOCKED

__all__ = ["DEFAULT_NICE", "WorkerHost", "describe_exit"]

log = logging.getLogger("radplan.worker.host")
_ROOT = Path(__file__).resolve().parents[1]


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    if returncode == EXIT_LOCKED:
        return "another worker is already running"
    return f"exit code {returncode}"


#: The worker runs below the app's CPU priority: inference takes every core it gets, and the window (or anything
#: else the user does) must still be scheduled at once. With nothing else running it costs the worker nothing.
DEFAULT_NICE = 10


class WorkerHost:
    """One supervised worker process for a data dir (see the module docstring)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        key: bytes | None = None,
        poll_s: float = 0.5,
        python: str | None = None,
        max_restarts_per_minute: int = 5,
        nice: int = DEFAULT_NICE,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.nice = nice
        self._key = key
        self.poll_s = poll_s
        self.python = python or sys.executable
        self.max_restarts_per_minute = max_restarts_per_minute
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self._watch: threading.Thread | None = None
        self._stop_watch = threading.Event()
        self._restarts: list[float] = []
        self.last_exit: str = ""

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def is_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        with self._lock:
            if self.is_alive():
                return
            logs = self.data_dir / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            if getattr(sys, "frozen", False):  # a PyInstaller bundle: the radplan executable runs the worker
                args = [sys.executable, "engine-worker", "--data-dir", str(self.data_dir)]
            else:
                args = [self.python, "-m", "engines.worker", "--data-dir", str(self.data_dir)]
            args += ["--parent-pid", str(os.getpid()), "--poll-s", str(self.poll_s), "--nice", str(self.nice)]
            if self._key is not None:
                args.append("--key-stdin")
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
            with open(logs / "worker.log", "ab") as log_file:
                self._proc = subprocess.Popen(
                    args, stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=_ROOT
                )
            assert self._proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                if self._key is not None:
                    self._proc.stdin.write(self._key.hex().encode() + b"\n")
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
            log.info("worker started (pid %d)", self._proc.pid)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask the worker to stop (its running job goes back to the queue), then kill it after timeout_s."""
        self._stop_watch.set()
        if self._watch is not None and self._watch is not threading.current_thread():
            self._watch.join(timeout=5)
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                return
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.last_exit = describe_exit(proc.returncode)

    def restart(self) -> None:
        self.stop()
        self._stop_watch.clear()
        self.start()

    def check(self, queue: JobQueue) -> str | None:
        """If the worker has exited, fail the job it left running with the reason and return the reason."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is None:
                return None
            reason = describe_exit(proc.returncode)
            self.last_exit = reason
            failed = queue.recover_orphans(reasons={proc.pid: f"worker died ({reason})"})
            if failed:
                log.warning("worker pid %d %s; job(s) %s marked failed", proc.pid, reason, failed)
            return reason

    def supervise(self, queue: JobQueue, *, interval_s: float = 1.0) -> None:
        """A background thread that restarts a dead worker (after check()), at most max_restarts_per_minute."""
        if self._watch is not None and self._watch.is_alive():
            return
        self._stop_watch.clear()

        def watch() -> None:
            while not self._stop_watch.wait(interval_s):
                try:
                    self.tick(queue)
                except Exception:  # the supervisor must survive a store hiccup; it tries again next tick
                    log.exception("worker supervision failed")

        self._watch = threading.Thread(target=watch, name="radplan-worker-host", daemon=True)
        self._watch.start()

    def tick(self, queue: JobQueue) -> None:
        """One supervision step: check, then restart unless another worker holds the lock or it crashes in a loop."""
        reason = self.check(queue)
        if reason is None or self._stop_watch.is_set():
            return
        if self._proc is not None and self._proc.returncode == EXIT_LOCKED:
            self._stop_watch.set()  # another worker serves the queue
            return
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < 60.0]
        if len(self._restarts) >= self.max_restarts_per_minute:
            log.error("the worker keeps dying (%s); not restarted again", reason)
            self._stop_watch.set()
            return
        self._restarts.append(now)
        self.start()
