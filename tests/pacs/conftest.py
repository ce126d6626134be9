"""PACS fixtures: a private Orthanc (Debian package) with the demo study uploaded by DCMTK storescu."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from orthanc_server import ORTHANC, OrthancServer, free_port

from core.demo import DemoManifest, generate_demo_study
from core.pacs.association import LocalAE
from core.pacs.nodes import PacsNode
from core.security.roles import Permission, Role
from core.security.session import Access, User

OUR_AET = "RADPLANTEST"
IMPORTER = Access(User(2, "rad1", Role.RADIOLOGIST), Permission.IMPORT_STUDIES)
READER = Access(User(2, "rad1", Role.RADIOLOGIST), Permission.READ_PATIENT_DATA)
MANAGER = Access(User(1, "admin", Role.ADMIN), Permission.MANAGE_PACS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = [tool for tool in (ORTHANC, "storescu") if shutil.which(tool) is None]
    if not missing:
        return
    skip = pytest.mark.skip(reason=f"{', '.join(missing)} not installed: run installer/bootstrap.sh")
    for item in items:
        if "pacs" in item.keywords:
            item.add_marker(skip)


@dataclass(frozen=True)
class DemoStudy:
    folder: Path
    manifest: DemoManifest
    files: list[Path]
    ct_files: list[Path]

    @property
    def study_uid(self) -> str:
        return self.manifest.study_instance_uid


@pytest.fixture(scope="session")
def demo_study(tmp_path_factory: pytest.TempPathFactory) -> DemoStudy:
    folder = tmp_path_factory.mktemp("pacs-demo")
    manifest = generate_demo_study(folder, seed=7, shape=(96, 96, 24), spacing_mm=(3.0, 3.0, 5.0))
    files = sorted(folder.rglob("*.dcm"))
    return DemoStudy(folder, manifest, files, sorted((folder / "ct").glob("*.dcm")))


@pytest.fixture(scope="session")
def second_study(tmp_path_factory: pytest.TempPathFactory) -> DemoStudy:
    """Another patient's study (different ID, name, accession), so that queries have something to filter."""
    folder = tmp_path_factory.mktemp("pacs-demo-2")
    manifest = generate_demo_study(folder, seed=8, shape=(64, 64, 8), spacing_mm=(4.0, 4.0, 5.0))
    files = sorted(folder.rglob("*.dcm"))
    return DemoStudy(folder, manifest, files, sorted((folder / "ct").glob("*.dcm")))


@pytest.fixture(scope="session")
def move_port() -> int:
    """Our storage SCP port for C-MOVE, registered in every test Orthanc."""
    return free_port()


def start_orthanc(workdir: Path, move_port: int) -> OrthancServer:
    return OrthancServer(workdir, modalities={OUR_AET: move_port}).start()


@pytest.fixture(scope="session")
def orthanc(
    tmp_path_factory: pytest.TempPathFactory, demo_study: DemoStudy, second_study: DemoStudy, move_port: int
) -> Iterator[OrthancServer]:
    """A shared Orthanc holding the two demo studies; tests must not change them (send to `own_orthanc`)."""
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"), move_port)
    try:
        server.upload(demo_study.files + second_study.files)
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_orthanc(tmp_path: Path, demo_study: DemoStudy, move_port: int) -> Iterator[OrthancServer]:
    """An Orthanc of this test only (it may be killed and restarted), holding the demo study."""
    server = start_orthanc(tmp_path / "orthanc", move_port)
    try:
        server.upload(demo_study.files)
        yield server
    finally:
        server.stop(kill=True)  # its storage is thrown away anyway


@pytest.fixture
def empty_orthanc(tmp_path: Path, move_port: int) -> Iterator[OrthancServer]:
    """An empty Orthanc of this test only (a destination for C-STORE)."""
    server = start_orthanc(tmp_path / "orthanc-empty", move_port)
    try:
        yield server
    finally:
        server.stop(kill=True)


def node_for(server: OrthancServer, **kw: object) -> PacsNode:
    values: dict[str, object] = {
        "name": "orthanc",
        "ae_title": server.aet,
        "host": "127.0.0.1",
        "port": server.dicom_port,
        "timeout_s": 10.0,
        "retries": 2,
        **kw,
    }
    return PacsNode(**values)  # type: ignore[arg-type]


@pytest.fixture
def local(move_port: int) -> LocalAE:
    return LocalAE(ae_title=OUR_AET, storage_port=move_port, bind_address="127.0.0.1")
