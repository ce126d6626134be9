"""Opening associations with a PACS node: our AE, presentation contexts, timeouts, optional DICOM TLS."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.uid import (
    JPEG2000,
    UID,
    ComprehensiveSRStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForPresentation,
    EncapsulatedPDFStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    EnhancedSRStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    KeyObjectSelectionDocumentStorage,
    MRImageStorage,
    NuclearMedicineImageStorage,
    PositronEmissionTomographyImageStorage,
    RLELossless,
    RTDoseStorage,
    RTPlanStorage,
    RTStructureSetStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
    SpatialRegistrationStorage,
    UltrasoundImageStorage,
)
from pynetdicom import AE, build_role, evt
from pynetdicom._handlers import (
    standard_dimse_recv_handler,
    standard_dimse_sent_handler,
    standard_pdu_recv_handler,
    standard_pdu_sent_handler,
)
from pynetdicom.association import Association

from core.pacs.dimse_fast import fast_store_messages
from core.pacs.nodes import PacsError, PacsNode

__all__ = [
    "DUL_POLL_S",
    "FIND_MODEL",
    "GET_MODEL",
    "LOCAL_TRANSFER_SYNTAXES",
    "MOVE_MODEL",
    "RETRIEVE_SOP_CLASSES",
    "VERIFICATION",
    "LocalAE",
    "make_ae",
    "open_association",
    "tls_context",
    "tune_association",
]

log = logging.getLogger(__name__)

VERIFICATION = UID("1.2.840.10008.1.1")
FIND_MODEL = UID("1.2.840.10008.5.1.4.1.2.2.1")  # Study Root Query/Retrieve Information Model - FIND
MOVE_MODEL = UID("1.2.840.10008.5.1.4.1.2.2.2")
GET_MODEL = UID("1.2.840.10008.5.1.4.1.2.2.3")

#: Uncompressed transfer syntaxes, proposed together in one context per SOP class.
_NATIVE = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian]
#: Compressed ones, one context each for image classes, so the PACS can send what it stores without transcoding.
_COMPRESSED = [JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless, JPEG2000, JPEGBaseline8Bit]
LOCAL_TRANSFER_SYNTAXES: tuple[UID, ...] = (*_NATIVE, *_COMPRESSED)
_IMAGE_CLASSES = [
    CTImageStorage,
    MRImageStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    PositronEmissionTomographyImageStorage,
    NuclearMedicineImageStorage,
    SecondaryCaptureImageStorage,
    DigitalXRayImageStorageForPresentation,
    UltrasoundImageStorage,
]
#: The storage SOP classes a retrieve accepts (C-GET needs them negotiated up front, with the SCP role).
RETRIEVE_SOP_CLASSES: tuple[UID, ...] = (
    *_IMAGE_CLASSES,
    RTStructureSetStorage,
    RTDoseStorage,
    RTPlanStorage,
    SegmentationStorage,
    SpatialRegistrationStorage,
    EncapsulatedPDFStorage,
    ComprehensiveSRStorage,
    EnhancedSRStorage,
    KeyObjectSelectionDocumentStorage,
)


@dataclass(frozen=True)
class LocalAE:
    """Our side: AE title (settings.ae_title) and the storage SCP port for C-MOVE (settings.storage_port)."""

    ae_title: str
    storage_port: int = 11112
    #: Largest PDU we accept, in bytes (0: no limit, the peer's own maximum applies).
    max_pdu: int = 0
    #: Address the storage SCP listens on ("" = all interfaces).
    bind_address: str = ""


def tls_context(node: PacsNode, *, server: bool = False) -> ssl.SSLContext:
    """A TLS 1.2+ context (BCP 195): the peer's certificate verified against node.ca_file, ours presented."""
    purpose = ssl.Purpose.CLIENT_AUTH if server else ssl.Purpose.SERVER_AUTH
    ctx = ssl.create_default_context(purpose, cafile=node.ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if server:
        ctx.verify_mode = ssl.CERT_REQUIRED
    if node.cert_file:
        ctx.load_cert_chain(node.cert_file, node.key_file or None)
    return ctx


def _tls_failure(node: PacsNode) -> str:
    """Why a TLS handshake with the node fails (certificate not trusted, ours refused, ...), or "" if it works."""
    try:
        with (
            socket.create_connection((node.host, node.port), timeout=node.timeout_s) as raw,
            tls_context(node).wrap_socket(raw, server_hostname=node.host) as tls,
        ):
            tls.recv(0)
    except ssl.SSLCertVerificationError as exc:
        return f"the PACS certificate was not accepted ({exc.verify_message}); check --ca"
    except ssl.SSLError as exc:
        return str(exc.reason or exc)
    except OSError as exc:
        return str(exc)
    return ""


#: Seconds the DUL reactor sleeps when idle; pynetdicom's 1 ms adds up to a millisecond per sub-operation (one
#: instance) of a retrieve; 0.1 ms measured 25-40 % more throughput on a C-GET (bench/pacs_retrieve.py).
DUL_POLL_S = 0.0001


_STANDARD_LOG_HANDLERS = (
    (evt.EVT_DIMSE_RECV, standard_dimse_recv_handler),
    (evt.EVT_DIMSE_SENT, standard_dimse_sent_handler),
    (evt.EVT_PDU_RECV, standard_pdu_recv_handler),
    (evt.EVT_PDU_SENT, standard_pdu_sent_handler),
)


def tune_association(assoc: Association, *, short_poll: bool = True) -> None:
    """Tune an established association for throughput: the DUL idle poll shortened when `short_poll` (a private
    pynetdicom knob; ignored if it ever disappears), Nagle's algorithm off on its socket (TCP_NODELAY, as DCMTK does
    with TCP_NODELAY=1), whole PDUs read with large reads (`_recv_exactly`), pynetdicom's per-message log
    handlers unbound unless it logs at DEBUG, and C-STORE requests and responses decoded and encoded directly
    (`core.pacs.dimse_fast`).

    pynetdicom writes a DIMSE request's command set and its identifier as two PDUs; with Nagle on, the second one
    waits for the peer's delayed ACK of the first (40 ms on Linux): every C-FIND or C-GET request cost 40 ms more
    (a study-level C-FIND against Orthanc: 88 ms, with TCP_NODELAY 46 ms)."""
    dul = getattr(assoc, "dul", None)
    if short_poll and dul is not None and hasattr(dul, "_run_loop_delay"):
        dul._run_loop_delay = DUL_POLL_S
    if not logging.getLogger("pynetdicom").isEnabledFor(logging.DEBUG):
        # pynetdicom's default per-PDU and per-message log handlers format every C-STORE's command set (pydicom
        # decoding) even when nothing is logged: about a fifth of a retrieve's network CPU time.
        for event, handler in _STANDARD_LOG_HANDLERS:
            with contextlib.suppress(Exception):
                assoc.unbind(event, handler)
    transport = getattr(dul, "socket", None)
    sock = getattr(transport, "socket", None)
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if transport is not None and callable(getattr(transport, "recv", None)):
        transport.recv = types.MethodType(_recv_exactly, transport)
    dimse = getattr(assoc, "dimse", None)
    if dimse is not None:
        fast_store_messages(dimse)


#: Largest single read from the socket: pynetdicom reads 4 KiB at a time (38 000 reads, each a GIL hand-over, for a
#: 150 MB study); whole PDUs in large reads cost a fraction of that.
RECV_CHUNK = 1 << 20


#: Linux's TCP_QUICKACK (absent elsewhere): acknowledge received data at once instead of up to 40 ms later.
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def _recv_exactly(transport: Any, nr_bytes: int) -> bytearray:
    """pynetdicom's AssociationSocket.recv (read nr_bytes, or fewer if the connection closes), with recv_into a
    buffer of the PDU's size in reads of up to RECV_CHUNK instead of 4 KiB reads appended one by one.

    Every read first asks for an immediate ACK (TCP_QUICKACK, which Linux clears again by itself): a PACS that
    sends with Nagle's algorithm on holds the short last segment of each message until its data so far is
    acknowledged, and Linux delays that ACK up to 40 ms. Against Orthanc's C-MOVE that stalled about one
    instance in ten by ~45 ms (300 instances: 2.3 s instead of 1 s)."""
    sock = transport.socket
    buffer = bytearray(nr_bytes)
    view = memoryview(buffer)
    done = 0
    while done < nr_bytes:
        if _QUICKACK is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        got = sock.recv_into(view[done:], min(nr_bytes - done, RECV_CHUNK))
        if not got:  # the connection closed: what was read so far, as pynetdicom returns it
            break
        done += got
    view.release()
    if done < nr_bytes:
        del buffer[done:]
    return buffer


def make_ae(local: LocalAE, node: PacsNode) -> AE:
    ae = AE(ae_title=local.ae_title)
    ae.maximum_pdu_size = local.max_pdu
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = node.timeout_s
    ae.connection_timeout = node.timeout_s
    return ae


@contextlib.contextmanager
def open_association(
    local: LocalAE,
    node: PacsNode,
    *,
    query: Sequence[UID] = (),
    storage_scp: bool = False,
    storage_scu: Sequence[UID] = (),
    evt_handlers: Sequence[tuple[Any, Any]] = (),
) -> Iterator[Association]:
    """An established association with `node` (released, or aborted on error, afterwards).

    query: Q/R models (or Verification) to propose; storage_scp: propose RETRIEVE_SOP_CLASSES with us as the SCP
    (what C-GET needs); storage_scu: storage classes we send with C-STORE. A refusal raises PacsError.
    """
    ae = make_ae(local, node)
    for uid in query:
        ae.add_requested_context(uid)
    roles = []
    if storage_scp:
        for uid in RETRIEVE_SOP_CLASSES:
            ae.add_requested_context(uid, _NATIVE)
            roles.append(build_role(uid, scp_role=True))
            if uid in _IMAGE_CLASSES:
                for ts in _COMPRESSED:
                    ae.add_requested_context(uid, [ts])
    for uid in storage_scu:
        ae.add_requested_context(uid, list(LOCAL_TRANSFER_SYNTAXES))
    tls_args = (tls_context(node), node.host) if node.tls else None
    try:
        assoc = ae.associate(
            node.host,
            node.port,
            ae_title=node.ae_title,
            max_pdu=local.max_pdu,
            ext_neg=roles,  # type: ignore[arg-type]
            tls_args=tls_args,
            evt_handlers=list(evt_handlers),
        )
    except (OSError, ssl.SSLError) as exc:
        raise PacsError(f"cannot connect to PACS {node.name} ({node.host}:{node.port}): {exc}") from exc
    if not assoc.is_established:
        ae.shutdown()
        if assoc.is_rejected:
            raise PacsError(
                f"PACS {node.name} refused the association (called AE {node.ae_title!r}, calling AE "
                f"{local.ae_title!r}): check both AE titles and that the PACS knows this workstation"
            )
        why = _tls_failure(node) if node.tls else ""
        raise PacsError(
            f"no association with PACS {node.name} at {node.host}:{node.port} (AE {node.ae_title!r}): "
            + (f"TLS failed: {why}" if why else "connection refused, timed out or aborted")
        )
    # The short poll pays where instances stream in or out on this association; a C-MOVE or query association
    # mostly waits, and polling it every 0.1 ms cost 0.3-0.5 CPU-s (and the GIL) per C-MOVE retrieve.
    tune_association(assoc, short_poll=storage_scp or bool(storage_scu))
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    else:
        if assoc.is_established:
            assoc.release()
    finally:
        ae.shutdown()
