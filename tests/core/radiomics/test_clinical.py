"""The `clinical` configuration: pyradiomics' numbers, from a cropped, once-resampled, parallel run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.demo import generate_demo_study
from core.radiomics.clinical import clinical_raw, quiet_pyradiomics, to_features
from core.radiomics.configs import get_config
from core.radiomics.extract import extract_files, read_images
from core.radiomics.preprocess import RadiomicsInputError


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate_demo_study(out, seed=1, shape=(96, 96, 24), spacing_mm=(3.0, 3.0, 5.0))
    return out


def _plain(image: Any, mask: Any) -> dict[str, float]:
    quiet_pyradiomics()
    from radiomics import featureextractor

    cfg = get_config("clinical")
    ex = featureextractor.RadiomicsFeatureExtractor(**cfg.pyradiomics_settings)
    ex.disableAllImageTypes()
    ex.enableImageTypes(Original={}, LoG={"sigma": list(cfg.log_sigmas_mm)}, Wavelet={"wavelet": cfg.wavelet})
    ex.enableAllFeatures()
    return {k: float(v) for k, v in ex.execute(image, mask).items() if not k.startswith("diagnostics_")}


def test_same_values_as_a_plain_pyradiomics_run(study: Path) -> None:
    image, mask = read_images(study / "ct", study / "truth" / "gtv.nii.gz")
    ours = clinical_raw(image, mask, get_config("clinical"), workers=2)
    plain = _plain(image, mask)
    assert len(plain) == 1130 and set(ours) == set(plain)
    worst = max(abs(ours[k] - plain[k]) / max(abs(plain[k]), 1e-12) for k in plain)
    assert worst <= 1e-6
    assert clinical_raw(image, mask, get_config("clinical"), workers=1) == ours  # parallel = sequential


def test_rows_carry_ibsi_tags_and_fixes(study: Path) -> None:
    rows = extract_files(study / "ct", study / "truth" / "gtv.nii.gz", "clinical")
    by_name = {r.pyradiomics: r for r in rows}
    image, mask = read_images(study / "ct", study / "truth" / "gtv.nii.gz")
    raw = clinical_raw(image, mask, get_config("clinical"))
    assert by_name["original_firstorder_Mean"].ibsi_tag == "stat_mean"
    assert by_name["original_firstorder_Kurtosis"].value == pytest.approx(raw["original_firstorder_Kurtosis"] - 3)
    assert by_name["wavelet-LLH_glcm_Idm"].ibsi_tag == "wavelet-LLH:cm_inv_diff_mom_3D_avg"
    assert by_name["original_glcm_MCC"].ibsi_tag == ""  # no IBSI equivalent
    n = round(raw["original_shape_VoxelVolume"] / 1.0)  # 1 mm isotropic voxels
    assert by_name["original_shape_MajorAxisLength"].value == pytest.approx(
        raw["original_shape_MajorAxisLength"] * np.sqrt(n / (n - 1))
    )


def test_pca_axes_lose_their_tag_without_a_voxel_volume() -> None:
    rows = to_features({"original_shape_MajorAxisLength": 10.0, "original_firstorder_Kurtosis": 3.5})
    assert [(r.ibsi_tag, r.value) for r in rows] == [("", 10.0), ("stat_kurt", 0.5)]


def test_missing_label_is_a_clear_error(study: Path) -> None:
    with pytest.raises(RadiomicsInputError, match="label 2 is not in the mask"):
        extract_files(study / "ct", study / "truth" / "gtv.nii.gz", "clinical", label=2)


def test_fast_bin_edges_equal_pyradiomics_and_only_in_our_units(study: Path) -> None:
    from radiomics import imageoperations

    from core.radiomics import clinical

    image, mask = read_images(study / "ct", study / "truth" / "gtv.nii.gz")
    clinical_raw(image, mask, get_config("clinical"), workers=1)
    assert imageoperations.getBinEdges is clinical._fast_bin_edges  # installed once, never swapped back
    original = clinical._ORIGINAL_BIN_EDGES[0]
    assert original.__module__ == "radiomics.imageoperations"
    calls: list[str] = []
    real_min = clinical.np.min
    rng = np.random.default_rng(3)
    for values in (rng.normal(0, 300, 1000), rng.integers(-1000, 400, 500).astype(np.int16), np.full(5, 50.0)):
        for settings in ({"binWidth": 25.0}, {"binWidth": 7}, {"binCount": 16}):
            with clinical._fast_binning():
                fast = clinical._fast_bin_edges(values, **settings)
            plain = clinical._fast_bin_edges(values, **settings)  # outside our units: pyradiomics' own function
            assert np.array_equal(np.asarray(fast), np.asarray(original(values, **settings)))
            assert np.array_equal(np.asarray(plain), np.asarray(original(values, **settings)))
    try:  # which path runs: numpy's min only inside _fast_binning
        clinical.np.min = lambda *a, **k: calls.append("np.min") or real_min(*a, **k)  # type: ignore[assignment]
        clinical._fast_bin_edges(np.arange(10.0), binWidth=2)
        assert calls == []
        with clinical._fast_binning():
            clinical._fast_bin_edges(np.arange(10.0), binWidth=2)
        assert calls == ["np.min"]
    finally:
        clinical.np.min = real_min  # type: ignore[assignment]


@pytest.mark.slow
def test_concurrent_extractions_in_threads_give_identical_results(study: Path) -> None:
    """Threads running our extraction (parallel and sequential) next to a plain pyradiomics run: every result equals
    the sequential one and the plain run equals a plain run made alone."""
    import threading

    image, mask = read_images(study / "ct", study / "truth" / "gtv.nii.gz")
    cfg = get_config("clinical")
    reference = clinical_raw(image, mask, cfg, workers=1)
    plain_alone = _plain(image, mask)
    results: dict[str, dict[str, float]] = {}
    errors: list[BaseException] = []

    def run(name: str, fn: Any) -> None:
        try:
            results[name] = fn()
        except BaseException as exc:
            errors.append(exc)

    jobs = {
        "parallel-a": lambda: clinical_raw(image, mask, cfg, workers=2),
        "sequential": lambda: clinical_raw(image, mask, cfg, workers=1),
        "parallel-b": lambda: clinical_raw(image, mask, cfg, workers=2),
        "plain": lambda: _plain(image, mask),
    }
    threads = [threading.Thread(target=run, args=(name, fn)) for name, fn in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and set(results) == set(jobs)
    for name in ("parallel-a", "sequential", "parallel-b"):
        assert results[name] == reference, name
    assert results["plain"] == plain_alone


def test_workers_are_not_forked_while_another_thread_runs(study: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fork while another thread is inside OpenBLAS hangs that thread (seen about 1 run in 6 of the test above):
    workers are forked only from a process running no other thread, else started by a forkserver; same values."""
    import multiprocessing
    import threading

    import core.radiomics.clinical as clinical

    image, mask = read_images(study / "ct", study / "truth" / "gtv.nii.gz")
    cfg = get_config("clinical")
    contexts: list[str] = []
    real = multiprocessing.get_context

    def spy(method: str | None = None) -> Any:
        contexts.append(str(method))
        return real(method)

    monkeypatch.setattr(clinical.multiprocessing, "get_context", spy)
    # In the whole suite an earlier test may leave a thread behind (a library's idle pool): then even the first
    # extraction must not fork. Whichever holds, the second one, beside a thread we start, must not fork.
    threads_before = [t.name for t in threading.enumerate()]
    alone = clinical_raw(image, mask, cfg, workers=2)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        beside_a_thread = clinical_raw(image, mask, cfg, workers=2)
    finally:
        stop.set()
        other.join()
    first = "fork" if len(threads_before) == 1 else "forkserver"
    assert contexts == [first, "forkserver"], threads_before
    assert beside_a_thread == alone


