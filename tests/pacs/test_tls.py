"""DICOM TLS (TLS 1.2+, both certificates verified) against an Orthanc with TLS on, using a CA made in the test.

The Orthanc holds the demo study (uploaded over its REST API: its DICOM port speaks TLS only) and connects back to
our storage SCP with DICOM TLS for C-MOVE ("UseDicomTls" in its modality entry for our AE).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import IMPORTER, OUR_AET, READER, DemoStudy, node_for
from orthanc_server import OrthancServer
from test_retrieve import assert_same_as_source, stored_sops, study_status
from tls_ca import Pki, make_pki

from core.pacs.association import LocalAE
from core.pacs.nodes import PacsError, PacsNode
from core.pacs.query import FindQuery, echo, find
from core.pacs.retrieve import RetrieveCancelledError, RetrieveProgress, retrieve_study
from core.store.store import Store
from tests.conftest import ADMIN, ADMIN_PW, RAD, RAD_PW, Cli

pytestmark = pytest.mark.pacs


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def start_tls_orthanc(
    workdir: Path, pki: Pki, demo: DemoStudy, move_port: int, *, use_dicom_tls: bool = True, server_only: bool = False
) -> OrthancServer:
    """An Orthanc with DICOM TLS on (our certificate required) holding the demo study; it connects to our AE for
    C-MOVE with TLS (use_dicom_tls) or in plain TCP; server_only: its certificate is pki.server_only_cert."""
    cert, key = (pki.server_only_cert, pki.server_only_key) if server_only else (pki.server_cert, pki.server_key)
    server = OrthancServer(
        workdir,
        modalities={OUR_AET: move_port},
        tls_modalities=(OUR_AET,) if use_dicom_tls else (),
        extra={
            "DicomTlsEnabled": True,
            "DicomTlsCertificate": str(cert),
            "DicomTlsPrivateKey": str(key),
            "DicomTlsTrustedCertificates": str(pki.ca),
            "DicomTlsRemoteCertificateRequired": True,
        },
    ).start()
    try:
        server.upload(demo.files)
    except BaseException:
        server.stop(kill=True)
        raise
    return server


@pytest.fixture(scope="module")
def tls_orthanc(
    tmp_path_factory: pytest.TempPathFactory, pki: Pki, demo_study: DemoStudy, move_port: int
) -> Iterator[OrthancServer]:
    """Shared by this module's tests, which must not change what it holds."""
    server = start_tls_orthanc(tmp_path_factory.mktemp("orthanc-tls"), pki, demo_study, move_port)
    try:
        yield server
    finally:
        server.stop(kill=True)


def tls_node(server: OrthancServer, pki: Pki, **kw: object) -> PacsNode:
    values: dict[str, object] = {
        "tls": True,
        "ca_file": str(pki.ca),
        "cert_file": str(pki.client_cert),
        "key_file": str(pki.client_key),
        **kw,
    }
    return node_for(server, **values)


def test_echo_and_find_over_tls(
    passphrase_store: Store, tls_orthanc: OrthancServer, pki: Pki, local: LocalAE, demo_study: DemoStudy
) -> None:
    node = tls_node(tls_orthanc, pki)
    assert echo(local, node) > 0
    found = find(passphrase_store, READER, local, node, FindQuery())
    assert [r.study_uid for r in found.results] == [demo_study.study_uid]


def test_plain_connection_to_a_tls_port_fails(tls_orthanc: OrthancServer, local: LocalAE) -> None:
    with pytest.raises(PacsError):
        echo(local, node_for(tls_orthanc, timeout_s=3.0))


def test_server_from_another_ca_is_refused(
    tls_orthanc: OrthancServer, pki: Pki, local: LocalAE, tmp_path: Path
) -> None:
    other = make_pki(tmp_path / "other", ca_cn="Some Other CA")
    with pytest.raises(
        PacsError,
        match=r"TLS failed: the PACS certificate was not accepted \(self-signed certificate in certificate chain\)",
    ):
        echo(local, tls_node(tls_orthanc, pki, ca_file=str(other.ca)))


