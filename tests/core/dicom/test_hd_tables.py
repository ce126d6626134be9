"""highdicom's module table loaded incrementally (core.dicom.hd_tables) is the table highdicom loads itself, and
highdicom uses it afterwards (a SEG still writes and reads back)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.dicom.hd_tables import parse_json_object_incrementally

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    "text", ["{}", '{"a": 1}', ' { "a" : [1, {"b": null}] , "c": "x\\"y", "d": {"e": [true, false]} } ']
)
def test_incremental_parse_equals_json_loads(text: str) -> None:
    assert parse_json_object_incrementally(text) == json.loads(text)


@pytest.mark.parametrize("text", ["[1, 2]", '{"a" 1}', '{"a": 1'])
def test_malformed_json_is_refused(text: str) -> None:
    with pytest.raises((ValueError, IndexError)):
        parse_json_object_incrementally(text)


def test_primed_table_is_highdicoms_and_is_used() -> None:
    """In a fresh process (highdicom caches the table): prime, compare with json.loads of the same file, check
    that highdicom's three users of the accessor now return the primed table."""
    code = (
        "import json, pkgutil\n"
        "from core.dicom.hd_tables import prime_module_attribute_map\n"
        "assert prime_module_attribute_map() and prime_module_attribute_map()\n"
        "import highdicom._standard_utils as su, highdicom.base as b, highdicom.image as im\n"
        "t = su.get_module_attribute_map()\n"
        "assert t is b.get_module_attribute_map() is im.get_module_attribute_map()\n"
        "ref = json.loads(pkgutil.get_data('highdicom', '_standard/module_attribute_map.json'))\n"
        "assert t == ref and len(t) > 400\n"
        "print('ok', len(t))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stderr
    assert pkgutil.get_data("highdicom", "_standard/module_attribute_map.json") is not None
