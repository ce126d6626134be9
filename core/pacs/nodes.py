"""PACS nodes kept in the encrypted store (table pacs_nodes); admins manage them, every change is audited."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import PermissionDeniedError, RadPlanError
from core.security.roles import Permission
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.store import Store, utc_now
from core.store.users import record_access

__all__ = ["PacsError", "PacsNode", "add_node", "get_node", "list_nodes", "remove_node"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_COLUMNS = "name, ae_title, host, port, tls, ca_file, cert_file, key_file, dicomweb_url, timeout_s, retries"


class PacsError(RadPlanError):
    """A PACS could not be reached, refused us, or answered with an error (the message says which)."""


@dataclass(frozen=True)
class PacsNode:
    """A remote DICOM node. timeout_s (seconds) applies to ACSE, DIMSE and the network; retries is how many
    extra attempts a retrieve makes after a dropped association (back-off 1 s, 2 s, 4 s, ...)."""

    name: str
    ae_title: str
    host: str
    port: int
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    dicomweb_url: str = ""
    timeout_s: float = 30.0
    retries: int = 3

    def check(self) -> None:
        """Raise ValueError naming the first bad field."""
        if not _NAME.match(self.name):
            raise ValueError(f"node name must be 1-64 letters, digits, '.', '_' or '-', not {self.name!r}")
        title = self.ae_title
        if not 0 < len(title) <= 16 or not title.strip() or not title.isascii() or "\\" in title:
            raise ValueError(f"AE title must have 1 to 16 ASCII characters and no backslash, not {title!r}")
        if not self.host.strip():
            raise ValueError("host must not be empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1 to 65535, not {self.port}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {self.timeout_s}")
        if not 0 <= self.retries <= 20:
            raise ValueError(f"retries must be 0 to 20, not {self.retries}")
        if self.tls:
            if not self.ca_file:
                raise ValueError("--tls needs --ca FILE (the CA that signed the PACS certificate)")
            for label, path in (("CA", self.ca_file), ("certificate", self.cert_file), ("key", self.key_file)):
                if path and not Path(path).is_file():
                    raise ValueError(f"TLS {label} file not found: {path}")
            if bool(self.cert_file) != bool(self.key_file):
                raise ValueError("--cert and --key go together (our client certificate and its private key)")


def _require(access: Access) -> None:
    if access.permission is not Permission.MANAGE_PACS:
        raise PermissionDeniedError("managing PACS nodes needs the 'manage_pacs' permission")


def add_node(store: Store, access: Access, node: PacsNode, *, replace: bool = False) -> None:
    """Add (or with replace=True, update) a node; audited as pacs.node_add / pacs.node_update."""
    _require(access)
    node.check()
    now = utc_now()
    values = (
        node.name,
        node.ae_title,
        node.host,
        node.port,
        int(node.tls),
        node.ca_file,
        node.cert_file,
        node.key_file,
        node.dicomweb_url,
        node.timeout_s,
        node.retries,
    )
    with store.transaction() as conn:
        exists = conn.execute("SELECT 1 FROM pacs_nodes WHERE name = ?", (node.name,)).fetchone() is not None
        if exists and not replace:
            raise ValueError(f"a PACS node named {node.name!r} exists already (use --replace to update it)")
        if exists:
            conn.execute("DELETE FROM pacs_nodes WHERE name = ?", (node.name,))
        conn.execute(
            f"INSERT INTO pacs_nodes ({_COLUMNS}, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, now, now),
        )
        record_access(
            conn,
            access,
            "pacs.node_update" if exists else "pacs.node_add",
            objects=[AuditObject("pacs_node", node.name)],
            details={"ae_title": node.ae_title, "host": node.host, "port": node.port, "tls": node.tls},
        )


def remove_node(store: Store, access: Access, name: str) -> None:
    _require(access)
    with store.transaction() as conn:
        if conn.execute("DELETE FROM pacs_nodes WHERE name = ?", (name,)).rowcount == 0:
            raise PacsError(f"no PACS node named {name!r} ('radplan pacs list' shows them)")
        record_access(conn, access, "pacs.node_remove", objects=[AuditObject("pacs_node", name)])


def _row(row: tuple[object, ...]) -> PacsNode:
    name, aet, host, port, tls, ca, cert, key, web, timeout, retries = row
    return PacsNode(
        name=str(name),
        ae_title=str(aet),
        host=str(host),
        port=int(str(port)),
        tls=bool(tls),
        ca_file=str(ca),
        cert_file=str(cert),
        key_file=str(key),
        dicomweb_url=str(web),
        timeout_s=float(str(timeout)),
        retries=int(str(retries)),
    )


def list_nodes(store: Store) -> list[PacsNode]:
    """Every configured node (configuration, not patient data: no permission needed to read it)."""
    return [_row(r) for r in store.query(f"SELECT {_COLUMNS} FROM pacs_nodes ORDER BY name")]


def get_node(store: Store, name: str) -> PacsNode:
    rows = store.query(f"SELECT {_COLUMNS} FROM pacs_nodes WHERE name = ?", (name,))
    if not rows:
        raise PacsError(f"no PACS node named {name!r} ('radplan pacs list' shows them; an admin adds one)")
    return _row(rows[0])
