"""Every background job: this window's tasks (store, PACS, file work) and the engine jobs in the store's queue,
with progress, cancel and the error details."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTextEdit, QVBoxLayout, QWidget

from ui.common import fill_table, make_table
from ui.workers import CancelToken

if TYPE_CHECKING:
    from ui.main_window import MainWindow

__all__ = ["JobsPanel"]


class JobsPanel(QWidget):
    def __init__(self, shell: MainWindow) -> None:
        super().__init__()
        self.shell = shell
        self.engine_jobs: list[Any] = []
        self.rows: list[tuple[str, int]] = []  # ("task"|"job", id) per table row
        self.table = make_table(["Where", "Id", "Kind", "Status", "Progress", "Message"], name="jobs_table")
        self.table.itemSelectionChanged.connect(self._details)
        self.cancel_btn = QPushButton("Cancel selected")
        self.cancel_btn.clicked.connect(self.cancel_selected)
        self.details = QTextEdit(readOnly=True, objectName="job_details")
        self.engine_note = QLabel("")
        row = QHBoxLayout()
        row.addWidget(self.cancel_btn)
        row.addWidget(self.engine_note, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 3)
        layout.addLayout(row)
        layout.addWidget(self.details, 1)
        self._refresh_timer = QTimer(self, singleShot=True, interval=250)  # coalesce bursts of task updates
        self._refresh_timer.timeout.connect(self.refresh)
        shell.runner.changed.connect(self._schedule_refresh)
        self._poll = QTimer(self, interval=2000)
        self._poll.timeout.connect(self.poll_engine)
        self._poll.start()
        self._polling = False
        self.poll_engine()

    def _schedule_refresh(self) -> None:
        if self.isVisible() and not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.refresh()

    def poll_engine(self) -> None:
        if self._polling or self.shell.store is None or (not self.isVisible() and self.engine_jobs):
            return
        try:
            from core.jobs import JobQueue
        except ImportError:
            self.engine_note.setText("engine job queue not available in this build yet")
            return
        store = self.shell.store
        self._polling = True

        def done(jobs: list[Any]) -> None:
            self._polling = False
            self.engine_jobs = jobs
            self._schedule_refresh()

        def failed(message: str) -> None:
            self._polling = False
            self.engine_note.setText(message)

        def work(_t: CancelToken, _r: Any) -> list[Any]:
            return JobQueue(store).list(limit=50)  # type: ignore[arg-type]

        # polling is not a user task: run it on the pool directly without listing it in the table
        self.shell.runner.submit("poll engine jobs", work, doing="reading the job queue", on_done=done,
                                 on_error=failed, quiet=True)  # fmt: skip

    def refresh(self) -> None:
        tasks = self.shell.runner.listed()
        rows: list[tuple[object, ...]] = []
        self.rows = []
        for t in sorted(tasks, key=lambda t: -t.id):
            rows.append(("window", t.id, t.name, t.status, f"{t.progress * 100:.0f}%", t.error or t.message))
            self.rows.append(("task", t.id))
        for j in self.engine_jobs:
            rows.append(("engine", j.id, j.kind, j.status, f"{j.progress * 100:.0f}%", j.error or j.message))
            self.rows.append(("job", j.id))
        fill_table(self.table, rows)

    def _selected(self) -> tuple[str, int] | None:
        sel = self.table.selectionModel().selectedRows()
        return self.rows[sel[0].row()] if sel and sel[0].row() < len(self.rows) else None

    def _details(self) -> None:
        chosen = self._selected()
        if chosen is None:
            return
        where, ident = chosen
        if where == "task":
            t = self.shell.runner.tasks[ident]
            self.details.setPlainText(f"{t.name}: {t.status}\n{t.error or t.message}")
        else:
            j = next((j for j in self.engine_jobs if j.id == ident), None)
            if j is not None:
                self.details.setPlainText(f"{j.summary()}\ncreated {j.created} by {j.created_by}\n"
                                          f"{('error: ' + j.error) if j.error else ''}")  # fmt: skip

    def cancel_selected(self) -> None:
        chosen = self._selected()
        if chosen is None:
            self.shell.show_error("Select a job to cancel.")
            return
        where, ident = chosen
        if where == "task":
            self.shell.runner.cancel(ident)
            return
        from core.jobs import JobQueue

        store, user = self.shell.store, self.shell.session.user.name  # type: ignore[union-attr]
        self.shell.run("cancel job", lambda _t, _r: JobQueue(store).cancel(ident, user),  # type: ignore[arg-type]
                       doing="cancelling the job", on_done=lambda _r: self.poll_engine())  # fmt: skip
