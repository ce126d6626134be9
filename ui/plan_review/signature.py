"""The electronic-signature dialog: what the signature means, the signer re-enters the password."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QPlainTextEdit, QWidget

__all__ = ["MEANINGS", "SignatureDialog"]

MEANINGS = {
    "review": "Reviewed: dose, structures and constraints checked by a medical physicist",
    "approve": "Approved: I confirm this plan for treatment as the responsible clinician",
    "reject": "Rejected: not acceptable for treatment as it stands",
}


class SignatureDialog(QDialog):
    def __init__(self, decision: str, user_name: str, plan_label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.decision = decision
        self.setWindowTitle(f"Sign: {decision} {plan_label}")
        self.meaning = QLabel(MEANINGS[decision])
        self.meaning.setWordWrap(True)
        self.password = QLineEdit(objectName="signature_password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.comment = QPlainTextEdit(objectName="signature_comment")
        self.comment.setPlaceholderText("Reason (required, at least 5 characters)" if decision == "reject"
                                        else "Comment (optional)")  # fmt: skip
        self.error = QLabel("", objectName="error")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Sign")
        buttons.accepted.connect(self._check)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Plan", QLabel(plan_label))
        form.addRow("Signer", QLabel(user_name))
        form.addRow("Meaning", self.meaning)
        form.addRow("Password", self.password)
        form.addRow("Comment", self.comment)
        form.addRow(self.error)
        form.addRow(buttons)

    def _check(self) -> None:
        if not self.password.text():
            self.error.setText("Enter your password to sign.")
            return
        if self.decision == "reject" and len(self.comment.toPlainText().strip()) < 5:
            self.error.setText("Give the reason for the rejection (at least 5 characters).")
            return
        self.accept()
