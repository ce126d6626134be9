"""The order in which `--backend auto` tries the backends (engines.backends.select), in a module with no imports so
the light availability probe (engines.backends.availability.expected_auto_choice) can read it at GUI start-up."""

from __future__ import annotations

__all__ = ["AUTO_ORDER"]

#: (backend, device) in the order auto tries them.
AUTO_ORDER: tuple[tuple[str, str], ...] = (
    ("tensorrt", "cuda"),
    ("onnxruntime", "cuda"),
    ("torch", "cuda"),
    ("onnxruntime", "cpu"),
    ("torch", "cpu"),
)
