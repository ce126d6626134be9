"""core.gcpause: bulk loading in a worker thread sets off no full garbage collection (one long C call holding the
GIL, which freezes the GUI thread), and leaves the collector as it found it."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from core.gcpause import paused_collection


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture
def full_collections() -> Iterator[list[int]]:
    seen: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2:
            seen.append(1)

    gc.collect()
    gc.callbacks.append(count)
    yield seen
    gc.callbacks.remove(count)


def _bulk() -> list[dict[str, list[int]]]:
    """Many container objects that stay alive while being built (as a parsed DICOM data set does): more than a
    quarter of what the oldest generation holds, so that (CPython 3.11's rule) a full collection is due."""
    n = max(300_000, len(gc.get_objects(generation=2)) // 4 + 100_000)
    return [{"tag": [i, i + 1]} for i in range(n)]


def test_bulk_parsing_without_a_pause_sets_off_full_collections(full_collections: list[int]) -> None:
    """The control: what the pause is for happens here."""
    assert gc.isenabled()
    data = _bulk()
    assert data and full_collections, "no full collection: the pause would prove nothing"


def test_a_pause_without_freeze_runs_no_full_collection_and_keeps_garbage_collectable(
    full_collections: list[int],
) -> None:
    frozen = gc.get_freeze_count()
    with paused_collection(freeze=False):
        assert not gc.isenabled()
        data = _bulk()
        cycle = _Node()
        alive = weakref.ref(cycle)
    assert data and not full_collections
    assert gc.isenabled() and gc.get_freeze_count() == frozen
    del cycle
    gc.collect()
    assert alive() is None, "garbage made during the pause is collected afterwards"


def test_the_default_pause_freezes_what_was_loaded() -> None:
    before = gc.get_freeze_count()
    try:
        with paused_collection():
            kept = [_Node() for _ in range(1000)]
        assert gc.get_freeze_count() >= before + 1000 and gc.isenabled()
        assert len(kept) == 1000
    finally:
        gc.unfreeze()


def test_pauses_overlapping_in_two_threads_leave_the_collector_on() -> None:
    inside = threading.Barrier(2)
    leave_first = threading.Event()

    def worker(first: bool) -> None:
        with paused_collection(freeze=False):
            inside.wait(timeout=10)
            if first:
                leave_first.wait(timeout=10)
        if not first:
            leave_first.set()

    threads = [threading.Thread(target=worker, args=(flag,)) for flag in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert gc.isenabled()
