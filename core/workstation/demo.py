"""A throw-away demo workspace (store in passphrase mode, an admin and a radiologist, the demo study imported):
what `radplan gui --smoke`, the GUI tests and the GUI benchmark start from."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from core.dicom.importer import import_paths
from core.security.roles import Permission, Role
from core.security.session import Session
from core.store.store import Store
from core.store.users import UserRepository

__all__ = ["DemoWorkspace", "build_demo_workspace"]

ADMIN, RADIOLOGIST, PHYSICIST = "admin", "rad1", "phys1"


@dataclass(frozen=True)
class DemoWorkspace:
    data_dir: Path
    demo_folder: Path
    store: Store
    study_uid: str
    passwords: dict[str, str]
    passphrase: str


def build_demo_workspace(
    root: Path,
    *,
    seed: int = 0,
    shape: tuple[int, int, int] = (128, 128, 48),
    spacing_mm: tuple[float, float, float] = (3.0, 3.0, 4.0),
) -> DemoWorkspace:
    """root/store (new store), root/demo (the demo study files) with users admin, rad1 and phys1."""
    from core.demo import generate_demo_study

    root = Path(root)
    passphrase = secrets.token_urlsafe(16)
    store = Store.create(root / "store", key_mode="passphrase", passphrase=lambda _p: passphrase)
    users = UserRepository(store)
    passwords = {name: secrets.token_urlsafe(12) for name in (ADMIN, RADIOLOGIST, PHYSICIST)}
    admin = users.create_first_admin(ADMIN, passwords[ADMIN])
    admin_access = Session(admin).authorize(Permission.MANAGE_USERS)
    users.add(admin_access, RADIOLOGIST, Role.RADIOLOGIST, passwords[RADIOLOGIST])
    users.add(admin_access, PHYSICIST, Role.PHYSICIST, passwords[PHYSICIST])
    manifest = generate_demo_study(root / "demo", seed=seed, shape=shape, spacing_mm=spacing_mm)
    radiologist = users.authenticate(RADIOLOGIST, passwords[RADIOLOGIST])
    report = import_paths(store, Session(radiologist).authorize(Permission.IMPORT_STUDIES), [root / "demo"])
    if not report.ok:
        raise RuntimeError(f"the demo study did not import cleanly: {report}")
    study_uid = manifest.study_instance_uid
    return DemoWorkspace(root / "store", root / "demo", store, study_uid, passwords, passphrase)
