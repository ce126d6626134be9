"""The workstation window: sign-in page, role-aware panels, status bar, shortcuts, the inactivity lock."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QTabWidget,
    QWidget,
)

from core.security.roles import Permission
from core.store.store import Store
from core.workstation.context import WorkstationContext
from core.workstation.messages import friendly_message
from core.workstation.session import SessionModel, visible_panels
from ui.login import LoginPage
from ui.workers import CancelToken, TaskRunner

if TYPE_CHECKING:  # the study loader (pydicom, volumes) is imported by the worker thread that opens a study
    from core.workstation.study import OpenStudy

__all__ = ["MainWindow"]

log = logging.getLogger("radplan.gui")
_INPUT_EVENTS = {QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress, QEvent.Type.Wheel, QEvent.Type.MouseMove}
_TAB_TITLES = {
    "worklist": "Worklist",
    "viewer": "Viewer",
    "segmentation": "Segmentation",
    "analysis": "Analysis",
    "plan": "Plan review",
    "jobs": "Jobs",
    "settings": "Settings",
}


#: Heavy modules imported in a worker thread after sign-in, so that no later click imports them on the UI thread
#: (the UI thread never imports these; importing blocks on the module lock while another thread imports it).
#: "module:function" also calls a warm-up function of the module.
_WARM_UP = (
    "core.dicom.importer", "core.pacs.query", "core.pacs.retrieve", "core.segmentation.edit", "core.plan.builder",
    "core.plan.report", "core.rules.similar", "core.plan.export", "core.segmentation.service",
    "core.dicom.writers.seg:prepare_reader",
)  # fmt: skip


#: Qt-side modules the panels need, imported in a worker while the sign-in page waits for the password (creating
#: widgets stays on the UI thread; importing the modules does not have to).
_PRELOAD_UI = (
    "pyqtgraph", "PySide6.QtPdf", "PySide6.QtPdfWidgets", "ui.viewer", "ui.worklist.panel", "ui.segmentation.panel",
    "ui.analysis.panel", "ui.plan_review.panel", "ui.jobs.panel", "ui.settings.panel", "core.jobs",
)  # fmt: skip


def _warm_up(token: CancelToken, report: Any, names: tuple[str, ...] = _WARM_UP) -> None:
    """Import ``names`` in this (worker) thread. Garbage collection is paused meanwhile and what was loaded is
    frozen out of later collections: an import makes many objects, and a full collection is one long C call
    holding the GIL (measured: a 200-650 ms freeze of the window per heavy module without this, <= 40 ms with it,
    apart from core.plan.builder's ~200 ms)."""
    import importlib

    from core.gcpause import paused_collection

    for i, name in enumerate(names):
        token.check()
        report(i / len(names), name)
        module_name, _, function = name.partition(":")
        try:
            with paused_collection():
                module = importlib.import_module(module_name)
                if function:
                    getattr(module, function)()
        except ImportError as exc:  # a piece not in this build: its panel says so when used
            log.info("warm-up: %s not importable: %s", name, exc)


class MainWindow(QMainWindow):
    """Pages: 0 sign-in / lock, 1 the workstation. Panels are built after sign-in for the user's role."""

    study_opened = Signal(object)  # OpenStudy
    #: the open study's RT Structure Set, RT Dose (and stored segmentation) were read, after its CT was shown
    overlays_loaded = Signal(object)  # OpenStudy
    masks_changed = Signal()
    signed_in = Signal()

    def __init__(self, ctx: WorkstationContext, store: Store | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.store: Store | None = store
        self.session: SessionModel | None = None
        self.study: OpenStudy | None = None
        self.runner = TaskRunner(self)
        self.panels: dict[str, QWidget] = {}
        self.setWindowTitle("RadPlan Workstation")
        self.resize(1440, 900)
        self.pages = QStackedWidget()
        self.login = LoginPage(str(ctx.settings.data_dir))
        self.login.submitted.connect(self._on_credentials)
        self.tabs = QTabWidget(objectName="panels")
        self.pages.addWidget(self.login)
        self.pages.addWidget(self.tabs)
        self.setCentralWidget(self.pages)
        self._status_labels = {k: QLabel(v) for k, v in (("user", "not signed in"), ("store", "store: opening..."),
                                                         ("pacs", "PACS: -"), ("backend", "inference: -"))}  # fmt: skip
        for label in self._status_labels.values():
            self.statusBar().addPermanentWidget(label)
        self._status_labels["backend"].setText(f"inference: {self._backend()}")
        self._actions()
        self._idle = QTimer(self, interval=1000)
        self._idle.timeout.connect(self._check_idle)
        self._last_touch = 0.0
        QApplication.instance().installEventFilter(self)  # type: ignore[union-attr]
        self._preloaded = False
        if store is not None:
            self._store_ready(store)
        elif ctx.open_store_with_passphrase is not None and ctx.needs_passphrase():
            self.login.ask_passphrase(True)  # opened at sign-in with the typed passphrase (_open_with_passphrase)
            self._status_labels["store"].setText("store: locked (passphrase needed)")
        else:
            self.login.button.setEnabled(False)
            self.runner.submit("open store", lambda _t, _r: ctx.open_store(), doing="opening the store",
                               on_done=self._store_ready, on_error=self._store_failed)  # fmt: skip

    # ------------------------------------------------------------------ store, sign-in, lock
    def _backend(self) -> str:
        try:
            return self.ctx.backend_name()
        except Exception:
            return "unknown"

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self._preloaded:  # after the first paint: the window appears first, the panels' modules load next
            self._preloaded = True
            QTimer.singleShot(300, lambda: self.runner.submit("preparing the window", lambda t, r: _warm_up(
                t, r, _PRELOAD_UI), doing="preparing the panels", on_error=lambda _m: None))  # fmt: skip

    def _store_ready(self, store: Store) -> None:
        self.login.ask_passphrase(False)
        self.store = store
        self.session = SessionModel(store, idle_timeout_s=self.ctx.settings.auto_lock_minutes * 60)
        self._status_labels["store"].setText(f"store: {store.paths.data_dir}")
        self.login.button.setEnabled(True)

    def _store_failed(self, message: str) -> None:
        self._status_labels["store"].setText("store: not open")
        self.login.show_error(message)
        self.login.button.setEnabled(False)

    def _on_credentials(self, name: str, password: str) -> None:
        session = self.session
        if session is None and self.login.wants_passphrase:
            self._open_with_passphrase(name, password)
            return
        if session is None:
            self.login.show_error("The store is not open yet; wait a moment and try again.")
            return
        if session.signed_in and session.locked:
            self.runner.submit("unlock", lambda _t, _r: session.unlock(password), doing="unlocking",
                               on_done=lambda _r: self._show_workstation(), on_error=self.login.show_error)  # fmt: skip
        else:
            self.runner.submit("sign in", lambda _t, _r: session.sign_in(name, password), doing="signing in",
                               on_done=lambda _u: self._after_sign_in(), on_error=self.login.show_error)  # fmt: skip

    def _open_with_passphrase(self, name: str, password: str) -> None:
        """Open the passphrase-mode store in a worker with the typed passphrase (cleared from the field now), then
        sign in. A wrong passphrase keeps the user name and password and asks only for the passphrase again."""
        phrase, opener = self.login.take_passphrase(), self.ctx.open_store_with_passphrase
        assert opener is not None

        def opened(store: Store) -> None:
            self._store_ready(store)
            self.login.button.setEnabled(False)  # still signing in
            self._on_credentials(name, password)

        self.runner.submit("open store", lambda _t, _r: opener(phrase), doing="opening the store", on_done=opened,
                           on_error=self.login.show_passphrase_error)  # fmt: skip

    def _after_sign_in(self) -> None:
        assert self.session is not None and self.session.user is not None
        user = self.session.user
        self._status_labels["user"].setText(f"{user.name} ({user.role.value})")
        self.statusBar().showMessage("Preparing the workstation...")
        self._build_panels(visible_panels(user.role), self._panels_ready)

    def _panels_ready(self) -> None:
        assert self.session is not None
        self.statusBar().clearMessage()
        self._show_workstation()
        self._idle.start()
        self.signed_in.emit()
        QTimer.singleShot(0, self.refresh_pacs_status)
        self.runner.submit("preparing modules", _warm_up, doing="preparing the analysis modules",
                           on_error=lambda _m: None)  # fmt: skip
        ensure = self.ctx.ensure_worker
        if ensure is not None and self.session.allows(Permission.RUN_ANALYSIS):
            # start the engine now, not at the first segmentation: its start-up (imports, process) is off the clock
            self.runner.submit("starting the engine", lambda _t, _r: ensure(), doing="starting the engine worker",
                               on_error=lambda m: self.statusBar().showMessage(m, 15000))  # fmt: skip

    def _show_workstation(self) -> None:
        self.pages.setCurrentIndex(1)

    def lock(self) -> None:
        if self.session is not None and self.session.signed_in:
            self.session.lock()
            self._show_lock()

    def _show_lock(self) -> None:
        assert self.session is not None and self.session.user is not None
        self.login.set_locked(self.session.user.name)
        self.pages.setCurrentIndex(0)  # the panels keep every input; they are only hidden

    def _check_idle(self) -> None:
        if self.session is not None and self.session.check_idle():
            self._show_lock()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() in _INPUT_EVENTS and self.session is not None and self.pages.currentIndex() == 1:
            now = time.monotonic()
            if now - self._last_touch > 1.0:
                self._last_touch = now
                self.session.activity()
        return False

    # ------------------------------------------------------------------ panels
    def _build_panels(self, names: list[str], done: Callable[[], None]) -> None:
        """One panel per event-loop turn (the UI thread paints in between: its longest stall is the largest panel,
        not all of them), then done(); the workstation page is shown only once every panel exists."""
        from ui.panels import build_panel

        self.tabs.clear()
        self.panels = {}
        pending = list(names)

        def next_panel() -> None:
            if not pending:
                done()
                return
            name = pending.pop(0)
            widget = build_panel(name, self)
            self.panels[name] = widget
            self.tabs.addTab(widget, _TAB_TITLES[name])
            QTimer.singleShot(0, self, next_panel)

        next_panel()

    def show_panel(self, name: str) -> None:
        if name in self.panels:
            self.tabs.setCurrentWidget(self.panels[name])

    def _actions(self) -> None:
        def add(text: str, keys: str | QKeySequence.StandardKey, slot: Any) -> QAction:
            action = QAction(text, self)
            action.setShortcut(QKeySequence(keys))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(slot)
            self.addAction(action)
            return action

        add("Lock", "Ctrl+L", self.lock)
        add("Quit", QKeySequence.StandardKey.Quit, self.close)
        for i, name in enumerate(_TAB_TITLES, 1):
            add(_TAB_TITLES[name], f"Ctrl+{i}", lambda _c=False, n=name: self.show_panel(n))
        add("Undo mask edit", QKeySequence.StandardKey.Undo, lambda: self._panel_call("segmentation", "undo"))
        add("Redo mask edit", QKeySequence.StandardKey.Redo, lambda: self._panel_call("segmentation", "redo"))
        add("Run segmentation", "Ctrl+R", lambda: self._panel_call("segmentation", "run_segmentation"))
        add("Refresh", "F5", lambda: self._panel_call("worklist", "refresh_local"))

    def _panel_call(self, panel: str, method: str) -> None:
        widget = self.panels.get(panel)
        if widget is not None and self.pages.currentIndex() == 1:
            getattr(widget, method)()

    # ------------------------------------------------------------------ shared services for the panels
    def access(self, permission: Permission) -> Any:
        assert self.session is not None
        return self.session.access(permission)

    def show_error(self, message: str, title: str = "RadPlan") -> None:
        self.statusBar().showMessage(message, 15000)
        if not QApplication.instance().property("radplan_no_dialogs"):  # type: ignore[union-attr]
            QMessageBox.warning(self, title, message)

    def run(self, name: str, fn: Any, *, doing: str, **callbacks: Any) -> Any:
        callbacks.setdefault("on_error", self.show_error)
        return self.runner.submit(name, fn, doing=doing, **callbacks)

    def open_study(self, study_uid: str) -> None:
        access = self.access(Permission.READ_PATIENT_DATA)
        store = self.store
        assert store is not None

        def load(_t: CancelToken, report: Any) -> OpenStudy:
            from core.gcpause import paused_collection
            from core.workstation.study import load_open_study

            report(0.1, "reading images")
            with paused_collection(freeze=False):  # parsing the images must not set off full collections (GIL)
                return load_open_study(store, access, study_uid, demo_folder=self.ctx.demo_folder)

        self.statusBar().showMessage("opening the study...")
        self.run("open study", load, doing="opening the study", on_done=self._study_loaded)

    def _study_loaded(self, study: OpenStudy) -> None:
        self.study = study
        self.statusBar().showMessage(f"study {study.study_uid} open ({study.volume.modality}, "
                                     f"{'x'.join(map(str, study.volume.array.shape[::-1]))})", 8000)  # fmt: skip
        self.study_opened.emit(study)
        self.show_panel("viewer")
        self._load_overlays(study)

    def _load_overlays(self, study: OpenStudy) -> None:
        """Second step of opening a study, after its CT is on screen: the RT objects (and, when no mask version was
        saved from here, the engine's stored segmentation) in a worker; what cannot be shown is said in a sentence."""
        access, store = self.access(Permission.READ_PATIENT_DATA), self.store
        seg_shape = study.volume.array.shape if study.mask_source == "none" else None

        def load(_t: CancelToken, report: Any) -> Any:
            from core.gcpause import paused_collection
            from core.workstation.overlays import load_study_overlays

            report(0.1, "reading the structure set and dose")
            with paused_collection(freeze=False):
                return load_study_overlays(store, access, study.study_uid, seg_shape=seg_shape)  # type: ignore[arg-type]

        def loaded(overlays: Any) -> None:
            if self.study is not study:  # another study was opened meanwhile
                return
            masks_replaced = study.add_overlays(overlays)
            if overlays.notes:
                self.statusBar().showMessage(" ".join(overlays.notes), 15000)
            self.overlays_loaded.emit(study)
            if masks_replaced:
                self.masks_changed.emit()

        self.run("open study overlays", load, doing="reading the structure set and dose", on_done=loaded)

    def set_backend_status(self, backend: str) -> None:
        self._status_labels["backend"].setText(f"inference: {backend} (last job)")

    def refresh_pacs_status(self) -> None:
        store = self.store
        if store is None:
            return

        def probe(_t: CancelToken, _r: Any) -> str:
            from core.pacs.association import LocalAE
            from core.pacs.nodes import list_nodes
            from core.pacs.query import echo

            nodes = list_nodes(store)
            if not nodes:
                return "PACS: no node configured"
            local = LocalAE(ae_title=self.ctx.settings.ae_title, storage_port=self.ctx.settings.storage_port)
            try:
                ms = echo(local, nodes[0])
            except Exception as exc:
                return f"PACS {nodes[0].name}: unreachable ({friendly_message(exc, 'echo')[:60]})"
            return f"PACS {nodes[0].name}: online ({ms:.0f} ms)"

        self.runner.submit("PACS echo", probe, doing="checking the PACS",
                           on_done=self._status_labels["pacs"].setText,
                           on_error=lambda m: self._status_labels["pacs"].setText("PACS: unknown"))  # fmt: skip

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        self._idle.stop()
        QApplication.instance().removeEventFilter(self)  # type: ignore[union-attr]
        self.runner.shutdown(5000)
        super().closeEvent(event)