def test_client_without_a_trusted_certificate_is_refused(
    tls_orthanc: OrthancServer, pki: Pki, local: LocalAE, tmp_path: Path
) -> None:
    other = make_pki(tmp_path / "other", ca_cn="Some Other CA")
    with pytest.raises(PacsError):
        echo(local, tls_node(tls_orthanc, pki, cert_file=str(other.client_cert), key_file=str(other.client_key)))


@pytest.mark.parametrize("method", ["get", "move"])
def test_retrieve_over_tls_is_complete(
    passphrase_store: Store, tls_orthanc: OrthancServer, pki: Pki, local: LocalAE, demo_study: DemoStudy, method: str
) -> None:
    """C-GET on our TLS association; C-MOVE with Orthanc opening a TLS association to our storage SCP."""
    report = retrieve_study(
        passphrase_store,
        IMPORTER,
        local,
        tls_node(tls_orthanc, pki),
        demo_study.study_uid,
        method=method,  # type: ignore[arg-type]
    )
    n = tls_orthanc.instance_count()
    assert n == len(demo_study.files)
    assert (report.total, report.stored, report.received, report.complete, report.attempts) == (n, n, n, True, 1)
    assert study_status(passphrase_store, demo_study.study_uid) == "complete"
    assert_same_as_source(passphrase_store, demo_study)


def test_move_without_our_certificate_is_a_clear_error(
    passphrase_store: Store, tls_orthanc: OrthancServer, pki: Pki, local: LocalAE, demo_study: DemoStudy
) -> None:
    node = tls_node(tls_orthanc, pki, cert_file="", key_file="")
    with pytest.raises(PacsError, match=r"needs our certificate \(--cert/--key\).*or use --method get"):
        retrieve_study(passphrase_store, IMPORTER, local, node, demo_study.study_uid, method="move")
    assert stored_sops(passphrase_store) == []


def partial_then_failed_move(
    store: Store, node: PacsNode, good: PacsNode, local: LocalAE, demo: DemoStudy
) -> PacsError:
    """A C-GET over TLS (`good` node) cancelled after ten instances, then a C-MOVE from `node` that fails: nothing
    more arrives, what is stored stays, nothing is marked complete, the failure is audited and not retried."""
    cancel = threading.Event()

    def cancel_after_ten(p: RetrieveProgress) -> None:
        if p.done >= 10:
            cancel.set()

    with pytest.raises(RetrieveCancelledError):
        retrieve_study(store, IMPORTER, local, good, demo.study_uid, progress=cancel_after_ten, cancel=cancel)
    before = stored_sops(store)
    assert 10 <= len(before) < len(demo.files)
    with pytest.raises(PacsError) as exc:
        retrieve_study(store, IMPORTER, local, node, demo.study_uid, method="move", backoff_s=0.01)
    assert stored_sops(store) == before
    assert study_status(store, demo.study_uid) == "partial"
    audit = store.query("SELECT outcome, details FROM audit WHERE action = 'pacs.retrieve' ORDER BY seq")
    assert (
        len(audit) == 2
        and audit[1][0] == "minor_failure"
        and '"method":"move"' in str(audit[1][1])
        and '"complete":false' in str(audit[1][1])
    )
    assert '"attempts":1' in str(audit[1][1])  # a TLS set-up problem is not retried
    assert f"incomplete after 1 attempt(s): {len(before)}/{len(demo.files)} instances stored" in str(exc.value)
    return exc.value


def assert_second_attempt_completes(store: Store, node: PacsNode, local: LocalAE, demo: DemoStudy) -> None:
    kept = len(stored_sops(store))
    report = retrieve_study(store, IMPORTER, local, node, demo.study_uid, method="move")
    n = len(demo.files)
    assert (report.already_present, report.stored, report.received, report.complete) == (kept, n - kept, n - kept, True)
    assert study_status(store, demo.study_uid) == "complete"
    assert_same_as_source(store, demo)  # each instance once, those kept unchanged


