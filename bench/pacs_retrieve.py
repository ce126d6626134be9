"""PACS retrieve benchmark: the same 300-instance CT study from the same Orthanc, with RadPlan and with DCMTK.

  radplan: core.pacs.retrieve.retrieve_study, the code behind `radplan pacs retrieve NAME --study UID` (C-GET, one
           association, received bytes stored in the SQLCipher store in batches with their audit entries); timed
           from the association request until the last batch is committed;
  network: (for attribution) the same association and C-GET with the received bytes joined as the store's
           receiver does (core.pacs.receiver.encoded_instance), counted and dropped;
  getscu:  DCMTK getscu (TCP_NODELAY=1) writing the files into a folder; timed as the wall clock of the process;
           with --method move the peer is DCMTK movescu with its own storage SCP (--port), likewise.

A private Orthanc (Debian package) on free loopback ports holds only the CT series (uploaded with storescu). Each
round starts from an empty store / empty folder; the order alternates. MB/s are 10^6 bytes of received DICOM
(preamble and file meta included) per second; the median over --repeat rounds is printed with the ratio. CPU
seconds are printed too (ours: this process, every thread; getscu: the child process), because on a small shared
machine the wall-clock ratio moves with the load of other work while the CPU cost per study does not.

Usage: .venv/bin/python bench/pacs_retrieve.py [--shape 512x512x300] [--repeat 3] [--method get|move]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "pacs"))

from orthanc_server import OrthancServer, free_port  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402
from pynetdicom import evt  # noqa: E402

from core.demo import generate_demo_study  # noqa: E402
from core.pacs.association import GET_MODEL, LocalAE, open_association  # noqa: E402
from core.pacs.nodes import PacsNode  # noqa: E402
from core.pacs.receiver import encoded_instance  # noqa: E402
from core.pacs.retrieve import retrieve_study  # noqa: E402
from core.security.roles import Permission, Role  # noqa: E402
from core.security.session import Access, User  # noqa: E402
from core.store.store import Store  # noqa: E402

ACCESS = Access(User(1, "bench", Role.RADIOLOGIST), Permission.IMPORT_STUDIES)
OUR_AET, GETSCU_AET = "RADPLANBENCH", "GETSCUBENCH"


def radplan_round(work: Path, node: PacsNode, local: LocalAE, study_uid: str, method: str) -> tuple[float, int, float]:
    """(seconds, bytes, CPU seconds) of retrieve_study into a new store (the store's creation is not counted)."""
    store = Store.create(work / "store", key_mode="passphrase", passphrase=lambda _p: "bench-passphrase-1")
    try:
        cpu0 = _cpu("radplan")
        report = retrieve_study(store, ACCESS, local, node, study_uid, method=method)  # type: ignore[arg-type]
        cpu = _cpu("radplan") - cpu0
    finally:
        store.close()
    assert report.complete, report
    return report.seconds, report.received_bytes, cpu


def network_round(node: PacsNode, local: LocalAE, study_uid: str) -> tuple[float, int]:
    """RadPlan's receive path alone: the same association and C-GET, received bytes counted and dropped."""
    received = [0]

    def discard(event: Any) -> int:
        received[0] += len(encoded_instance(event))  # what StoreSink.handle queues
        return 0x0000

    ds = Dataset()
    ds.QueryRetrieveLevel, ds.StudyInstanceUID = "STUDY", study_uid
    start = time.perf_counter()
    with open_association(
        local, node, query=[GET_MODEL], storage_scp=True, evt_handlers=[(evt.EVT_C_STORE, discard)]
    ) as a:
        for _status, _ in a.send_c_get(ds, GET_MODEL):
            pass
    return time.perf_counter() - start, received[0]


def dcmtk_round(
    work: Path, server: OrthancServer, study_uid: str, n: int, *, move_port: int | None = None
) -> tuple[float, int]:
    """DCMTK getscu, or with move_port movescu with its own storage SCP on that port (the peer for --method move),
    TCP_NODELAY=1, writing the files into a folder; (wall seconds of the process, bytes written)."""
    tool = "getscu" if move_port is None else "movescu"
    out = work / tool
    out.mkdir()
    move = [] if move_port is None else ["-aem", GETSCU_AET, "--port", str(move_port)]
    cmd = [tool, "-S", "-aet", GETSCU_AET, "-aec", server.aet, *move, "-k", "QueryRetrieveLevel=STUDY",
           "-k", f"StudyInstanceUID={study_uid}", "-od", str(out), "127.0.0.1", str(server.dicom_port)]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "TCP_NODELAY": "1"})
    seconds = time.perf_counter() - start
    files = list(out.iterdir())
    assert len(files) == n, f"{tool} wrote {len(files)} files, expected {n}"
    return seconds, sum(f.stat().st_size for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="512x512x300", help="CT size COLSxROWSxSLICES")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--method", choices=["get", "move"], default="get")
    args = parser.parse_args()
    cols, rows, slices = (int(v) for v in args.shape.split("x"))
    with tempfile.TemporaryDirectory(prefix="radplan-bench-pacs-") as tmp:
        work = Path(tmp)
        manifest = generate_demo_study(work / "demo", seed=0, shape=(cols, rows, slices), spacing_mm=(0.8, 0.8, 1.0))
        ct_files = sorted((work / "demo" / "ct").glob("*.dcm"))
        move_port, peer_port = free_port(), free_port()
        server = OrthancServer(work / "orthanc", modalities={OUR_AET: move_port, GETSCU_AET: peer_port}).start()
        try:
            server.upload(ct_files)
            node = PacsNode("bench", server.aet, "127.0.0.1", server.dicom_port, timeout_s=60.0, retries=0)
            local = LocalAE(OUR_AET, storage_port=move_port, bind_address="127.0.0.1")
            results: dict[str, list[float]] = {"radplan": [], "getscu": [], "network": []}
            sizes: dict[str, int] = {}
            cpus: dict[str, list[float]] = {"radplan": [], "getscu": [], "network": []}
            for i in range(args.repeat):
                order = ["radplan", "getscu", "network"] if i % 2 == 0 else ["network", "getscu", "radplan"]
                for tool in order:
                    round_dir = work / f"round{i}-{tool}"
                    round_dir.mkdir()
                    cpu0 = _cpu(tool)
                    if tool == "radplan":
                        seconds, size, cpu = radplan_round(
                            round_dir, node, local, manifest.study_instance_uid, args.method
                        )
                    elif tool == "network":
                        seconds, size = network_round(node, local, manifest.study_instance_uid)
                        cpu = _cpu(tool) - cpu0
                    else:
                        seconds, size = dcmtk_round(
                            round_dir, server, manifest.study_instance_uid, len(ct_files),
                            move_port=peer_port if args.method == "move" else None,
                        )  # fmt: skip
                        cpu = _cpu(tool) - cpu0
                    results[tool].append(size / 1e6 / seconds)
                    cpus[tool].append(cpu)
                    sizes[tool] = size
                    rate = size / 1e6 / seconds
                    label = "movescu" if tool == "getscu" and args.method == "move" else tool
                    print(
                        f"round {i + 1} {label:8} {size / 1e6:7.1f} MB in {seconds:6.2f} s = {rate:7.1f} MB/s, "
                        f"{cpu:5.2f} CPU-s"
                    )
        finally:
            server.stop()
    rp, gs = statistics.median(results["radplan"]), statistics.median(results["getscu"])
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"study: {len(ct_files)} CT instances {cols}x{rows}, {sizes['radplan'] / 1e6:.1f} MB; method {args.method}")
    print(f"radplan pacs retrieve ({args.method}): {rp:.1f} MB/s (median of {args.repeat})")
    peer = "movescu" if args.method == "move" else "getscu"
    print(f"DCMTK {peer} (TCP_NODELAY=1):   {gs:.1f} MB/s (median of {args.repeat})")
    print(f"ratio radplan / {peer}: {rp / gs:.2f}")
    net = statistics.median(results["network"])
    print(
        f"for attribution - radplan receive path without storing (C-GET): {net:.1f} MB/s "
        f"(ratio to {peer} {net / gs:.2f})"
    )
    c_rp, c_gs, c_net = (statistics.median(cpus[k]) for k in ("radplan", "getscu", "network"))
    print(f"CPU seconds (median): radplan {c_rp:.2f}, {peer} {c_gs:.2f}, receive path alone {c_net:.2f}")
    print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


def _cpu(tool: str) -> float:
    """CPU seconds so far of what runs ``tool``: this process (every thread), or the finished child processes."""
    who = resource.RUSAGE_CHILDREN if tool == "getscu" else resource.RUSAGE_SELF
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
