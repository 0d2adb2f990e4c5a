"""The cyclic garbage collector, paused around loops over whole populations.

A loop deciding for 100,000 clients allocates millions of short-lived objects, all freed by reference counting;
the allocations alone keep triggering the cyclic collector, which walks every live object (the population's
inputs, frames, loaded models) each time: measured at ten times the rules' own cost (29 µs against 3 µs a
client). Nothing in these loops makes reference cycles, so pausing the collector frees no less memory.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
