"""Analysis of the open study: radiomics table (search, sort, CSV export), model scores with per-feature
contribution bars, rules fired with their sources, NLP findings highlighted in the note, similar previous patients.
The computation (radiomics, spaCy, rules) runs as an 'analyse' job in the engine worker process, followed like the
segmentation job (ui/engine_jobs.py); an installation without a worker runs it in a one-off process. Store reads run
in worker threads."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from core.jobs import JobQueue
from core.security.roles import Permission
from core.workstation.analysis import (
    ANALYSE_JOB,
    analyse,
    analysis_job_payload,
    highlight_spans,
    parse_facts,
    record_decision,
)
from core.workstation.study import OpenStudy
from ui.common import fill_table, make_table, notice
from ui.engine_jobs import follow_engine_job
from ui.workers import CancelToken, TaskInfo, run_in_process

if TYPE_CHECKING:
    from ui.main_window import MainWindow

__all__ = ["AnalysisPanel"]

_SPAN_COLOURS = {"finding": "#2e5d8a", "negated": "#6d3a3a", "uncertain": "#6b5a1e"}


def gtv_mask(masks: dict[str, np.ndarray]) -> np.ndarray | None:
    for name, mask in masks.items():
        if name.casefold() == "gtv" and np.any(mask):
            return mask
    return None


class AnalysisPanel(QWidget):
    def __init__(self, shell: MainWindow) -> None:
        super().__init__()
        self.shell = shell
        self.result: dict[str, Any] | None = None
        self.task: TaskInfo | None = None
        self.job_id: int | None = None  # the last 'analyse' engine job (None: none, or run without a worker)
        self.run_btn = QPushButton("Run analysis", objectName="run_analysis")
        self.run_btn.clicked.connect(self.run_analysis)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(lambda: self.task and self.shell.runner.cancel(self.task.id))
        self.facts = QLineEdit(placeholderText="Additional facts, e.g. age=67, ecog=1, bed10_gy=105")
        self.status = notice("Decision support only: every recommendation must be checked by a qualified clinician.")
        top = QHBoxLayout()
        top.addWidget(self.run_btn)
        top.addWidget(self.cancel_btn)
        top.addWidget(self.facts, 1)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._radiomics_tab(), "Radiomics")
        self.tabs.addTab(self._scores_tab(), "Model scores")
        self.rules_table = make_table(["Rule", "Version", "Title", "Source"], name="rules_fired")
        self.tabs.addTab(self.rules_table, "Rules fired")
        self.note = QPlainTextEdit(objectName="note_text")
        self.note.setPlaceholderText("Clinical note: paste or type it here; findings are highlighted after analysis.")
        self.tabs.addTab(self.note, "Note (NLP)")
        self.similar_table = make_table(["Patient", "Distance", "Same cluster", "Decision", "Plan", "Rules"],
                                        name="similar_patients")  # fmt: skip
        self.similar_message = notice("")
        sim = QWidget()
        sl = QVBoxLayout(sim)
        sl.addWidget(self.similar_message)
        sl.addWidget(self.similar_table)
        self.tabs.addTab(sim, "Similar patients")
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addLayout(self._decision_row())
        layout.addWidget(self.tabs, 1)
        shell.study_opened.connect(self._study_opened)
        if shell.study is not None:
            self._study_opened(shell.study)

    # ------------------------------------------------------------------ tabs
    def _radiomics_tab(self) -> QWidget:
        w = QWidget()
        self.feature_search = QLineEdit(placeholderText="Search features (IBSI tag or pyradiomics name)")
        self.feature_search.textChanged.connect(self._fill_features)
        self.export_btn = QPushButton("Export CSV...")
        self.export_btn.clicked.connect(self._choose_export)
        self.features_table = make_table(["IBSI tag", "pyradiomics name", "Value"], name="radiomics_table")
        self.features_table.setSortingEnabled(True)
        self.radiomics_message = notice("")
        row = QHBoxLayout()
        row.addWidget(self.feature_search, 1)
        row.addWidget(self.export_btn)
        layout = QVBoxLayout(w)
        layout.addLayout(row)
        layout.addWidget(self.radiomics_message)
        layout.addWidget(self.features_table)
        return w

    def _scores_tab(self) -> QWidget:
        import pyqtgraph as pg

        w = QSplitter()
        left = QWidget()
        self.scores_table = make_table(["Model", "Version", "Probability", "Baseline", "Note"], name="scores_table")
        self.scores_table.itemSelectionChanged.connect(self._show_contributions)
        self.questions = QTextEdit(readOnly=True)
        ll = QVBoxLayout(left)
        ll.addWidget(self.scores_table)
        ll.addWidget(notice("Questions (facts the rules and models still need):"))
        ll.addWidget(self.questions)
        self.contrib_plot = pg.PlotWidget(title="Per-feature contribution (log-odds vs. cohort average)")
        self.contrib_plot.setBackground("#16171a")
        w.addWidget(left)
        w.addWidget(self.contrib_plot)
        return w

    def _decision_row(self) -> QHBoxLayout:
        """Accept or override the first recommendation: recorded as feedback for the open study's patient, who then
        joins the similar-patients cohort (core.workstation.analysis.record_decision)."""
        self.accept_btn = QPushButton("Accept recommendation", objectName="accept_recommendation")
        self.override_btn = QPushButton("Override", objectName="override_recommendation")
        self.override_reason = QLineEdit(placeholderText="Override: what you decided instead and why (10+ characters)")
        self.accept_btn.clicked.connect(lambda: self.record_decision("accept"))
        self.override_btn.clicked.connect(lambda: self.record_decision("override"))
        self.decision_message = notice("")
        row = QHBoxLayout()
        for w in (self.accept_btn, self.override_btn):
            row.addWidget(w)
            w.setEnabled(False)
        row.addWidget(self.override_reason, 1)
        row.addWidget(self.decision_message, 1)
        return row

    # ------------------------------------------------------------------ run
    def _study_opened(self, study: OpenStudy) -> None:
        if study.note and not self.note.toPlainText().strip():
            self.note.setPlainText(study.note)

    def run_analysis(self) -> TaskInfo | None:
        study = self.shell.study
        if study is None:
            self.shell.show_error("Open a study first (worklist, Ctrl+1).")
            return None
        try:
            facts = parse_facts(self.facts.text())
        except ValueError as exc:
            self.status.setText(f"{exc}. Correct the facts and run again.")
            return None
        access = self.shell.access(Permission.READ_PATIENT_DATA)  # audited check before patient data leaves the window
        vol, note = study.volume, self.note.toPlainText()
        found = gtv_mask(study.masks.masks)
        mask = None if found is None else found.copy()  # a snapshot: undo/redo change the open masks in place
        ensure_worker, queue = self.shell.ctx.ensure_worker, JobQueue(self.shell.store)  # type: ignore[arg-type]
        self.job_id = None

        def in_engine(token: CancelToken, report: Any) -> dict[str, Any]:
            payload = analysis_job_payload(study_uid=study.study_uid, series_uid=vol.series_uid, mask=mask,
                                           note=note, facts=facts)  # fmt: skip
            job = follow_engine_job(queue, ANALYSE_JOB, payload, study_uid=study.study_uid, user=access.user.name,
                                    ensure_worker=ensure_worker, token=token, report=report,
                                    on_submitted=lambda job_id: setattr(self, "job_id", job_id))  # fmt: skip
            return job.result

        def in_process(token: CancelToken, report: Any) -> dict[str, Any]:  # no engine worker in this installation
            report(0.05, "computing radiomics, NLP and the recommendation")
            return run_in_process(analyse, vol.array, vol.spacing_mm, mask, note or None,  # type: ignore[no-any-return]
                                  facts=facts, token=token)  # fmt: skip

        work = in_process if ensure_worker is None else in_engine
        self.run_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.status.setText("analysis running in the background...")
        self.task = self.shell.run(
            "analysis",
            work,
            doing="running the analysis",
            on_progress=lambda f, m: self.status.setText(f"analysis {f:.0%}: {m}" if m else "analysis running..."),
            on_done=self.show_result,
            on_error=self._failed,
            on_cancel=lambda: self._ended("Analysis cancelled."),
        )
        return self.task

    def _ended(self, text: str) -> None:
        self.run_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
        self.status.setText(text)

    def _failed(self, message: str) -> None:
        self._ended(message + " The note and facts you entered are kept.")

    def show_result(self, result: dict[str, Any]) -> None:
        self.result = result
        rec = result["recommendation"]
        n = len(rec["recommendations"])
        self._ended(f"{rec['decision_support_notice']} {n} recommendation(s), {len(rec['rules_fired'])} rule(s) "
                    f"fired, {len(rec['scores'])} model score(s).")  # fmt: skip
        self.radiomics_message.setText(result.get("radiomics_error", ""))
        self._fill_features()
        fill_table(
            self.scores_table,
            [
                (
                    s["title"] or s["model"],
                    s["model_version"],
                    round(s["probability"], 3),
                    round(s["baseline_probability"], 3),
                    s["note"],
                )
                for s in rec["scores"]
            ],
        )
        self.questions.setPlainText("\n".join(f"- {q['question']}" for q in rec["questions"]) or "none")
        if rec["scores"]:
            self.scores_table.selectRow(0)
        fill_table(self.rules_table, [(r["id"], r["version"], r["title"], r["source"]) for r in rec["rules_fired"]])
        self._highlight(result["mentions"])
        self._similar(rec)
        session = self.shell.session
        allowed = session is not None and session.allows(Permission.EDIT_PLANS)
        if not rec["recommendations"]:
            why = "No recommendation to decide on."
        else:
            why = "" if allowed else "Recording decisions needs a radiologist."
        for button in (self.accept_btn, self.override_btn):
            button.setEnabled(not why)
        self.decision_message.setText(why)

    def record_decision(self, decision: str) -> TaskInfo | None:
        study, result = self.shell.study, self.result
        if study is None or result is None:
            self.shell.show_error("Run the analysis of an open study first.")
            return None
        reason = self.override_reason.text().strip()
        if decision == "override" and len(reason) < 10:
            self.decision_message.setText("Give what you decided instead and why (at least 10 characters).")
            return None
        store = self.shell.store
        read, edit = self.shell.access(Permission.READ_PATIENT_DATA), self.shell.access(Permission.EDIT_PLANS)

        def work(_t: CancelToken, _r: Any) -> tuple[int, str]:
            return record_decision(store, read, edit, result, decision, study_uid=study.study_uid,  # type: ignore[arg-type]
                                   reason=reason)  # fmt: skip

        def done(recorded: tuple[int, str]) -> None:
            self.decision_message.setText(f"Decision recorded ({decision}) for patient {recorded[1]}.")
            self._similar(result["recommendation"])  # the cohort now includes this patient

        for button in (self.accept_btn, self.override_btn):
            button.setEnabled(False)
        return self.shell.run("record decision", work, doing="recording the decision", on_done=done,
                              on_error=self._decision_failed)  # fmt: skip

    def _decision_failed(self, message: str) -> None:
        self.decision_message.setText(message)
        for button in (self.accept_btn, self.override_btn):
            button.setEnabled(True)

    def _fill_features(self) -> None:
        features = (self.result or {}).get("features", [])
        words = self.feature_search.text().casefold().split()
        rows = [(f["tag"], f["pyradiomics"], f["value"]) for f in features
                if all(w in f"{f['tag']} {f['pyradiomics']}".casefold() for w in words)]  # fmt: skip
        fill_table(self.features_table, rows)

    def _show_contributions(self) -> None:
        import pyqtgraph as pg

        self.contrib_plot.clear()
        rows = self.scores_table.selectionModel().selectedRows() if self.result else []
        if not rows:
            return
        score = self.result["recommendation"]["scores"][rows[0].row()]  # type: ignore[index]
        contribs = score["contributions"]
        values = [float(c["log_odds"]) for c in contribs]
        brushes = [pg.mkBrush("#c0504d" if v > 0 else "#4f8cc9") for v in values]
        bars = pg.BarGraphItem(x0=0, y=list(range(len(values))), height=0.6, width=values, brushes=brushes)
        self.contrib_plot.addItem(bars)
        axis = self.contrib_plot.getAxis("left")
        axis.setTicks([[(i, c["feature"]) for i, c in enumerate(contribs)]])

    def _highlight(self, mentions: list[dict[str, Any]]) -> None:
        text = self.note.toPlainText()
        selections = []
        for start, end, kind in highlight_spans(text, mentions):
            sel = QTextEdit.ExtraSelection()
            fmt = QTextCharFormat()
            fmt.setBackground(QColor(_SPAN_COLOURS[kind]))
            if kind == "negated":
                fmt.setFontStrikeOut(True)
            sel.format = fmt
            cursor = QTextCursor(self.note.document())
            cursor.setPosition(start)
            cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
            sel.cursor = cursor
            selections.append(sel)
        self.note.setExtraSelections(selections)
        self.highlight_count = len(selections)

    def _similar(self, rec: dict[str, Any]) -> None:
        facts = {k: v["value"] for k, v in rec["facts"].items()}
        store, access = self.shell.store, self.shell.access(Permission.READ_PATIENT_DATA)
        self.similar_message.setText("looking for similar previous patients...")

        def done(found: Any) -> None:
            names, patients = found
            self.similar_message.setText(f"{len(patients)} similar patient(s) over {len(names)} radiomics features")
            fill_table(self.similar_table, [(p.patient_id, p.distance, "yes" if p.same_cluster else "no",
                                             p.decision, str(dict(p.plan))[:80], ", ".join(p.rule_ids))
                                            for p in patients])  # fmt: skip

        def work(_t: CancelToken, _r: Any) -> Any:
            from core.rules.similar import similar_patients  # scikit-learn: off the UI thread

            return similar_patients(store, access, facts)  # type: ignore[arg-type]

        self.shell.run("similar patients", work,
                       doing="looking for similar patients", on_done=done,
                       on_error=self.similar_message.setText)  # fmt: skip

    # ------------------------------------------------------------------ export
    def _choose_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export radiomics", "radiomics.csv", "CSV (*.csv)")
        if path:
            self.export_csv(Path(path))

    def export_csv(self, path: Path) -> TaskInfo | None:
        features = list((self.result or {}).get("features", []))
        if not features:
            self.shell.show_error("There are no radiomics features to export: run the analysis first.")
            return None

        def work(_t: CancelToken, _r: Any) -> int:
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["ibsi_tag", "feature", "value"])
                for f in features:
                    writer.writerow([f["tag"], f["pyradiomics"], repr(f["value"])])
            return len(features)

        return self.shell.run(
            "export CSV",
            work,
            doing="exporting the CSV",
            on_done=lambda n: self.radiomics_message.setText(f"{n} features written to {path}"),
        )
