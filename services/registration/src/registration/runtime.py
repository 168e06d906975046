"""Process-level tuning of the registration API for bulk intake.

A 5,000-household batch allocates a few hundred thousand objects that live for the request; with
CPython's default thresholds the cyclic garbage collector then runs full collections over the
whole heap again and again (measured: about 60% of a batch's CPU time). Reference counting frees
these objects anyway, so the collector is paused while a batch is processed and its thresholds
are raised for the rest."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_paused = 0


def tune_gc() -> None:
    """Called once the application is built: older objects are frozen out of the collector's scans."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic collector for a block; nested and concurrent blocks keep it paused until
    the last one ends."""
    global _paused
    _paused += 1
    gc.disable()
    try:
        yield
    finally:
        _paused -= 1
        if _paused == 0:
            gc.enable()
