"""RadPlan application layer: entry points, configuration, composition root and the CLI."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("radplan")
except metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
