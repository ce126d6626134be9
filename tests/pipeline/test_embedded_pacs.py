"""The embedded PACS against our own PACS client: C-ECHO, C-FIND, resumable C-GET and C-MOVE into a real store,
C-STORE of results back."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from conftest import Study, authorize

from core.pacs.association import LocalAE
from core.pacs.embedded import EmbeddedPacs, free_port
from core.pacs.nodes import PacsNode
from core.pacs.query import FindQuery, echo, find
from core.pacs.retrieve import retrieve_study
from core.pipeline.demo import pacs_files
from core.pipeline.dicom_io import note_to_sr
from core.security.roles import Permission
from core.store.store import Store


def _serve(study: Study, move_port: int = 0) -> tuple[EmbeddedPacs, PacsNode]:
    ct = pydicom.dcmread(sorted((study.folder / "ct").glob("*.dcm"))[0], stop_before_pixels=True)
    note_to_sr((study.folder / "note.txt").read_text(encoding="utf-8"), ct).save_as(
        study.folder / "note.dcm", enforce_file_format=True
    )
    pacs = EmbeddedPacs(move_destinations={"RADPLANTEST": ("127.0.0.1", move_port)} if move_port else {})
    pacs.add(pydicom.dcmread(p) for p in pacs_files(study.folder))
    pacs.start()
    return pacs, PacsNode("embedded", pacs.ae_title, "127.0.0.1", pacs.port, timeout_s=10.0, retries=1)


def _count(store: Store, study_uid: str) -> int:
    rows = store.query(
        "SELECT count(*) FROM instances i JOIN series se ON se.id = i.series_fk JOIN studies st ON "
        "st.id = se.study_fk WHERE st.study_uid = ?",
        (study_uid,),
    )
    return int(str(rows[0][0]))


@pytest.mark.parametrize("method", ["get", "move"])
def test_retrieve_from_the_embedded_pacs_is_complete(small_study: Study, store: Store, method: str) -> None:
    port = free_port()
    pacs, node = _serve(small_study, port)
    local = LocalAE("RADPLANTEST", storage_port=port, bind_address="127.0.0.1")
    try:
        assert echo(local, node) >= 0.0
        found = find(store, authorize(Permission.READ_PATIENT_DATA), local, node,
                     FindQuery(patient_id=small_study.manifest.patient_id))  # fmt: skip
        assert [r.study_uid for r in found.results] == [small_study.uid]
        assert found.results[0].n_instances == len(pacs_files(small_study.folder))
        report = retrieve_study(store, authorize(Permission.IMPORT_STUDIES), local, node, small_study.uid,
                                method=method)  # fmt: skip
    finally:
        pacs.stop()
    expected = small_study.manifest.n_ct_instances + 2  # CT, RT Dose, the note
    assert report.complete and report.total == expected
    assert _count(store, small_study.uid) == expected


def test_c_store_lands_in_the_embedded_pacs_and_its_folder(small_study: Study, tmp_path: Path) -> None:
    from pynetdicom import AE

    pacs = EmbeddedPacs(store_dir=tmp_path / "received").start()
    try:
        ds = pydicom.dcmread(small_study.folder / "rtstruct.dcm")
        ae = AE(ae_title="RADPLANTEST")
        ae.add_requested_context(ds.SOPClassUID)
        assoc = ae.associate("127.0.0.1", pacs.port, ae_title=pacs.ae_title)
        assert assoc.is_established
        status = assoc.send_c_store(ds)
        assoc.release()
    finally:
        pacs.stop()
    assert int(status.Status) == 0
    assert [str(d.SOPInstanceUID) for d in pacs.received] == [str(ds.SOPInstanceUID)]
    assert (tmp_path / "received" / f"{ds.SOPInstanceUID}.dcm").is_file()


def test_a_stopped_pacs_refuses_associations(small_study: Study) -> None:
    pacs, node = _serve(small_study)
    pacs.stop()
    from core.pacs.nodes import PacsError

    with pytest.raises(PacsError):
        echo(LocalAE("RADPLANTEST"), node)
