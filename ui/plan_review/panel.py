"""Plan review: prescription editor with live BED/EQD2, DVH plot with a cursor read-out, constraint table in
pass/fail colours, review/approve/reject with the signature dialog, PDF preview (QtPdf) and send to PACS."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.plan.repository import PlanRecord
from core.security.roles import Permission, Role
from core.workstation.plan_review import STATUS_COLOURS, live_biology
from core.workstation.study import OpenStudy
from ui.common import fill_table, make_table, notice
from ui.plan_review.dvh import DvhView
from ui.plan_review.signature import SignatureDialog
from ui.workers import CancelToken, TaskInfo

if TYPE_CHECKING:
    from ui.main_window import MainWindow

__all__ = ["PlanReviewPanel"]


class PlanReviewPanel(QWidget):
    def __init__(self, shell: MainWindow) -> None:
        super().__init__()
        self.shell = shell
        self.record: PlanRecord | None = None
        self.plans: list[tuple[int, str, int, str]] = []
        self.pdf_path: Path | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="radplan-plan-")
        self.plan_list = make_table(["Plan", "Version", "Status"], name="plan_list")
        self.plan_list.itemSelectionChanged.connect(self._selected)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.addWidget(QLabel("Plans of the open study"))
        ll.addWidget(self.plan_list, 1)
        ll.addLayout(self._prescription_form())
        right = QTabWidget()
        self.dvh = DvhView()
        right.addTab(self.dvh, "DVH")
        self.constraints = make_table(["Structure", "Metric", "Value", "", "Limit", "Unit", "Status", "Source"],
                                      name="constraint_table")  # fmt: skip
        right.addTab(self.constraints, "Constraints")
        right.addTab(self._pdf_tab(), "PDF preview")
        self.right = right
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 3)
        self.header = QLabel("No plan selected.", objectName="plan_header")
        buttons = QHBoxLayout()
        self.review_btn = QPushButton("Physics review...")
        self.approve_btn = QPushButton("Approve...", objectName="approve_plan")
        self.reject_btn = QPushButton("Reject...")
        self.pdf_btn = QPushButton("Preview PDF", objectName="preview_pdf")
        self.node = QComboBox()
        self.send_btn = QPushButton("Send to PACS")
        self.review_btn.clicked.connect(lambda: self.sign("review"))
        self.approve_btn.clicked.connect(lambda: self.sign("approve"))
        self.reject_btn.clicked.connect(lambda: self.sign("reject"))
        self.pdf_btn.clicked.connect(self.preview_pdf)
        self.send_btn.clicked.connect(self.send_to_pacs)
        for w in (self.review_btn, self.approve_btn, self.reject_btn, self.pdf_btn, QLabel("Node"), self.node,
                  self.send_btn):  # fmt: skip
            buttons.addWidget(w)
        buttons.addStretch(1)
        self.message = notice("Decision support: every plan requires clinician confirmation.")
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        layout.addWidget(split, 1)
        self.signature_dialog: SignatureDialog | None = None
        shell.study_opened.connect(self._study_opened)
        self._update_buttons()
        self._load_nodes()
        if shell.study is not None:
            self._study_opened(shell.study)

    # ------------------------------------------------------------------ prescription
    def _prescription_form(self) -> QFormLayout:
        self.dose = QDoubleSpinBox(minimum=0.5, maximum=150.0, value=54.0, decimals=2, suffix=" Gy")
        self.fractions = QSpinBox(minimum=1, maximum=60, value=3)
        self.technique = QComboBox(editable=True)
        self.technique.addItems(["SBRT", "IMRT", "VMAT", "3D-CRT"])
        self.intent = QComboBox()
        self.intent.addItems(["curative", "palliative"])
        self.ab_tumour = QDoubleSpinBox(minimum=0.5, maximum=30.0, value=10.0, suffix=" Gy")
        self.ab_normal = QDoubleSpinBox(minimum=0.5, maximum=30.0, value=3.0, suffix=" Gy")
        self.biology = QLabel("", objectName="live_biology")
        self.biology.setWordWrap(True)
        self.create_btn = QPushButton("Create plan / new version", objectName="create_plan")
        self.create_btn.clicked.connect(self.create_plan)
        for w in (self.dose, self.fractions, self.ab_tumour, self.ab_normal):
            w.valueChanged.connect(self.update_biology)
        self.technique.currentTextChanged.connect(self.update_biology)
        self.intent.currentTextChanged.connect(self.update_biology)
        form = QFormLayout()
        for label, w in (("Total dose", self.dose), ("Fractions", self.fractions), ("Technique", self.technique),
                         ("Intent", self.intent), ("alpha/beta tumour", self.ab_tumour),
                         ("alpha/beta normal", self.ab_normal)):  # fmt: skip
            form.addRow(label, w)
        form.addRow(self.biology)
        form.addRow(self.create_btn)
        self.update_biology()
        return form

    def update_biology(self) -> None:
        live = live_biology(self.dose.value(), self.fractions.value(), self.technique.currentText(),
                            self.intent.currentText(), [self.ab_tumour.value(), self.ab_normal.value()])  # fmt: skip
        if not live.ok:
            self.biology.setText(f"Check the prescription: {live.message}")
            return
        self.biology.setText(live.message + "\n" + "\n".join(
            f"alpha/beta {r['alpha_beta_gy']:g} Gy: BED {r['bed_gy']:.1f} Gy, EQD2 {r['eqd2_gy']:.1f} Gy"
            for r in live.rows))  # fmt: skip

    def create_plan(self) -> TaskInfo | None:
        from core.plan.model import Prescription

        study = self.shell.study
        if study is None:
            self.shell.show_error("Open a study first (worklist, Ctrl+1).")
            return None
        try:
            rx = Prescription(self.dose.value(), self.fractions.value(), self.technique.currentText(),
                              self.intent.currentText())  # fmt: skip
        except ValueError as exc:
            self.message.setText(f"{exc}. Correct the prescription.")
            return None
        store, access = self.shell.store, self.shell.access(Permission.EDIT_PLANS)
        base = self.record.plan_id if self.record is not None and self.record.study_uid == study.study_uid else None
        ab_tumour, ab_normal = self.ab_tumour.value(), self.ab_normal.value()

        def work(_t: CancelToken, report: Any) -> PlanRecord:
            from core.plan.builder import PlanOptions, build_plan_content  # heavy (spaCy): off the UI thread
            from core.plan.radiobiology import AlphaBetaTable
            from core.plan.repository import create_plan, new_version

            options = PlanOptions(alpha_beta=AlphaBetaTable(tumour_gy=ab_tumour, normal_gy=ab_normal))
            report(0.1, "computing DVHs and constraints")
            content = build_plan_content(store, access, study.study_uid, rx, options)  # type: ignore[arg-type]
            if base is None:
                return create_plan(store, access, content)  # type: ignore[arg-type]
            return new_version(store, access, base, content)  # type: ignore[arg-type]

        self.create_btn.setEnabled(False)
        return self.shell.run("create plan", work, doing="creating the plan", on_done=self._created,
                              on_error=self._create_failed)  # fmt: skip

    def _created(self, record: PlanRecord) -> None:
        self.create_btn.setEnabled(True)
        self.message.setText(f"plan {record.plan_id} version {record.version} created as draft")
        self.show_record(record)
        self.refresh_plans()

    def _create_failed(self, message: str) -> None:
        self.create_btn.setEnabled(True)
        self.shell.show_error(message + " The prescription you entered is kept.")

    # ------------------------------------------------------------------ plans
    def _study_opened(self, _study: OpenStudy) -> None:
        self.record = None
        self.refresh_plans()

    def refresh_plans(self) -> None:
        from core.plan.repository import list_plans

        study = self.shell.study
        if study is None:
            return
        store, access = self.shell.store, self.shell.access(Permission.READ_PATIENT_DATA)
        self.shell.run("list plans", lambda _t, _r: list_plans(store, access, study.study_uid),  # type: ignore[arg-type]
                       doing="listing the plans", on_done=self._plans_loaded)  # fmt: skip

    def _plans_loaded(self, rows: list[tuple[int, str, int, str]]) -> None:
        self.plans = rows
        fill_table(self.plan_list, [(r[0], r[2], r[3]) for r in rows])
        if rows and self.record is None:
            self.load_plan(rows[-1][0])

    def _selected(self) -> None:
        rows = self.plan_list.selectionModel().selectedRows()
        if rows:
            plan_id = int(self.plan_list.item(rows[0].row(), 0).text())
            if self.record is None or self.record.plan_id != plan_id:
                self.load_plan(plan_id)

    def load_plan(self, plan_id: int) -> TaskInfo:
        from core.plan.repository import get_plan

        store, access = self.shell.store, self.shell.access(Permission.READ_PATIENT_DATA)
        return self.shell.run("open plan", lambda _t, _r: get_plan(store, access, plan_id),  # type: ignore[arg-type]
                              doing="opening the plan", on_done=self.show_record)  # fmt: skip

    def show_record(self, record: PlanRecord) -> None:
        self.record = record
        c = record.content
        rx = c.prescription
        self.header.setText(f"Plan {record.plan_id} v{record.version}: {record.status.upper()} - {rx.total_dose_gy:g} "
                            f"Gy in {rx.fractions} fx {rx.technique} ({rx.intent}); {c.constraint_set_name}"
                            + ("" if c.dose_computed else " - dose not computed"))  # fmt: skip
        self.dose.setValue(rx.total_dose_gy)
        self.fractions.setValue(rx.fractions)
        self.technique.setCurrentText(rx.technique)
        self.intent.setCurrentText(rx.intent)
        self._show_constraints(record)
        self.dvh.show_curves(c.dvh_curves, rx.total_dose_gy)
        self._update_buttons()

    def _show_constraints(self, record: PlanRecord) -> None:
        results = record.content.constraint_results
        fill_table(self.constraints, [(r.structure, r.metric, "-" if r.value is None else round(r.value, 2),
                                       r.comparison, r.limit, r.unit, STATUS_COLOURS[r.status][1], r.source)
                                      for r in results])  # fmt: skip
        for row, r in enumerate(results):
            colour = QColor(STATUS_COLOURS[r.status][0])
            for col in range(self.constraints.columnCount()):
                item = self.constraints.item(row, col)
                if item is not None:
                    item.setBackground(colour)

    # ------------------------------------------------------------------ DVH (ui/plan_review/dvh.py)
    @property
    def curves(self) -> dict[str, list[list[float]]]:
        return self.dvh.curves

    @property
    def readout(self) -> QLabel:
        return self.dvh.readout

    def set_cursor_dose(self, dose_gy: float) -> None:
        self.dvh.set_cursor_dose(dose_gy)

    # ------------------------------------------------------------------ signatures
    def _update_buttons(self) -> None:
        session = self.shell.session
        role = session.user.role if session is not None and session.user is not None else None
        status = self.record.status if self.record is not None else None
        self.review_btn.setEnabled(role is Role.PHYSICIST and status == "draft")
        self.approve_btn.setEnabled(role is Role.RADIOLOGIST and status == "reviewed")
        self.reject_btn.setEnabled(role in (Role.PHYSICIST, Role.RADIOLOGIST) and status in ("draft", "reviewed"))
        self.pdf_btn.setEnabled(self.record is not None)
        self.send_btn.setEnabled(status == "approved")
        self.create_btn.setEnabled(role is Role.RADIOLOGIST)

    def sign(self, decision: str) -> SignatureDialog | None:
        if self.record is None:
            self.shell.show_error("Select a plan first.")
            return None
        user = self.shell.session.user  # type: ignore[union-attr]
        dialog = SignatureDialog(decision, user.name, f"{self.record.plan_id} v{self.record.version}", self)
        dialog.accepted.connect(lambda: self._signed(dialog))
        self.signature_dialog = dialog
        dialog.open()
        return dialog

    def _signed(self, dialog: SignatureDialog) -> None:
        from core.plan.repository import APPROVAL_PERMISSION, approve_plan, reject_plan, review_plan

        assert self.record is not None
        plan_id, password, comment = self.record.plan_id, dialog.password.text(), dialog.comment.toPlainText()
        role = self.shell.session.user.role  # type: ignore[union-attr]
        store = self.shell.store
        if dialog.decision == "review":
            access = self.shell.access(Permission.REVIEW_PLANS)
            fn: Any = lambda: review_plan(store, access, plan_id, password, comment=comment)  # type: ignore[arg-type]  # noqa: E731
        elif dialog.decision == "approve":
            access = self.shell.access(APPROVAL_PERMISSION)
            fn = lambda: approve_plan(store, access, plan_id, password, comment=comment)  # type: ignore[arg-type]  # noqa: E731
        else:
            access = self.shell.access(Permission.REVIEW_PLANS if role is Role.PHYSICIST else APPROVAL_PERMISSION)
            fn = lambda: reject_plan(store, access, plan_id, password, reason=comment)  # type: ignore[arg-type]  # noqa: E731
        self.shell.run("sign plan", lambda _t, _r: fn(), doing=f"signing ({dialog.decision})",
                       on_done=self._after_sign, on_error=self.shell.show_error)  # fmt: skip

    def _after_sign(self, record: PlanRecord) -> None:
        self.message.setText(f"plan {record.plan_id} is now {record.status}")
        self.show_record(record)
        self.refresh_plans()

    # ------------------------------------------------------------------ PDF and PACS
    def _pdf_tab(self) -> QWidget:
        from PySide6.QtPdf import QPdfDocument
        from PySide6.QtPdfWidgets import QPdfView

        w = QWidget()
        self.pdf_doc = QPdfDocument(self)
        self.pdf_view = QPdfView(objectName="pdf_view")
        self.pdf_view.setDocument(self.pdf_doc)
        self.pdf_view.setPageMode(QPdfView.PageMode.MultiPage)
        self.pdf_view.setZoomMode(QPdfView.ZoomMode.FitToWidth)
        layout = QVBoxLayout(w)
        layout.addWidget(self.pdf_view)
        return w

    def preview_pdf(self) -> TaskInfo | None:
        if self.record is None:
            self.shell.show_error("Select a plan first.")
            return None
        store, access = self.shell.store, self.shell.access(Permission.READ_PATIENT_DATA)
        plan_id = self.record.plan_id
        out = Path(self._tmp.name) / f"plan-{plan_id}-v{self.record.version}-{self.record.status}.pdf"

        def work(_t: CancelToken, _r: Any) -> Path:
            from core.plan.report import write_plan_pdf

            write_plan_pdf(store, access, plan_id, out)  # type: ignore[arg-type]
            return out

        return self.shell.run("plan PDF", work, doing="writing the PDF", on_done=self._show_pdf)

    def _show_pdf(self, path: Path) -> None:
        self.pdf_path = path
        self.pdf_doc.load(str(path))
        self.right.setCurrentIndex(2)
        self.message.setText(f"PDF preview: {self.pdf_doc.pageCount()} page(s)")

    def _load_nodes(self) -> None:
        from core.pacs.nodes import list_nodes

        store = self.shell.store
        self.shell.run("list PACS nodes", lambda _t, _r: list_nodes(store), doing="reading the PACS nodes",  # type: ignore[arg-type]
                       on_done=lambda nodes: self.node.addItems([n.name for n in nodes]))  # fmt: skip

    def send_to_pacs(self) -> TaskInfo | None:
        if self.record is None or self.record.status != "approved":
            self.shell.show_error("Only an approved plan can be sent to the PACS.")
            return None
        if not self.node.currentText():
            self.shell.show_error("No PACS node is configured: an administrator adds one under Settings.")
            return None
        store, name, record = self.shell.store, self.node.currentText(), self.record
        read = self.shell.access(Permission.READ_PATIENT_DATA)
        store_as = self.shell.access(Permission.IMPORT_STUDIES)
        s = self.shell.ctx.settings
        out = Path(self._tmp.name) / f"export-{record.plan_id}"

        def work(_t: CancelToken, report: Any) -> Any:
            from core.pacs.association import LocalAE
            from core.pacs.nodes import get_node
            from core.pacs.send import send_results
            from core.plan.export import export_plan_dicom

            report(0.2, "writing the DICOM PDF")
            export_plan_dicom(store, read, record.plan_id, out, store_as=store_as)  # type: ignore[arg-type]
            report(0.5, "sending")
            node = get_node(store, name)  # type: ignore[arg-type]
            local = LocalAE(ae_title=s.ae_title, storage_port=s.storage_port)
            return send_results(store, read, local, node, record.study_uid, "pdf")  # type: ignore[arg-type]

        def done(report: Any) -> None:
            failed = f"; failed: {'; '.join(report.failed)}" if report.failed else ""
            self.message.setText(f"sent to {name}: " + ", ".join(f"{n} {k}" for k, n in report.sent.items()) + failed)

        return self.shell.run("send to PACS", work, doing="sending to the PACS", on_done=done)
