"""The sign-in page (and the same page as the lock screen: only the signed-in user's password unlocks)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

__all__ = ["LoginPage"]


class LoginPage(QWidget):
    """Emits submitted(name, password). `set_locked(user)` turns it into the unlock screen."""

    submitted = Signal(str, str)

    def __init__(self, store_label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("RadPlan Workstation")
        self.title.setStyleSheet("font-size: 22pt; font-weight: 300;")
        self.subtitle = QLabel(f"Sign in to the store {store_label}")
        self.user = QLineEdit(objectName="login_user")
        self.password = QLineEdit(objectName="login_password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.button = QPushButton("Sign in", objectName="login_button")
        self.button.setDefault(True)
        self.error = QLabel("", objectName="error")
        self.error.setWordWrap(True)
        notice = QLabel("Decision support only: every recommendation must be checked by a qualified clinician.")
        notice.setObjectName("notice")
        notice.setWordWrap(True)
        form = QFormLayout()
        form.addRow("User", self.user)
        form.addRow("Password", self.password)
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
        self.password.returnPressed.connect(self._submit)
        self.user.returnPressed.connect(self.password.setFocus)

    def _submit(self) -> None:
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
