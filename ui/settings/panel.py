"""Settings (administrators): PACS nodes with an echo button, models, users."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.security.roles import Permission, Role
from ui.common import fill_table, make_table, notice
from ui.workers import CancelToken

if TYPE_CHECKING:
    from ui.main_window import MainWindow

__all__ = ["SettingsPanel"]


class SettingsPanel(QWidget):
    def __init__(self, shell: MainWindow) -> None:
        super().__init__()
        self.shell = shell
        tabs = QTabWidget()
        tabs.addTab(self._pacs_tab(), "PACS nodes")
        tabs.addTab(self._models_tab(), "Models")
        if shell.session is not None and shell.session.allows(Permission.MANAGE_USERS):
            tabs.addTab(self._users_tab(), "Users")
        layout = QVBoxLayout(self)
        s = shell.ctx.settings
        layout.addWidget(notice(f"This workstation: AE title {s.ae_title}, storage port {s.storage_port}, data "
                                f"folder {s.data_dir}, auto-lock after {s.auto_lock_minutes:g} min."))  # fmt: skip
        layout.addWidget(tabs)
        self.refresh_nodes()
        self.refresh_models()
        if hasattr(self, "users_table"):
            self.refresh_users()

    # ------------------------------------------------------------------ PACS
    def _pacs_tab(self) -> QWidget:
        w = QWidget()
        self.nodes_table = make_table(["Name", "AE title", "Host", "Port", "TLS", "DICOMweb"], name="nodes_table")
        self.n_name, self.n_aet, self.n_host = QLineEdit(), QLineEdit(), QLineEdit()
        self.n_port = QSpinBox(minimum=1, maximum=65535, value=4242)
        self.add_node_btn = QPushButton("Add / replace node")
        self.add_node_btn.clicked.connect(self.add_node)
        self.echo_btn = QPushButton("Echo selected", objectName="echo_button")
        self.echo_btn.clicked.connect(self.echo_selected)
        self.pacs_message = notice("")
        form = QFormLayout()
        for label, field in (("Name", self.n_name), ("AE title", self.n_aet), ("Host", self.n_host),
                             ("Port", self.n_port)):  # fmt: skip
            form.addRow(label, field)
        row = QHBoxLayout()
        row.addWidget(self.add_node_btn)
        row.addWidget(self.echo_btn)
        row.addStretch(1)
        layout = QVBoxLayout(w)
        layout.addWidget(self.nodes_table)
        layout.addLayout(form)
        layout.addLayout(row)
        layout.addWidget(self.pacs_message)
        return w

    def refresh_nodes(self) -> None:
        from core.pacs.nodes import list_nodes

        store = self.shell.store
        self.shell.run("list PACS nodes", lambda _t, _r: list_nodes(store), doing="reading the PACS nodes",  # type: ignore[arg-type]
                       on_done=self._nodes)  # fmt: skip

    def _nodes(self, nodes: list[Any]) -> None:
        self.nodes = nodes
        fill_table(self.nodes_table, [(n.name, n.ae_title, n.host, n.port, "yes" if n.tls else "no",
                                       n.dicomweb_url) for n in nodes])  # fmt: skip

    def add_node(self) -> None:
        from core.pacs.nodes import PacsNode, add_node

        store, access = self.shell.store, self.shell.access(Permission.MANAGE_PACS)
        try:
            node = PacsNode(name=self.n_name.text().strip(), ae_title=self.n_aet.text().strip(),
                            host=self.n_host.text().strip(), port=self.n_port.value())  # fmt: skip
            node.check()
        except (ValueError, TypeError) as exc:
            self.pacs_message.setText(f"{exc}. Correct the node and add it again.")
            return
        self.shell.run("add PACS node", lambda _t, _r: add_node(store, access, node, replace=True),  # type: ignore[arg-type]
                       doing="saving the PACS node", on_done=lambda _r: self.refresh_nodes(),
                       on_error=self.pacs_message.setText)  # fmt: skip

    def echo_selected(self) -> None:
        rows = self.nodes_table.selectionModel().selectedRows()
        nodes = getattr(self, "nodes", [])
        if not rows and len(nodes) != 1:
            self.pacs_message.setText("Select a node to echo.")
            return
        node = nodes[rows[0].row()] if rows else nodes[0]
        s = self.shell.ctx.settings

        def work(_t: CancelToken, _r: Any) -> float:
            from core.pacs.association import LocalAE
            from core.pacs.query import echo

            return echo(LocalAE(ae_title=s.ae_title, storage_port=s.storage_port), node)

        self.pacs_message.setText(f"echo {node.name}...")
        self.shell.run("C-ECHO", work, doing=f"echoing {node.name}",
                       on_done=lambda ms: self.pacs_message.setText(f"{node.name}: C-ECHO ok in {ms:.1f} ms"),
                       on_error=self.pacs_message.setText)  # fmt: skip

    # ------------------------------------------------------------------ models
    def _models_tab(self) -> QWidget:
        w = QWidget()
        self.models_table = make_table(["Kind", "Name", "Version", "State"], name="models_table")
        layout = QVBoxLayout(w)
        layout.addWidget(self.models_table)
        layout.addWidget(notice("Site models go under <data folder>/models; a model whose checksum does not match "
                                "is listed as refused with the reason."))  # fmt: skip
        return w

    def refresh_models(self) -> None:
        data_dir = self.shell.ctx.settings.data_dir

        def work(_t: CancelToken, _r: Any) -> list[tuple[str, str, str, str]]:
            from core.models.registry import SHIPPED_MODELS, find_models

            rows = [
                ("risk", m_id, m.version, "demonstration" if m.demonstration else "site")
                for m_id, m in sorted(find_models([data_dir / "models" / "risk", SHIPPED_MODELS]).items())
            ]
            try:
                from core.segmentation.models import list_models
            except ImportError:
                return [*rows, ("segmentation", "-", "-", "not available in this build yet")]
            for info in list_models(site_dir=data_dir / "models"):
                version = info.manifest.version if info.manifest is not None else "?"
                rows.append(("segmentation", info.name, version, f"refused: {info.refused}" if info.refused else "ok"))
            return rows

        self.shell.run("list models", work, doing="listing the models",
                       on_done=lambda rows: fill_table(self.models_table, rows))  # fmt: skip

    # ------------------------------------------------------------------ users
    def _users_tab(self) -> QWidget:
        w = QWidget()
        self.users_table = make_table(["Name", "Role", "Active"], name="users_table")
        self.u_name, self.u_password = QLineEdit(), QLineEdit()
        self.u_password.setEchoMode(QLineEdit.EchoMode.Password)
        self.u_role = QComboBox()
        self.u_role.addItems([r.value for r in Role])
        self.add_user_btn = QPushButton("Add user")
        self.add_user_btn.clicked.connect(self.add_user)
        self.users_message = notice("")
        form = QFormLayout()
        form.addRow("Name", self.u_name)
        form.addRow("Role", self.u_role)
        form.addRow("Initial password", self.u_password)
        form.addRow(self.add_user_btn)
        layout = QVBoxLayout(w)
        layout.addWidget(self.users_table)
        layout.addLayout(form)
        layout.addWidget(self.users_message)
        return w

    def refresh_users(self) -> None:
        from core.store.users import UserRepository

        store = self.shell.store
        self.shell.run(
            "list users",
            lambda _t, _r: UserRepository(store).list(),
            doing="listing the users",  # type: ignore[arg-type]
            on_done=lambda us: fill_table(
                self.users_table, [(u.name, u.role.value, "yes" if u.active else "no") for u in us]
            ),
        )

    def add_user(self) -> None:
        from core.store.users import UserRepository

        store, access = self.shell.store, self.shell.access(Permission.MANAGE_USERS)
        name, role, password = self.u_name.text().strip(), Role(self.u_role.currentText()), self.u_password.text()

        def done(_r: Any) -> None:
            self.u_password.clear()
            self.users_message.setText(f"user {name} added as {role.value}")
            self.refresh_users()

        self.shell.run("add user", lambda _t, _r: UserRepository(store).add(access, name, role, password),  # type: ignore[arg-type]
                       doing="adding the user", on_done=done, on_error=self.users_message.setText)  # fmt: skip
