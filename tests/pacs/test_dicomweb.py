"""DICOMweb transport (QIDO-RS, WADO-RS, STOW-RS) against Orthanc's DICOMweb plugin."""

from __future__ import annotations

import http.server
import io
import threading
import urllib.request

import pydicom
import pytest
from conftest import IMPORTER, READER, DemoStudy
from orthanc_server import DICOMWEB_PLUGIN, OrthancServer

from core.pacs.dicomweb import qido_studies, stow, wado_retrieve_study
from core.pacs.nodes import PacsError
from core.pacs.query import FindQuery
from core.store.blobs import stored_bytes
from core.store.store import Store

pytestmark = [
    pytest.mark.pacs,
    pytest.mark.skipif(not DICOMWEB_PLUGIN.exists(), reason="orthanc-dicomweb not installed"),
]


def web(server: OrthancServer) -> str:
    return f"{server.url}/dicom-web"


def test_qido_filters(
    passphrase_store: Store, orthanc: OrthancServer, demo_study: DemoStudy, second_study: DemoStudy
) -> None:
    m = demo_study.manifest
    everything = qido_studies(passphrase_store, READER, web(orthanc), FindQuery())
    assert {r.study_uid for r in everything.results} == {m.study_instance_uid, second_study.study_uid}
    mine = qido_studies(passphrase_store, READER, web(orthanc), FindQuery(patient_id=m.patient_id))
    assert [(r.study_uid, r.patient_name, r.study_date) for r in mine.results] == [
        (m.study_instance_uid, m.patient_name, m.study_date)
    ]
    assert "CT" in mine.results[0].modalities
    assert qido_studies(passphrase_store, READER, web(orthanc), FindQuery(limit=1)).truncated
    with pytest.raises(PacsError, match="cannot be reached"):
        qido_studies(passphrase_store, READER, "http://127.0.0.1:9/dicom-web", FindQuery())


def test_wado_retrieve_resumes_and_is_complete(
    passphrase_store: Store, orthanc: OrthancServer, demo_study: DemoStudy
) -> None:
    from core.dicom.importer import import_paths

    import_paths(passphrase_store, IMPORTER, demo_study.ct_files[:5])
    report = wado_retrieve_study(passphrase_store, IMPORTER, web(orthanc), demo_study.study_uid)
    n = len(demo_study.files)
    assert (report.already_present, report.stored) == (5, n - 5)
    status = passphrase_store.query("SELECT status FROM studies WHERE study_uid = ?", (demo_study.study_uid,))
    assert status[0][0] == "complete"
    stored = {
        sop: stored_bytes(passphrase_store.conn, blob, inline)
        for sop, blob, inline in passphrase_store.query(
            "SELECT i.sop_uid, i.blob, d.data FROM instances i LEFT JOIN instance_data d ON d.instance_fk = i.id"
        )
    }
    for path in demo_study.files[5:]:
        ds = pydicom.dcmread(path)
        if str(ds.SOPInstanceUID) in stored:
            assert pydicom.dcmread(io.BytesIO(stored[str(ds.SOPInstanceUID)])) == ds  # the data set, unchanged
    again = wado_retrieve_study(passphrase_store, IMPORTER, web(orthanc), demo_study.study_uid)
    assert (again.already_present, again.stored) == (n, 0)


def test_stow(empty_orthanc: OrthancServer, demo_study: DemoStudy) -> None:
    accepted = stow(web(empty_orthanc), [p.read_bytes() for p in demo_study.files[:3]])
    assert accepted == 3 and empty_orthanc.instance_count() == 3


class _FailingSeriesProxy(http.server.ThreadingHTTPServer):
    """Forwards DICOMweb requests to a real Orthanc, but answers 503 to WADO-RS retrieves of whole series: a server
    that lists a study and then fails to deliver it."""

    def __init__(self, target: str) -> None:
        target_url = target

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if "/series/" in self.path and not self.path.rstrip("/").endswith(("/instances", "/metadata")):
                    self.send_error(503, "series retrieval unavailable")
                    return
                request = urllib.request.Request(  # noqa: S310 - the test Orthanc on loopback
                    target_url + self.path, headers={"Accept": self.headers["Accept"]}
                )
                with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                    body = answer.read()
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.headers["Content-Type"])
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def test_wado_retrieve_that_fails_midway_marks_an_imported_study_partial(
    passphrase_store: Store, orthanc: OrthancServer, demo_study: DemoStudy
) -> None:
    from core.dicom.importer import import_paths

    import_paths(passphrase_store, IMPORTER, demo_study.ct_files[:5])
    status = "SELECT status FROM studies WHERE study_uid = ?"
    assert passphrase_store.query(status, (demo_study.study_uid,))[0][0] == "complete"  # all a file import knows
    proxy = _FailingSeriesProxy(orthanc.url)
    try:
        with pytest.raises(PacsError, match="503"):
            wado_retrieve_study(passphrase_store, IMPORTER, f"{proxy.url}/dicom-web", demo_study.study_uid)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert passphrase_store.query(status, (demo_study.study_uid,))[0][0] == "partial"
    assert passphrase_store.query("SELECT count(*) FROM instances")[0][0] == 5  # what was there is kept
    report = wado_retrieve_study(passphrase_store, IMPORTER, web(orthanc), demo_study.study_uid)
    assert (report.already_present, report.stored) == (5, len(demo_study.files) - 5)
    assert passphrase_store.query(status, (demo_study.study_uid,))[0][0] == "complete"
