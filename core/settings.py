"""Settings: typed values with defaults, merged from site-wide and per-user TOML files (see app/config.py)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["Settings"]


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
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            kwargs[name] = Path(value).expanduser() if name == "data_dir" else value
        settings = cls(**kwargs)
        if settings.key_mode not in ("", "keyring", "passphrase"):
            raise ValueError(f"key_mode must be 'keyring' or 'passphrase', not {settings.key_mode!r}")
        if settings.auto_lock_minutes <= 0:
            raise ValueError("auto_lock_minutes must be positive")
        if not 0 < len(settings.ae_title) <= 16:
            raise ValueError("ae_title must have 1 to 16 characters")
        return settings
