"""Pausing Python's cyclic garbage collector while a large, short-lived structure is built.

Why: a first plan of a 50,000-recipe tree (reading it, then planning it) and a page's view
of 50,000 tasks each make hundreds of thousands of containers in a few seconds. The
collector counts them as they are made and, as the heap grows by a quarter each time, runs
a full collection of the whole heap: about ten per first plan, a fifth of its CPU, finding
nothing (what is made is freed by reference counts, or kept). Paused, it meets what was made
once, at its next collection after the pause.

Not I/O: a process-wide switch, restored as found, so the planning core may use it. It is
not a lock: another thread that pauses it meanwhile may see it resumed before it is done,
which only costs that thread the collections it would have had anyway.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The collector paused for the ``with`` block (if it ran before), resumed after it."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()
