"""Worklist: local studies (search, open, import from folder/media) and PACS query/retrieve with progress and
cancel. Every store, file and network call runs in a worker thread."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.security.roles import Permission
from core.store.studies import StudySummary, list_studies
from core.workstation.worklist import PacsQueryForm, filter_studies
from ui.common import fill_table, make_table, notice
from ui.workers import CancelledTask, CancelToken, TaskInfo

if TYPE_CHECKING:
    from ui.main_window import MainWindow

__all__ = ["WorklistPanel"]


class WorklistPanel(QWidget):
    def __init__(self, shell: MainWindow) -> None:
        super().__init__()
        self.shell = shell
        self.studies: list[StudySummary] = []
        self.shown: list[StudySummary] = []
        self.pacs_results: list[Any] = []
        self.retrieve_task: TaskInfo | None = None
        tabs = QTabWidget()
        tabs.addTab(self._local_tab(), "Local studies")
        tabs.addTab(self._pacs_tab(), "PACS")
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        self.refresh_local()

    # ---------------------------------------------------------------- local
    def _local_tab(self) -> QWidget:
        w = QWidget()
        self.search = QLineEdit(placeholderText="Search patient, ID, date, description, accession...")
        self.search.textChanged.connect(self._apply_filter)
        self.local_table = make_table(["Date", "Patient ID", "Name", "Modalities", "Series", "Instances", "Study UID"],
                                      name="local_studies")  # fmt: skip
        # activated: Enter/Return on the selected row, and a double-click (one signal, so a double-click opens once)
        self.local_table.activated.connect(lambda _i: self.open_selected())
        self.search.returnPressed.connect(self.open_selected)  # Enter in the search box: the selected or only match
        open_btn = QPushButton("Open study (Enter)")
        open_btn.clicked.connect(self.open_selected)
        refresh = QPushButton("Refresh (F5)")
        refresh.clicked.connect(self.refresh_local)
        self.import_btn = QPushButton("Import folder or media...")
        self.import_btn.clicked.connect(self._choose_import)
        self.import_progress = QProgressBar()
        self.import_progress.setVisible(False)
        row = QHBoxLayout()
        for b in (open_btn, refresh, self.import_btn):
            row.addWidget(b)
        row.addStretch(1)
        layout = QVBoxLayout(w)
        layout.addWidget(self.search)
        layout.addWidget(self.local_table)
        layout.addLayout(row)
        layout.addWidget(self.import_progress)
        return w

    def refresh_local(self) -> None:
        store = self.shell.store
        access = self.shell.access(Permission.READ_PATIENT_DATA)
        self.shell.run("list studies", lambda _t, _r: list_studies(store, access), doing="listing the local studies",
                       on_done=self._studies_loaded)  # type: ignore[arg-type]  # fmt: skip

    def _studies_loaded(self, studies: list[StudySummary]) -> None:
        self.studies = studies
        self._apply_filter()

    def _apply_filter(self) -> None:
        self.shown = filter_studies(self.studies, self.search.text())
        fill_table(self.local_table, [(s.study_date, s.patient_id, s.patient_name, ",".join(s.modalities), s.series,
                                       s.instances, s.study_uid) for s in self.shown])  # fmt: skip

    def open_selected(self) -> None:
        rows = self.local_table.selectionModel().selectedRows()
        if not rows and len(self.shown) == 1:
            self.shell.open_study(self.shown[0].study_uid)
            return
        if not rows:
            self.shell.show_error("Select a study in the list first.")
            return
        uid = self.local_table.item(rows[0].row(), 6).text()
        self.shell.open_study(uid)

    def _choose_import(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import DICOM from folder or media")
        if folder:
            self.import_paths([folder])

    def import_paths(self, paths: list[str]) -> None:
        from pathlib import Path

        store = self.shell.store
        access = self.shell.access(Permission.IMPORT_STUDIES)

        def work(token: CancelToken, report: Any) -> Any:
            from core.dicom.importer import import_paths

            def progress(done: int, total: int) -> None:
                token.check()
                report(done / max(total, 1), f"{done}/{total} files")

            return import_paths(store, access, [Path(p) for p in paths], progress=progress)  # type: ignore[arg-type]

        self.import_progress.setVisible(True)
        self.import_progress.setValue(0)
        self.shell.run("import", work, doing="importing", on_progress=lambda f, _m: self.import_progress.setValue(
            int(f * 100)), on_done=self._imported, on_error=self._import_failed)  # fmt: skip

    def _imported(self, report: Any) -> None:
        self.import_progress.setVisible(False)
        self.shell.statusBar().showMessage(
            f"import: {report.stored} stored, {report.already_present} already present, {len(report.damaged)} "
            f"damaged", 10000)  # fmt: skip
        self.refresh_local()

    def _import_failed(self, message: str) -> None:
        self.import_progress.setVisible(False)
        self.shell.show_error(message)

    # ---------------------------------------------------------------- PACS
    def _pacs_tab(self) -> QWidget:
        w = QWidget()
        self.node = QComboBox(objectName="pacs_node")
        self.f_id, self.f_name, self.f_mod = QLineEdit(), QLineEdit(), QLineEdit()
        self.f_from = QLineEdit(placeholderText="YYYYMMDD")
        self.f_to = QLineEdit(placeholderText="YYYYMMDD")
        self.f_acc = QLineEdit()
        form = QFormLayout()
        for label, field in (("Node", self.node), ("Patient ID", self.f_id), ("Patient name", self.f_name),
                             ("Modality", self.f_mod), ("Date from", self.f_from), ("Date to", self.f_to),
                             ("Accession", self.f_acc)):  # fmt: skip
            form.addRow(label, field)
        self.search_btn = QPushButton("Search PACS")
        self.search_btn.clicked.connect(self.search_pacs)
        self.pacs_table = make_table(["Date", "Patient ID", "Name", "Modalities", "Series", "Instances", "Study UID"],
                                     name="pacs_results")  # fmt: skip
        self.retrieve_btn = QPushButton("Retrieve")
        self.retrieve_btn.clicked.connect(self.retrieve_selected)
        self.cancel_btn = QPushButton("Cancel retrieve")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel_retrieve)
        self.retrieve_progress = QProgressBar(objectName="retrieve_progress")
        self.pacs_message = notice("")
        row = QHBoxLayout()
        for b in (self.search_btn, self.retrieve_btn, self.cancel_btn):
            row.addWidget(b)
        row.addStretch(1)
        layout = QVBoxLayout(w)
        layout.addLayout(form)
        layout.addLayout(row)
        layout.addWidget(self.pacs_table)
        layout.addWidget(self.retrieve_progress)
        layout.addWidget(self.pacs_message)
        self._load_nodes()
        return w

    def _load_nodes(self) -> None:
        from core.pacs.nodes import list_nodes

        store = self.shell.store
        self.shell.run("list PACS nodes", lambda _t, _r: list_nodes(store), doing="reading the PACS nodes",
                       on_done=self._nodes_loaded)  # type: ignore[arg-type]  # fmt: skip

    def _nodes_loaded(self, nodes: list[Any]) -> None:
        self.nodes = {n.name: n for n in nodes}
        self.node.clear()
        self.node.addItems(sorted(self.nodes))
        if not nodes:
            self.pacs_message.setText("No PACS node is configured: an administrator adds one under Settings.")

    def form(self) -> PacsQueryForm:
        return PacsQueryForm(self.f_id.text(), self.f_name.text(), self.f_mod.text(), self.f_from.text(),
                             self.f_to.text(), self.f_acc.text())  # fmt: skip

    def search_pacs(self) -> None:
        node = self.nodes.get(self.node.currentText()) if hasattr(self, "nodes") else None
        if node is None:
            self.shell.show_error("Choose a PACS node first (administrators add nodes under Settings).")
            return
        form = self.form()
        try:
            form.date()
        except ValueError as exc:
            self.pacs_message.setText(f"{exc}. Correct the filter and search again.")
            return
        store, access, settings = (
            self.shell.store,
            self.shell.access(Permission.READ_PATIENT_DATA),
            self.shell.ctx.settings,
        )

        def work(_t: CancelToken, _r: Any) -> Any:
            from core.pacs.association import LocalAE
            from core.pacs.query import find

            local = LocalAE(ae_title=settings.ae_title, storage_port=settings.storage_port)
            return find(store, access, local, node, form.query())  # type: ignore[arg-type]

        self.search_btn.setEnabled(False)
        self.pacs_message.setText("searching...")
        self.shell.run("PACS search", work,
                       doing="searching the PACS", on_done=self._found, on_error=self._search_failed)  # fmt: skip

    def _search_failed(self, message: str) -> None:
        self.search_btn.setEnabled(True)
        self.pacs_message.setText(message)

    def _found(self, found: Any) -> None:
        self.search_btn.setEnabled(True)
        self.pacs_results = list(found.results)
        fill_table(
            self.pacs_table,
            [
                (
                    r.study_date,
                    r.patient_id,
                    r.patient_name,
                    ",".join(r.modalities),
                    r.n_series or 0,
                    r.n_instances or 0,
                    r.study_uid,
                )
                for r in self.pacs_results
            ],
        )
        more = " (more exist: narrow the filters)" if found.truncated else ""
        self.pacs_message.setText(f"{len(self.pacs_results)} stud(y/ies) found{more}")

    def retrieve_selected(self) -> None:
        rows = self.pacs_table.selectionModel().selectedRows()
        if not rows and len(self.pacs_results) == 1:
            uid = self.pacs_results[0].study_uid
        elif rows:
            uid = self.pacs_table.item(rows[0].row(), 6).text()
        else:
            self.shell.show_error("Select a study in the PACS results first.")
            return
        self.retrieve(uid)

    def retrieve(self, study_uid: str) -> TaskInfo:
        node = self.nodes[self.node.currentText()]
        store, access, settings = (
            self.shell.store,
            self.shell.access(Permission.IMPORT_STUDIES),
            self.shell.ctx.settings,
        )

        def work(token: CancelToken, report: Any) -> Any:
            from core.pacs.association import LocalAE
            from core.pacs.retrieve import RetrieveCancelledError, retrieve_study

            local = LocalAE(ae_title=settings.ae_title, storage_port=settings.storage_port)

            def progress(p: Any) -> None:
                # Runs in the C-STORE handler (network thread): once cancelled, report() raises, which would answer
                # the PACS "failed" for an instance that is kept. retrieve_study sends C-CANCEL at its next response.
                with contextlib.suppress(CancelledTask):
                    report(p.done / max(p.total, 1), f"{p.done}/{p.total} instances, {p.mb_per_s:.1f} MB/s")

            try:
                return retrieve_study(store, access, local, node, study_uid, progress=progress,  # type: ignore[arg-type]
                                      cancel=token.event)  # fmt: skip
            except RetrieveCancelledError:
                token.cancel()
                raise

        self.retrieve_progress.setValue(0)
        self.retrieve_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.retrieve_task = self.shell.run(
            f"retrieve {study_uid[-12:]}", work, doing="retrieving the study",
            on_progress=self._retrieve_progress, on_done=self._retrieved, on_error=self._retrieve_failed,
            on_cancel=self._retrieve_cancelled,
        )  # fmt: skip
        return self.retrieve_task

    def _retrieve_progress(self, fraction: float, message: str) -> None:
        self.retrieve_progress.setValue(int(fraction * 100))
        self.pacs_message.setText(message)

    def _retrieve_end(self, text: str) -> None:
        self.retrieve_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
        self.pacs_message.setText(text)

    def _retrieved(self, report: Any) -> None:
        self.retrieve_progress.setValue(100)
        self._retrieve_end(f"retrieved: {report.stored} stored, {report.already_present} already present, "
                           f"{'complete' if report.complete else 'INCOMPLETE: retrieve again to resume'}")  # fmt: skip
        self.refresh_local()

    def _retrieve_failed(self, message: str) -> None:
        self._retrieve_end(message + " What arrived is kept; retrieve again to resume.")

    def _retrieve_cancelled(self) -> None:
        self._retrieve_end("Retrieve cancelled. What arrived is kept; retrieve again to resume.")
        self.refresh_local()

    def cancel_retrieve(self) -> None:
        if self.retrieve_task is not None:
            self.shell.runner.cancel(self.retrieve_task.id)
