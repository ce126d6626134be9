"""DICOM TLS (TLS 1.2+, both certificates verified) against an Orthanc with TLS on, using a CA made in the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import READER, DemoStudy, node_for
from orthanc_server import OrthancServer
from tls_ca import Pki, make_pki

from core.pacs.association import LocalAE
from core.pacs.nodes import PacsError
from core.pacs.query import FindQuery, echo, find
from core.store.store import Store

pytestmark = pytest.mark.pacs


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_orthanc(
    tmp_path_factory: pytest.TempPathFactory, pki: Pki, demo_study: DemoStudy, move_port: int
) -> Iterator[OrthancServer]:
    server = OrthancServer(
        tmp_path_factory.mktemp("orthanc-tls"),
        modalities={"RADPLANTEST": move_port},
        extra={
            "DicomTlsEnabled": True,
            "DicomTlsCertificate": str(pki.server_cert),
            "DicomTlsPrivateKey": str(pki.server_key),
            "DicomTlsTrustedCertificates": str(pki.ca),
            "DicomTlsRemoteCertificateRequired": True,
        },
    ).start()
    try:
        yield server
    finally:
        server.stop(kill=True)


def tls_node(server: OrthancServer, pki: Pki, **kw: object) -> object:
    values: dict[str, object] = {
        "tls": True,
        "ca_file": str(pki.ca),
        "cert_file": str(pki.client_cert),
        "key_file": str(pki.client_key),
        **kw,
    }
    return node_for(server, **values)


def test_echo_and_find_over_tls(passphrase_store: Store, tls_orthanc: OrthancServer, pki: Pki, local: LocalAE) -> None:
    node = tls_node(tls_orthanc, pki)
    assert echo(local, node) > 0  # type: ignore[arg-type]
    assert find(passphrase_store, READER, local, node, FindQuery()).results == []  # type: ignore[arg-type]


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
        echo(local, tls_node(tls_orthanc, pki, ca_file=str(other.ca)))  # type: ignore[arg-type]


def test_client_without_a_trusted_certificate_is_refused(
    tls_orthanc: OrthancServer, pki: Pki, local: LocalAE, tmp_path: Path
) -> None:
    other = make_pki(tmp_path / "other", ca_cn="Some Other CA")
    with pytest.raises(PacsError):
        echo(local, tls_node(tls_orthanc, pki, cert_file=str(other.client_cert), key_file=str(other.client_key)))  # type: ignore[arg-type]
