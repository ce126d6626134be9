"""Settings: typed values with defaults, merged from site-wide and per-user TOML files (see app/config.py)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["LOG_LEVELS", "Settings"]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# The Python types a TOML value may have for each annotated field type (bool is refused although it is an int).
_ACCEPTED: dict[str, tuple[type, ...]] = {"float": (int, float), "int": (int,), "str": (str,)}
_TYPE_NAMES = {"float": "a number", "int": "a whole number", "str": "a string"}


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    #: Minutes without activity before a session locks itself.
    auto_lock_minutes: float = 10.0
    log_level: str = "INFO"
    log_max_bytes: int = 5_000_000
    log_backups: int = 5
    #: "keyring", "passphrase" or "" (keyring when a secure one exists, else passphrase).
    key_mode: str = ""
    #: Our DICOM Application Entity title and storage SCP port.
    ae_title: str = "RADPLAN"
    storage_port: int = 11112

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> Settings:
        """Check and convert raw values (from TOML files and the environment). Errors name the setting."""
        known = {f.name: str(f.type) for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        if "data_dir" not in values:
            raise ValueError("data_dir: no data directory given")
        kwargs = {name: _convert(name, known[name], value) for name, value in values.items()}
        settings = cls(**kwargs)
        settings._check()
        return settings

    def _check(self) -> None:
        if self.key_mode not in ("", "keyring", "passphrase"):
            raise ValueError(f"key_mode must be 'keyring' or 'passphrase', not {self.key_mode!r}")
        # nan or inf would switch the auto-lock off without saying so
        if not (math.isfinite(self.auto_lock_minutes) and self.auto_lock_minutes > 0):
            raise ValueError(f"auto_lock_minutes must be a positive number of minutes, not {self.auto_lock_minutes!r}")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}")
        if self.log_max_bytes < 0:
            raise ValueError(f"log_max_bytes must not be negative, not {self.log_max_bytes}")
        if self.log_backups < 0:
            raise ValueError(f"log_backups must not be negative, not {self.log_backups}")
        title = self.ae_title
        if not 0 < len(title) <= 16 or not title.strip():
            raise ValueError("ae_title must have 1 to 16 characters (not only spaces)")
        if not title.isascii() or "\\" in title or any(not c.isprintable() for c in title):
            raise ValueError(f"ae_title may hold printable ASCII characters but no backslash, not {title!r}")
        if not 0 < self.storage_port < 65536:
            raise ValueError(f"storage_port must be a TCP port (1 to 65535), not {self.storage_port}")


def _convert(name: str, type_name: str, value: Any) -> Any:
    if type_name == "Path":
        if isinstance(value, (str, os.PathLike)) and str(value).strip():
            return Path(value).expanduser()
        raise ValueError(f"{name} must be a folder path (a non-empty string), not {value!r}")
    accepted = _ACCEPTED[type_name]
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise ValueError(f"{name} must be {_TYPE_NAMES[type_name]}, not {value!r}")
    if type_name == "float" and isinstance(value, (int, float)):
        return float(value)
    return value
