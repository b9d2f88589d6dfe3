"""Time and memory of every template bomb in tests/editors/test_template_bombs.py.

    python bench/template_bombs.py [--rounds N]

For each bomb: the first attempt (compile and render), the fastest of N
cached attempts, the peak memory (tracemalloc) and the error. Measure with
the rest of the machine idle: the figures are wall-clock times.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blocks.templating import render
from tests.editors.test_template_bombs import BOMBS, DEEP_TEMPLATES, VARIABLES


def _attempt(source: str) -> str:
    try:
        render(source, VARIABLES)
    except Exception as exc:  # every bomb must fail: report whatever it raised
        return f"{type(exc).__name__}: {exc}"
    return "(rendered)"


def main() -> int:
    """Print one line per bomb and the worst figures; exit 1 if one rendered."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sources = {name: source for name, (source, _) in BOMBS.items()} | DEEP_TEMPLATES
    rows: list[tuple[float, float, float, str, str]] = []
    for name, source in sources.items():
        started = time.perf_counter()
        error = _attempt(source)
        first = time.perf_counter() - started
        fastest = float("inf")
        for _ in range(args.rounds):
            started = time.perf_counter()
            _attempt(source)
            fastest = min(fastest, time.perf_counter() - started)
        tracemalloc.start()
        _attempt(source)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append((first * 1000, fastest * 1000, peak / 1024, name, error))
    print(f"{'first ms':>9} {'cached ms':>9} {'peak KiB':>9}  bomb: error")
    for first, cached, peak, name, error in rows:
        print(f"{first:9.1f} {cached:9.2f} {peak:9.0f}  {name}: {error[:90]}")
    print(
        f"worst: first {max(r[0] for r in rows):.1f} ms, cached {max(r[1] for r in rows):.1f} ms, "
        f"peak {max(r[2] for r in rows):.0f} KiB, over {len(rows)} bombs"
    )
    return 1 if any(row[4] == "(rendered)" for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