def test_move_when_the_pacs_refuses_our_scp_certificate(
    passphrase_store: Store, tls_orthanc: OrthancServer, pki: Pki, local: LocalAE, demo_study: DemoStudy
) -> None:
    """Our certificate allows TLS client authentication only: Orthanc accepts it from our SCU (the C-FIND works)
    but refuses it from our storage SCP, so the C-MOVE delivers nothing."""
    client_only = tls_node(tls_orthanc, pki, cert_file=str(pki.client_only_cert), key_file=str(pki.client_only_key))
    assert echo(local, client_only) > 0
    error = partial_then_failed_move(passphrase_store, client_only, tls_node(tls_orthanc, pki), local, demo_study)
    assert f"the PACS could not open a DICOM TLS association to our storage SCP (AE {OUR_AET!r}" in str(error)
    assert "it refused our certificate (SSLV3_ALERT_UNSUPPORTED_CERTIFICATE)" in str(error)
    assert_second_attempt_completes(passphrase_store, tls_node(tls_orthanc, pki), local, demo_study)


@pytest.mark.parametrize("problem", ["no UseDicomTls", "its certificate is not for TLS clients"])
def test_move_when_our_scp_refuses_the_pacs(
    passphrase_store: Store, pki: Pki, local: LocalAE, demo_study: DemoStudy, move_port: int, tmp_path: Path,
    problem: str,
) -> None:  # fmt: skip
    """Orthanc connects to our storage SCP in plain TCP (no "UseDicomTls" for our AE), or presents a certificate
    that does not allow TLS client authentication: our SCP refuses the handshake and says why."""
    plain = problem == "no UseDicomTls"
    server = start_tls_orthanc(
        tmp_path / "orthanc", pki, demo_study, move_port, use_dicom_tls=not plain, server_only=not plain
    )
    try:
        node = tls_node(server, pki)
        error = partial_then_failed_move(passphrase_store, node, node, local, demo_study)
        assert "the PACS could not open a DICOM TLS association to our storage SCP" in str(error)
        if plain:
            assert '"UseDicomTls": true' in str(error) and "it did not speak TLS" in str(error)
        else:
            assert "its certificate was not accepted (unsuitable certificate purpose)" in str(error)
        fixed = start_tls_orthanc(tmp_path / "orthanc-fixed", pki, demo_study, move_port)
    finally:
        server.stop(kill=True)
    try:
        assert_second_attempt_completes(passphrase_store, tls_node(fixed, pki), local, demo_study)
    finally:
        fixed.stop(kill=True)


@pytest.mark.slow
def test_cli_retrieve_by_move_over_tls(
    initialised: Cli, cli_env: dict[str, str], tls_orthanc: OrthancServer, pki: Pki, demo_study: DemoStudy,
    move_port: int,
) -> None:  # fmt: skip
    Path(cli_env["RADPLAN_USER_CONFIG"]).write_text(f'ae_title = "{OUR_AET}"\nstorage_port = {move_port}\n')
    secrets = {"RADPLAN_PASSPHRASE": "store-passphrase-1"}
    initialised("pacs", "add", "secure", "--aet", tls_orthanc.aet, "--host", "127.0.0.1", "--port",
                str(tls_orthanc.dicom_port), "--tls", "--ca", str(pki.ca), "--cert", str(pki.client_cert),
                "--key", str(pki.client_key), "--timeout", "10",
                **secrets, RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW)  # fmt: skip
    as_rad = {**secrets, "RADPLAN_USER": RAD, "RADPLAN_PASSWORD": RAD_PW}
    uid = demo_study.study_uid
    got = initialised("pacs", "retrieve", "secure", "--study", uid, "--method", "move", "--json", **as_rad)
    n = len(demo_study.files)
    report = json.loads(got.stdout)
    assert (report["method"], report["total"], report["stored"], report["complete"]) == ("move", n, n, True)
    studies = json.loads(initialised("studies", "--json", **as_rad).stdout)
    assert [(s["study_uid"], s["instances"], s["status"]) for s in studies] == [(uid, n, "complete")]
