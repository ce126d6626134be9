"""The sign-in page (and the same page as the lock screen: only the signed-in user's password unlocks). For a store
in passphrase mode it also asks for the store passphrase until the store is open."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

__all__ = ["LoginPage"]


class LoginPage(QWidget):
    """Emits submitted(name, password). `set_locked(user)` turns it into the unlock screen. `ask_passphrase(True)`
    shows the "Store passphrase" field; `take_passphrase()` reads and clears it."""

    submitted = Signal(str, str)

    def __init__(self, store_label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("RadPlan Workstation")
        self.title.setStyleSheet("font-size: 22pt; font-weight: 300;")
        self.subtitle = QLabel(f"Sign in to the store {store_label}")
        self.user = QLineEdit(objectName="login_user")
        self.password = QLineEdit(objectName="login_password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase = QLineEdit(objectName="login_passphrase")
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase_note = QLabel("This store is encrypted with a passphrase: enter it to open the store.")
        self.passphrase_note.setWordWrap(True)
        self.button = QPushButton("Sign in", objectName="login_button")
        self.button.setDefault(True)
        self.error = QLabel("", objectName="error")
        self.error.setWordWrap(True)
        notice = QLabel("Decision support only: every recommendation must be checked by a qualified clinician.")
        notice.setObjectName("notice")
        notice.setWordWrap(True)
        self.form = form = QFormLayout()
        form.addRow("User", self.user)
        form.addRow("Password", self.password)
        form.addRow("Store passphrase", self.passphrase)
        form.addRow(self.passphrase_note)
        box = QWidget()
        box.setMaximumWidth(420)
        inner = QVBoxLayout(box)
        for w in (self.title, self.subtitle):
            inner.addWidget(w)
        inner.addLayout(form)
        inner.addWidget(self.button)
        inner.addWidget(self.error)
        inner.addWidget(notice)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addWidget(box, 0, Qt.AlignmentFlag.AlignHCenter)
        outer.addStretch(2)
        self.button.clicked.connect(self._submit)
        self.password.returnPressed.connect(self._password_entered)
        self.passphrase.returnPressed.connect(self._submit)
        self.user.returnPressed.connect(self.password.setFocus)
        self.ask_passphrase(False)

    def ask_passphrase(self, ask: bool) -> None:
        """Show (True) or hide the store passphrase field and its note; hiding also clears it."""
        self.wants_passphrase = ask
        for row in (self.passphrase, self.passphrase_note):
            self.form.setRowVisible(row, ask)
        if not ask:
            self.passphrase.clear()

    def take_passphrase(self) -> str:
        """The typed passphrase, cleared from the field at once (it is used for one open and not kept)."""
        phrase = self.passphrase.text()
        self.passphrase.clear()
        return phrase

    def show_passphrase_error(self, message: str) -> None:
        """The store did not open: the user name and password stay, only the passphrase is asked again."""
        self.error.setText(message)
        self.passphrase.clear()
        self.passphrase.setFocus()
        self.button.setEnabled(True)

    def _password_entered(self) -> None:
        if self.wants_passphrase and not self.passphrase.text():
            self.passphrase.setFocus()
        else:
            self._submit()

    def _submit(self) -> None:
        if self.wants_passphrase and not self.passphrase.text():
            self.show_passphrase_error("Enter the store passphrase to open the store.")
            return
        self.error.setText("")
        self.button.setEnabled(False)
        self.submitted.emit(self.user.text(), self.password.text())

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.password.clear()
        self.password.setFocus()
        self.button.setEnabled(True)

    def set_locked(self, user_name: str | None) -> None:
        """user_name: lock screen for that user; None: a plain sign-in page."""
        self.password.clear()
        self.error.setText("")
        self.button.setEnabled(True)
        if user_name is None:
            self.subtitle.setText("Sign in")
            self.user.setReadOnly(False)
            self.user.clear()
            self.button.setText("Sign in")
            self.user.setFocus()
        else:
            self.subtitle.setText(f"Locked after inactivity. {user_name}, enter your password to unlock.")
            self.user.setText(user_name)
            self.user.setReadOnly(True)
            self.button.setText("Unlock")
            self.password.setFocus()
