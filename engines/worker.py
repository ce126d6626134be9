"""The background worker process: `python -m engines.worker --data-dir D [--key-stdin]`.

It takes the single-worker lock (data_dir/worker.lock: one GPU job at a time on this machine), opens the store with
the key its host writes on stdin (passphrase stores; never argv or the environment) or from the keyring, marks jobs
left 'running' by a dead worker as failed, then claims queued jobs one at a time. A job that raises fails with the
reason; a cancelled one ends 'cancelled'. On SIGTERM/SIGINT, or when its parent process is gone, the worker stops
the running job at the next check and puts it back in the queue.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO

from core.errors import RadPlanError
from core.jobs import JobCancelledError, JobQueue
from core.segmentation.models import CancelledError
from core.store.store import Store
from engines.exit_codes import EXIT_LOCKED
from engines.jobs import HANDLERS, JobContext

__all__ = ["EXIT_LOCKED", "Worker", "acquire_lock", "main"]

log = logging.getLogger("radplan.worker")

EXIT_STORE = 1


def acquire_lock(data_dir: Path) -> IO[str] | None:
    """The single-worker lock (held until the process exits), or None when another worker holds it."""
    handle = open(Path(data_dir) / "worker.lock", "a+")  # noqa: SIM115 (held for the life of the process)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


class Worker:
    def __init__(
        self,
        store: Store,
        data_dir: Path,
        *,
        kinds: Sequence[str] = tuple(HANDLERS),
        poll_s: float = 0.5,
        parent_pid: int | None = None,
        idle_exit_s: float | None = None,
    ) -> None:
        self.store, self.data_dir, self.kinds = store, Path(data_dir), tuple(kinds)
        self.queue = JobQueue(store)
        self.poll_s, self.parent_pid, self.idle_exit_s = poll_s, parent_pid, idle_exit_s
        self._stop_reason = ""

    def stop(self, reason: str) -> None:
        self._stop_reason = reason

    def stopping(self) -> bool:
        if not self._stop_reason and self.parent_pid is not None and os.getppid() != self.parent_pid:
            self._stop_reason = "the application that started the worker has exited"
        return bool(self._stop_reason)

    def run(self) -> int:
        recovered = self.queue.recover_orphans(all_running=True)
        if recovered:
            log.warning("jobs left running by a dead worker marked failed: %s", recovered)
        log.info("worker %d ready (kinds: %s)", os.getpid(), ", ".join(self.kinds))
        idle_since = time.monotonic()
        while not self.stopping():
            job = self.queue.claim_next(os.getpid(), self.kinds)
            if job is None:
                if self.idle_exit_s is not None and time.monotonic() - idle_since >= self.idle_exit_s:
                    log.info("no job for %.0f s: worker exits", self.idle_exit_s)
                    break
                time.sleep(self.poll_s)
                continue
            self.run_job(job.id)
            idle_since = time.monotonic()
        log.info("worker %d stops: %s", os.getpid(), self._stop_reason or "idle")
        return 0

    def run_job(self, job_id: int) -> None:
        job = self.queue.get(job_id)
        ctx = JobContext(self.queue, job, stopping=self.stopping)
        log.info("job %d (%s) started", job.id, job.kind)
        try:
            result = HANDLERS[job.kind](self.store, ctx, self.data_dir)
        except (CancelledError, JobCancelledError):
            if self.stopping() and not self.queue.cancel_requested(job.id):
                self.queue.requeue(job.id, f"the worker stopped ({self._stop_reason})")
                log.info("job %d queued again: worker stopping", job.id)
            else:
                self.queue.mark_cancelled(job.id)
                log.info("job %d cancelled", job.id)
        except RadPlanError as exc:
            self.queue.fail(job.id, str(exc))
            log.warning("job %d failed: %s", job.id, exc)
        except Exception as exc:  # a bug or an unexpected library error: the job fails, the worker carries on
            self.queue.fail(job.id, f"internal error in the worker: {type(exc).__name__}: {exc}")
            log.error("job %d failed with an internal error:\n%s", job.id, traceback.format_exc())
        else:
            self.queue.succeed(job.id, result)
            log.info("job %d done", job.id)


def _read_key(stream: IO[str]) -> bytes:
    line = stream.readline().strip()
    try:
        return bytes.fromhex(line)
    except ValueError as exc:
        raise SystemExit("engines.worker: the key on stdin is not hex") from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--key-stdin", action="store_true", help="read the store key (hex, one line) from stdin")
    parser.add_argument("--parent-pid", type=int, default=None, help="stop when this parent process is gone")
    parser.add_argument("--poll-s", type=float, default=0.5)
    parser.add_argument("--idle-exit-s", type=float, default=None, help="exit after this long without a job")
    parser.add_argument("--kinds", default=",".join(HANDLERS), help="job kinds to run (comma separated)")
    parser.add_argument("--nice", type=int, default=0, help="lower the process's CPU priority by this much (POSIX)")
    args = parser.parse_args(argv)
    if args.nice > 0 and hasattr(os, "nice"):
        os.nice(args.nice)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker[%(process)d] %(levelname)s %(message)s")
    key = _read_key(sys.stdin) if args.key_stdin else None
    lock = acquire_lock(args.data_dir)
    if lock is None:
        log.error("another worker is already running for %s", args.data_dir)
        return EXIT_LOCKED
    try:
        store = Store.open_with_key(args.data_dir, key) if key is not None else Store.open(args.data_dir)
    except RadPlanError as exc:
        log.error("the worker cannot open the store: %s", exc)
        return EXIT_STORE
    worker = Worker(
        store,
        args.data_dir,
        kinds=[k for k in args.kinds.split(",") if k in HANDLERS],
        poll_s=args.poll_s,
        parent_pid=args.parent_pid,
        idle_exit_s=args.idle_exit_s,
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        worker.stop(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return worker.run()
    finally:
        store.close()
        with contextlib.suppress(OSError):
            lock.close()


if __name__ == "__main__":
    sys.exit(main())
