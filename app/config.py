"""Where settings come from, in increasing priority:

1. built-in defaults (core.settings.Settings);
2. the site-wide file: /etc/radplan/config.toml on Linux (platformdirs' site config dir elsewhere), or the file named
   by RADPLAN_SITE_CONFIG; this is what IT preseeds;
3. the per-user file: ~/.config/radplan/config.toml on Linux, or RADPLAN_USER_CONFIG;
4. RADPLAN_DATA_DIR, then the --data-dir option.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import platformdirs

from core.settings import Settings

__all__ = ["load_settings", "site_config_path", "user_config_path"]


def site_config_path() -> Path:
    if env := os.environ.get("RADPLAN_SITE_CONFIG"):
        return Path(env)
    if sys.platform.startswith("linux"):
        return Path("/etc/radplan/config.toml")
    return Path(platformdirs.site_config_dir("radplan", appauthor=False)) / "config.toml"


def user_config_path() -> Path:
    if env := os.environ.get("RADPLAN_USER_CONFIG"):
        return Path(env)
    return Path(platformdirs.user_config_dir("radplan", appauthor=False)) / "config.toml"


def _read(path: Path) -> dict[str, Any]:
    """The settings in one file: top-level keys and/or a [radplan] table (any other table is an unknown key)."""
    if not path.is_file():
        return {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read settings file {path}: {exc}") from exc
    values = {k: v for k, v in data.items() if k != "radplan"}
    table = data.get("radplan", {})
    if not isinstance(table, dict):
        raise ValueError(f"settings file {path}: 'radplan' must be a table ([radplan]), not a {type(table).__name__}")
    if both := sorted(set(values) & set(table)):
        raise ValueError(f"settings file {path}: {', '.join(both)} set both at the top level and in [radplan]")
    return {**values, **table}


def load_settings(data_dir: Path | None = None) -> Settings:
    values: dict[str, Any] = {"data_dir": platformdirs.user_data_dir("radplan", appauthor=False)}
    for path in (site_config_path(), user_config_path()):
        from_file = _read(path)
        try:  # check each file on its own, so that an error names the file it is in
            Settings.from_mapping({**values, **from_file})
        except ValueError as exc:
            raise ValueError(f"settings file {path}: {exc}") from None
        values.update(from_file)
    if env := os.environ.get("RADPLAN_DATA_DIR"):
        values["data_dir"] = env
    if data_dir is not None:
        values["data_dir"] = str(data_dir)
    return Settings.from_mapping(values)
