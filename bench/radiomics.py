"""Radiomics benchmark: our ``clinical`` extraction vs a plain pyradiomics RadiomicsFeatureExtractor, same settings.

Both start from the same files (the demo study's CT as NRRD and its truth GTV mask as NIfTI) and compute the same
1130 features (original + LoG 1/2/3 mm + coif1 wavelet; 1 mm B-spline resampling, [-1000, 400] HU, bin width
25 HU, diagnostics off). Each run is a fresh subprocess: wall time and CPU time (with workers) of the extraction
call including the image read (imports excluded), and the peak resident memory of the main process and of its
largest worker. Prints the medians, the ratio, and the largest relative difference
over the common features, apart from the documented IBSI fixes (Kurtosis - 3, PCA axes N - 1; docs/radiomics.md).

Usage: .venv/bin/python bench/radiomics.py [--shape 512x512x150] [--seed 0] [--repeat 3] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# this script's folder would shadow the pyradiomics package ("radiomics"): replace it by the repository root
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

IBSI_FIXED = ("firstorder_Kurtosis", "shape_MajorAxisLength", "shape_MinorAxisLength", "shape_LeastAxisLength")


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its finished worker processes."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_one(kind: str, image: Path, mask: Path, out: Path, workers: int | None) -> None:
    """In a child process: one extraction, features and seconds to ``out`` (JSON)."""
    from core.radiomics.clinical import clinical_raw, quiet_pyradiomics
    from core.radiomics.configs import get_config

    quiet_pyradiomics()
    cfg = get_config("clinical")
    if kind == "ours":
        # imports outside the timed region, as for plain below
        from radiomics import featureextractor

        import core.radiomics.dicom_input  # noqa: F401
        from core.radiomics.extract import read_images

        cpu0, start = _cpu(), time.perf_counter()
        img, msk = read_images(image, mask)  # read once, inside the timed region like pyradiomics' own read
        values = clinical_raw(img, msk, cfg, label=1, workers=workers)
    else:
        from radiomics import featureextractor

        ex = featureextractor.RadiomicsFeatureExtractor(**cfg.pyradiomics_settings)
        ex.disableAllImageTypes()
        ex.enableImageTypes(Original={}, LoG={"sigma": list(cfg.log_sigmas_mm)}, Wavelet={"wavelet": cfg.wavelet})
        ex.enableAllFeatures()
        cpu0, start = _cpu(), time.perf_counter()
        result = ex.execute(str(image), str(mask))
        values = {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out.write_text(json.dumps({"seconds": seconds, "cpu": cpu, "rss": [own, workers_peak], "features": values}))


def measure(
    kind: str, image: Path, mask: Path, work: Path, workers: int | None
) -> tuple[float, float, list[float], dict]:  # type: ignore[type-arg]
    out = work / f"{kind}.json"
    cmd = [sys.executable, __file__, "--one", kind, str(image), str(mask), str(out)]
    if workers:
        cmd += ["--workers", str(workers)]
    subprocess.run(cmd, cwd=ROOT, check=True)
    data = json.loads(out.read_text())
    return data["seconds"], data["cpu"], data["rss"], data["features"]


def prepare(folder: Path, seed: int, shape: str, spacing: str) -> None:
    """In a child process (the parent stays small, so its children's peak memory is their own): demo study + NRRD."""
    import SimpleITK as sitk  # noqa: N813

    from core.demo import generate_demo_study

    dims = tuple(int(v) for v in shape.split("x"))
    mm = tuple(float(v) for v in spacing.split("x"))
    manifest = generate_demo_study(folder / "study", seed=seed, shape=dims, spacing_mm=mm)  # type: ignore[arg-type]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder / "study" / "ct")))
    sitk.WriteImage(reader.Execute(), str(folder / "ct.nrrd"))
    (folder / "gtv_cc.txt").write_text(f"{manifest.structure_volumes_cc['gtv']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="512x512x150")
    parser.add_argument("--spacing", default="0.8x0.8x2.5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="our worker processes (default: CPU count)")
    parser.add_argument("--one", nargs=4, metavar=("KIND", "IMAGE", "MASK", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--prepare", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, image, mask, out = args.one
        run_one(kind, Path(image), Path(mask), Path(out), args.workers)
        return
    if args.prepare:
        prepare(Path(args.prepare), args.seed, args.shape, args.spacing)
        return

    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cmd = [sys.executable, __file__, "--prepare", str(work), "--seed", str(args.seed), "--shape", args.shape]
        subprocess.run([*cmd, "--spacing", args.spacing], cwd=ROOT, check=True)
        image = work / "ct.nrrd"
        mask = work / "study" / "truth" / "gtv.nii.gz"
        print(
            f"demo study seed {args.seed}, CT {args.shape} @ {args.spacing} mm, GTV "
            f"{(work / 'gtv_cc.txt').read_text()} cc; {os.cpu_count()} CPUs; {args.repeat} runs each"
        )
        times: dict[str, list[float]] = {"plain": [], "ours": []}
        cpus: dict[str, list[float]] = {"plain": [], "ours": []}
        mems: dict[str, list[list[float]]] = {"plain": [], "ours": []}
        feats: dict[str, dict[str, float]] = {}
        for _ in range(args.repeat):
            for kind in ("plain", "ours"):
                seconds, cpu, mem, feats[kind] = measure(kind, image, mask, work, args.workers)
                times[kind].append(seconds)
                cpus[kind].append(cpu)
                mems[kind].append(mem)
    common = sorted(set(feats["plain"]) & set(feats["ours"]))
    worst, worst_name = 0.0, ""
    for name in common:
        if name.endswith(IBSI_FIXED):
            continue
        a, b = feats["plain"][name], feats["ours"][name]
        rel = abs(a - b) / max(abs(a), 1e-12) if a != b else 0.0
        if rel > worst:
            worst, worst_name = rel, name
    t_plain, t_ours = statistics.median(times["plain"]), statistics.median(times["ours"])
    print(f"{'':30} {'wall s (median)':>16} {'CPU s':>7} {'peak RSS MiB: main':>19} {'largest worker':>15}")
    for kind, label in (("plain", "plain pyradiomics extractor"), ("ours", "ours (clinical)")):
        t = statistics.median(times[kind])
        main_rss, worker_rss = (max(m[i] for m in mems[kind]) for i in (0, 1))
        workers_col = f"{worker_rss:15.0f}" if worker_rss else f"{'-':>15}"
        print(f"{label:30} {t:16.2f} {statistics.median(cpus[kind]):7.2f} {main_rss:19.0f} {workers_col}")
    print(f"load average before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f}")
    print(f"speed-up: {t_plain / t_ours:.2f}x; runs plain {times['plain']}, ours {times['ours']}")
    print(
        f"{len(common)} common features; largest relative difference {worst:.3g}"
        f"{' (' + worst_name + ')' if worst_name else ''}; not compared (IBSI fixes): Kurtosis, PCA axis lengths"
    )


if __name__ == "__main__":
    main()
