"""`radplan doctor`: what this installation has and lacks (no patient data)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

import click

from app import __version__
from app.bootstrap import AppContext
from app.cli.common import echo_json, pass_app

__all__ = ["doctor"]

_PACKAGES = (
    "pyside6",
    "vtk",
    "pyqtgraph",
    "pydicom",
    "pynetdicom",
    "highdicom",
    "simpleitk",
    "pyradiomics",
    "numpy",
    "torch",
    "onnxruntime",
    "tensorrt",
    "pycuda",
    "spacy",
    "scikit-learn",
    "experta",
    "sqlcipher3",
    "reportlab",
    "keyring",
    "cryptography",
    "argon2-cffi",
)


def _pkg_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@click.command()
@click.option("--json", "as_json", is_flag=True)
@pass_app
def doctor(app: AppContext, as_json: bool) -> None:
    """Python, package versions, inference backends, keyring backend, data dir, GPU."""
    from core.store.keys import find_secure_keyring
    from engines.backends.availability import auto_choice, probe_backends, probe_gpu

    backend = find_secure_keyring()
    backends = probe_backends()
    data_dir = app.settings.data_dir
    report = {
        "radplan": __version__,
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "packages": {name: _pkg_version(name) for name in _PACKAGES},
        "inference_backends": [b.__dict__ for b in backends],
        "auto_backend": auto_choice(backends),
        "engine_cache": str(data_dir / "engines"),
        "keyring_backend": (
            f"{type(backend).__module__}.{type(backend).__qualname__}"
            if backend is not None
            else "none secure (store keys need a passphrase)"
        ),
        "data_dir": str(data_dir),
        "store": "present" if (data_dir / "store.json").exists() else "none (run 'radplan init')",
        "gpu": probe_gpu(),
    }
    if as_json:
        echo_json(report)
        return
    for key, value in report.items():
        if key == "packages":
            click.echo("packages:")
            for name, version in value.items():  # type: ignore[attr-defined]
                click.echo(f"  {name:14} {version or 'not installed'}")
        elif key == "inference_backends":
            click.echo("inference backends:")
            for b in value:  # type: ignore[attr-defined]
                click.echo(f"  {b['name']:12} {'yes' if b['available'] else 'no ':3}  {b['detail']}")
        else:
            click.echo(f"{key}: {value}")
