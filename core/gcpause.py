"""Loading a large amount of long-lived data (module imports, highdicom's standard tables) from a worker thread
without freezing the GUI thread.

Millions of new objects trigger full garbage collections, and each is one long C call over the whole heap holding
the GIL (measured 0.2-0.65 s on the 2-vCPU machine). ``paused_collection`` switches collection off while its block
runs and afterwards freezes everything allocated so far out of later collections (``gc.freeze``); it restores the
collector's previous state, so blocks may nest (and run in several threads at once).

``paused_collection(freeze=False)`` is for reading bulk data that does not stay: pydicom and highdicom parse a
study's SEG and image headers into hundreds of thousands of short-lived objects, which set off full collections
(0.12-0.16 s each with the GIL held, measured while a 512x512x150 study's SEG was decoded in a thread); they are
freed by reference counting when the block's result is built, so nothing is frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused_collection"]


@contextmanager
def paused_collection(*, freeze: bool = True) -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()
