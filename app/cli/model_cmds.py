"""`radplan model`: the segmentation model registry (list) and the reproducible training of the thorax U-Net."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click

from app.bootstrap import AppContext
from app.cli.common import echo_json, pass_app
from core.segmentation.models import list_models, site_models_dir

__all__ = ["model"]


def parse_seeds(value: str) -> tuple[int, ...]:
    """``1000-1031`` or ``1,2,5-7``: distinct non-negative seeds in the given order."""
    seeds: list[int] = []
    try:
        for part in value.replace(" ", "").split(","):
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            seeds += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    except ValueError:
        raise click.BadParameter("use e.g. 1000-1031 or 1,2,3") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise click.BadParameter("give distinct non-negative seeds, e.g. 1000-1031")
    return tuple(seeds)


def _weights(value: str) -> tuple[float, ...]:
    try:
        weights = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter("use e.g. 1,1,1,1,3,10,10,10", param_hint="--class-weights") from None
    if len(weights) != 8 or min(weights) <= 0:
        raise click.BadParameter("give 8 positive weights (one per class)", param_hint="--class-weights")
    return weights


@click.group("model")
def model() -> None:
    """Segmentation models: the shipped ones and those a site drops into <data dir>/models."""


@model.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the models as JSON.")
@pass_app
def list_cmd(app: AppContext, as_json: bool) -> None:
    """List segmentation models (a model whose file does not match its manifest's sha256 is shown as refused)."""
    infos = list_models(site_dir=site_models_dir(app.settings.data_dir))
    if as_json:
        rows = []
        for info in infos:
            m = info.manifest
            rows.append({
                "name": info.name, "version": m.version if m else None, "source": info.source,
                "directory": str(info.directory), "usable": info.usable, "refused": info.refused,
                "labels": list(m.labels) if m else None, "spacing_mm": list(m.spacing_mm) if m else None,
                "sha256": m.sha256 if m else None,
                "normalisation": dataclasses.asdict(m.normalisation) if m else None,
            })  # fmt: skip
        echo_json(rows)
        return
    if not infos:
        click.echo("no segmentation models found")
    for info in infos:
        m = info.manifest
        head = f"{info.name} {m.version if m else '?'} ({info.source}) {info.directory}"
        if info.usable and m is not None:
            structures = ", ".join(m.structures)
            spacing = "x".join(f"{v:g}" for v in m.spacing_mm)
            click.echo(f"{head}\n  ok: {structures}; spacing {spacing} mm")
        else:
            click.echo(f"{head}\n  REFUSED: {info.refused}")


@model.command("train")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True, help="Output model folder.")
@click.option("--seeds", default="1000-1019", show_default=True, help="Demo-data seeds to train on.")
@click.option(
    "--epochs", type=click.IntRange(1, 10_000), default=60, show_default=True, help="Steps = epochs x seeds x 1 patch."
)
@click.option("--threads", type=click.IntRange(1, 256), default=2, show_default=True, help="PyTorch CPU threads.")
@click.option("--seed", "rng_seed", type=int, default=20240315, show_default=True, help="Random seed of the run.")
@click.option("--patch", default="48x80x80", show_default=True, help="Training (and inference) patch ZxYxX.")
@click.option("--lr", type=float, default=3e-3, show_default=True, help="Initial learning rate (poly decay).")
@click.option("--stop-after", type=click.IntRange(1), help="Stop after this many steps (schedule unchanged).")
@click.option("--init", type=click.Path(path_type=Path, exists=True, dir_okay=False), help="Start from this model.pt.")
@click.option("--class-weights", help="Cross-entropy weight per class, comma separated (default: equal).")
@click.option(
    "--tumour-fraction", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
    help="Share of training patches centred near the tumour.",
)  # fmt: skip
def train_cmd(
    out: Path, seeds: str, epochs: int, threads: int, rng_seed: int, patch: str, lr: float, stop_after: int | None,
    init: Path | None, class_weights: str | None, tumour_fraction: float,
) -> None:  # fmt: skip
    """Train the thorax U-Net on synthetic demo studies (reproducible: fixed seeds), export ONNX, write the manifest.

    Needs PyTorch (not in the release bundle). Keep the training seeds away from the seeds you test on.
    """
    try:
        from engines.segmentation.train import TrainConfig, train
    except ImportError as exc:  # the bundle ships without PyTorch
        raise click.ClickException(f"training needs PyTorch, which is not installed here ({exc})") from None

    try:
        pz, py, px = (int(v) for v in patch.lower().split("x"))
    except ValueError:
        raise click.BadParameter("use ZxYxX, e.g. 48x80x80", param_hint="--patch") from None
    config = TrainConfig(
        seeds=parse_seeds(seeds), epochs=epochs, threads=threads, seed=rng_seed, patch_size=(pz, py, px), lr=lr,
        stop_after=stop_after, init=str(init) if init else None,
        class_weights=_weights(class_weights) if class_weights else None, tumour_fraction=tumour_fraction,
    )  # fmt: skip
    command = (
        f"radplan model train --out {out} --seeds {seeds} --epochs {epochs} --threads {threads} --seed {rng_seed} "
        f"--patch {patch} --lr {lr:g}" + (f" --stop-after {stop_after}" if stop_after else "")
        + (f" --init {init}" if init else "") + (f" --class-weights {class_weights}" if class_weights else "")
        + (f" --tumour-fraction {tumour_fraction:g}" if tumour_fraction != 0.5 else "")
    )  # fmt: skip
    start = time.perf_counter()
    record = train(config, out, log_fn=lambda line: click.echo(line, err=True), command=command)
    click.echo(
        f"model written to {out} in {time.perf_counter() - start:.0f} s "
        f"({record['steps']} steps, final loss {record['final_loss']})"
    )
