"""Our storage SCP for C-MOVE: the PACS connects back to it with the instances, in plain TCP or DICOM TLS."""

from __future__ import annotations

import ssl
import time

from pynetdicom import AE, evt
from pynetdicom.transport import AssociationServer

from core.pacs.association import LOCAL_TRANSFER_SYNTAXES, RETRIEVE_SOP_CLASSES, LocalAE, tls_context, tune_association
from core.pacs.nodes import PacsError, PacsNode
from core.pacs.receiver import StoreSink

__all__ = ["SERVER_POLL_S", "StorageScp"]

#: How often pynetdicom's acceptor loop looks for a shutdown request. socketserver's default (0.5 s) made every
#: C-MOVE retrieve wait up to half a second for its storage SCP to stop (retrieves took 1.5, 2.0, 2.5 or 3.0 s).
SERVER_POLL_S = 0.02
_serve_forever = AssociationServer.serve_forever


def _serve_forever_quick(self: AssociationServer, poll_interval: float = SERVER_POLL_S) -> None:
    _serve_forever(self, poll_interval)


AssociationServer.serve_forever = _serve_forever_quick  # type: ignore[method-assign,assignment]


class StorageScp:
    """Our storage SCP for C-MOVE, for the duration of one retrieve: plain TCP, or DICOM TLS when the node uses TLS.

    Over TLS it presents the node's certificate (cert_file/key_file: the same certificate we present as a client)
    and requires the PACS's certificate, verified against the node's CA (tls_context(node, server=True)). Why a
    handshake failed is kept (`tls_failures`): the PACS only tells us that its sub-operations failed.
    """

    def __init__(self, local: LocalAE, node: PacsNode, sink: StoreSink) -> None:
        self.local = local
        self.associations = 0
        self.tls_failures: list[str] = []
        ctx = self._tls_context(node) if node.tls else None
        self.ae = AE(ae_title=local.ae_title)
        self.ae.maximum_pdu_size = local.max_pdu
        for uid in RETRIEVE_SOP_CLASSES:
            self.ae.add_supported_context(uid, list(LOCAL_TRANSFER_SYNTAXES))
        try:
            self.ae.start_server(
                (local.bind_address, local.storage_port),
                block=False,
                ssl_context=ctx,
                evt_handlers=[(evt.EVT_C_STORE, sink.handle), (evt.EVT_ESTABLISHED, self._established)],
            )
        except OSError as exc:
            raise PacsError(
                f"cannot start our storage SCP for C-MOVE on port {local.storage_port}: {exc} "
                "(setting storage_port; or use --method get)"
            ) from exc

    def _established(self, event: evt.Event) -> None:
        self.associations += 1
        tune_association(event.assoc)

    def _tls_context(self, node: PacsNode) -> ssl.SSLContext:
        if not node.cert_file:
            raise PacsError(
                f"C-MOVE from TLS node {node.name} needs our certificate (--cert/--key): the PACS connects back to "
                "our storage SCP over TLS and the SCP presents it. Add them to the node, or use --method get."
            )
        ctx = tls_context(node, server=True)
        failures = self.tls_failures

        class _Socket(ssl.SSLSocket):
            """Keeps why an incoming TLS handshake failed (pynetdicom's server drops the error silently)."""

            def do_handshake(self, block: bool = False) -> None:
                try:
                    super().do_handshake(block)
                except OSError as exc:
                    failures.append(_handshake_failure(exc))
                    raise

        ctx.sslsocket_class = _Socket
        return ctx

    def begin_attempt(self) -> None:
        self.associations = 0
        self.tls_failures.clear()

    def why_nothing_arrived(self) -> str:
        """After an attempt that delivered nothing: what we saw of the PACS connecting back ("" if it did)."""
        deadline = time.monotonic() + 0.5  # the PACS may answer the C-MOVE before our side has seen the handshake fail
        while not self.associations and not self.tls_failures and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.associations:
            return ""
        where = f"our storage SCP (AE {self.local.ae_title!r}, port {self.local.storage_port})"
        if self.tls_failures:
            return f"the PACS could not open a DICOM TLS association to {where}: {self.tls_failures[-1]}"
        return f"the PACS did not connect to {where}"

    def shutdown(self) -> None:
        self.ae.shutdown()


def _handshake_failure(exc: OSError) -> str:
    reason = getattr(exc, "reason", None) or str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"its certificate was not accepted ({exc.verify_message}): it must be signed by the node's CA (--ca) "
            "and allow TLS client authentication"
        )
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNSUPPORTED_PROTOCOL", "UNEXPECTED_EOF_WHILE_READING"):
        return (
            f"it did not speak TLS ({reason}); the PACS must use DICOM TLS towards our AE (Orthanc: "
            '"UseDicomTls": true in its DicomModalities entry)'
        )
    if "ALERT" in str(reason).upper():
        return (
            f"it refused our certificate ({reason}): the PACS must trust the CA of the node's --cert, and the "
            "certificate must allow TLS server authentication"
        )
    return str(reason)