def test_a_process_running_one_thread_forks_its_workers(study: Path) -> None:
    """The fork branch, in a fresh process (in the whole suite Dask's offload thread outlives the batch tests, so
    this process never runs alone again): same values as the forkserver branch here."""
    import json
    import subprocess
    import sys

    script = (
        "import json, multiprocessing, sys, threading\nfrom pathlib import Path\n"
        "import core.radiomics.clinical as c\n"
        "from core.radiomics.configs import get_config\n"
        "from core.radiomics.extract import read_images\n"
        "seen = []\n"
        "real = multiprocessing.get_context\n"
        "c.multiprocessing.get_context = lambda m=None: (seen.append(m), real(m))[1]\n"
        "image, mask = read_images(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "before = threading.active_count()\n"
        "raw = c.clinical_raw(image, mask, get_config('clinical'), workers=2)\n"
        "print(json.dumps({'threads': before, 'contexts': seen, 'raw': raw}, default=float))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(study / "ct"), str(study / "truth" / "gtv.nii.gz")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    child = json.loads(run.stdout.strip().splitlines()[-1])
    assert child["threads"] == 1
    assert child["contexts"] == ["fork"]
    image, mask = read_images(study / "ct", study / "truth" / "gtv.nii.gz")
    here = clinical_raw(image, mask, get_config("clinical"), workers=2)
    assert set(child["raw"]) == set(here)
    for name, value in here.items():
        assert child["raw"][name] == pytest.approx(float(value), rel=1e-12, abs=1e-12), name
