"""Garbage collection for a long-running server process: fewer, shorter pauses.

CPython's cyclic collector runs its youngest generation every 700 container
allocations, and a page decision allocates thousands; the oldest generation
traverses every long-lived object, including the near-cache's profiles and
everything imported at start-up, and stops the event loop while it does
(hundreds of milliseconds in a busy gateway: its p99). `tune_gc` is called
once by the server entry points (`serve`, each `--workers` worker, the
benchmarks' app) after the app is built, never by `create_app`, so tests and
embedding programs keep the interpreter's defaults.
"""

from __future__ import annotations

import gc
from typing import Final

#: Container allocations between young collections (CPython's default: 700).
YOUNG_THRESHOLD: Final = 20_000
#: Young collections per middle one, and middle ones per full one (defaults: 10, 10).
OLDER_THRESHOLDS: Final = (20, 20)


def tune_gc() -> None:
    """Freeze what start-up built, and collect less often."""
    gc.collect()
    # Modules, the schema, compiled templates: never garbage, never traversed again.
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
