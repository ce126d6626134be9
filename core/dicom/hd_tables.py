"""highdicom's table of the DICOM standard's modules, loaded without freezing a GUI.

highdicom parses ``_standard/module_attribute_map.json`` (22 MB) on first use, in one ``json.loads`` call that holds
the GIL for 0.2-0.7 s on our 2-vCPU machine: in the workstation, whichever thread first reads or writes a SEG froze
the window that long (issue 8: UI stalls < 100 ms). :func:`prime_module_attribute_map` parses the same file one
module at a time (each call a few ms, the GIL yielded between them) and hands the result to highdicom's cached
accessor, so the table exists before any SEG is touched. The result is the same dict (tested against highdicom's
own loader); if highdicom's internals differ from what this expects, nothing is changed and the first use pays as
before."""

from __future__ import annotations

import functools
import json
import logging
import pkgutil
import re
import threading
import time
from typing import Any

from core.gcpause import paused_collection

__all__ = ["parse_json_object_incrementally", "prime_module_attribute_map"]

log = logging.getLogger(__name__)
_WS = re.compile(r"[ \t\n\r]*")
_LOCK = threading.Lock()
#: highdicom modules that imported ``get_module_attribute_map`` by name (checked: highdicom 0.28).
_USERS = ("highdicom._standard_utils", "highdicom.base", "highdicom.image")


def parse_json_object_incrementally(text: str) -> dict[str, Any]:
    """``json.loads`` of a top-level JSON object, one member per decoder call, yielding the GIL between members."""
    decoder = json.JSONDecoder()
    i = _WS.match(text, 0).end()  # type: ignore[union-attr]
    if text[i : i + 1] != "{":
        raise ValueError("not a JSON object")
    i += 1
    out: dict[str, Any] = {}
    while True:
        i = _WS.match(text, i).end()  # type: ignore[union-attr]
        if text[i : i + 1] == "}":
            return out
        key, i = decoder.raw_decode(text, i)
        i = _WS.match(text, i).end()  # type: ignore[union-attr]
        if text[i : i + 1] != ":":
            raise ValueError(f"':' expected at {i}")
        i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
        out[key], i = decoder.raw_decode(text, i)
        i = _WS.match(text, i).end()  # type: ignore[union-attr]
        if text[i : i + 1] == ",":
            i += 1
        time.sleep(0)  # let other threads (the UI) run


def prime_module_attribute_map() -> bool:
    """Load highdicom's module attribute map incrementally and make highdicom use it; True when done (or done
    before), False when highdicom is missing or not shaped as expected (then highdicom loads it itself later)."""
    import importlib

    with _LOCK:
        try:
            modules = [importlib.import_module(name) for name in _USERS]
        except ImportError:
            return False
        original = getattr(modules[0], "get_module_attribute_map", None)
        if getattr(original, "_radplan_primed", False):
            return True
        if original is None or any(getattr(m, "get_module_attribute_map", None) is not original for m in modules):
            log.info("highdicom's module map accessor is not where expected; not primed")
            return False
        try:
            data = pkgutil.get_data("highdicom", "_standard/module_attribute_map.json")
        except OSError:  # a bundle without highdicom's data: its own loader will say so when a SEG is used
            return False
        if data is None:
            return False
        with paused_collection():  # millions of new objects: no full collection holding the GIL meanwhile
            table = parse_json_object_incrementally(data.decode("utf-8"))

        @functools.wraps(original)
        def get_module_attribute_map() -> dict[str, list[Any]]:
            return table

        get_module_attribute_map._radplan_primed = True  # type: ignore[attr-defined]
        for module in modules:
            module.get_module_attribute_map = get_module_attribute_map  # type: ignore[attr-defined]
        return True
