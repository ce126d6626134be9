"""A private Orthanc (Debian package) on free loopback ports, for tests and benchmarks.

Each instance has its own storage folder and JSON configuration, registers the given AEs as modalities (so C-MOVE
and C-GET to them are allowed; C-MOVE to those in tls_modalities over DICOM TLS), checks the called AE title (a
wrong one is refused), loads the DICOMweb plugin when present, and is stopped (or killed) by us.
The system Orthanc service is never used or touched.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ORTHANC", "OrthancServer", "free_port", "storescu"]

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OrthancServer:
    workdir: Path
    aet: str = "ORTHANC"
    #: AE title -> port on 127.0.0.1 of the nodes Orthanc may send to (C-MOVE destinations, C-GET callers).
    modalities: dict[str, int] = field(default_factory=dict)
    #: AE titles of `modalities` that Orthanc connects to with DICOM TLS ("UseDicomTls"; its DicomTls* options apply).
    tls_modalities: tuple[str, ...] = ()
    #: Extra configuration options (e.g. DICOM TLS), merged over the defaults.
    extra: dict[str, object] = field(default_factory=dict)
    dicom_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def config(self) -> dict[str, object]:
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        return {
            "Name": "radplan-test",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "StorageCompression": False,
            "HttpPort": self.http_port,
            "HttpServerEnabled": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowMove": True,
            "DicomAlwaysAllowGet": True,
            "DicomCheckModalityHost": False,
            "UnknownSopClassAccepted": True,
            "DicomModalities": {aet.lower(): self._modality(aet, port) for aet, port in self.modalities.items()},
            "Plugins": [str(DICOMWEB_PLUGIN)] if DICOMWEB_PLUGIN.exists() else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "LimitFindResults": 0,
            "LimitFindInstances": 0,
            **self.extra,
        }

    def _modality(self, aet: str, port: int) -> object:
        if aet in self.tls_modalities:
            return {"AET": aet, "Host": "127.0.0.1", "Port": port, "UseDicomTls": True}
        return [aet, "127.0.0.1", port]

    def start(self, timeout_s: float = 30.0) -> OrthancServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "orthanc.json"
        config.write_text(json.dumps(self.config(), indent=2))
        log = open(self.workdir / "orthanc.log", "ab")  # noqa: SIM115 - kept open for the process's lifetime
        self.process = subprocess.Popen([ORTHANC, str(config)], stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}; see {self.workdir}/orthanc.log")
            try:
                with urllib.request.urlopen(f"{self.url}/system", timeout=1) as resp:  # noqa: S310 - our http URL
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout_s} s; see {self.workdir}/orthanc.log")

    def stop(self, *, kill: bool = False) -> None:
        """Stop it (SIGTERM, or SIGKILL with kill=True, as a crash would) and wait for the process."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def get_json(self, path: str) -> object:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as resp:  # noqa: S310 - our http URL
            return json.loads(resp.read())

    def instance_count(self) -> int:
        stats = self.get_json("/statistics")
        assert isinstance(stats, dict)
        return int(stats["CountInstances"])

    def upload(self, files: list[Path]) -> None:
        """DCMTK storescu; with DICOM TLS on (plain DICOM refused), the REST API (POST /instances) instead."""
        if not self.extra.get("DicomTlsEnabled"):
            storescu(self, files)
            return
        for path in files:
            request = urllib.request.Request(f"{self.url}/instances", data=path.read_bytes(), method="POST")  # noqa: S310
            with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310 - our http URL
                answer = json.loads(resp.read())
            if answer.get("Status") not in ("Success", "AlreadyStored"):
                raise RuntimeError(f"Orthanc did not store {path}: {answer}")


def storescu(server: OrthancServer, files: list[Path], calling_aet: str = "STORESCU") -> None:
    """Upload with DCMTK storescu (one association)."""
    subprocess.run(
        ["storescu", "-aet", calling_aet, "-aec", server.aet, "127.0.0.1", str(server.dicom_port), *map(str, files)],
        check=True,
        capture_output=True,
        timeout=600,
    )
