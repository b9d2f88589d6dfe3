"""Benchmark the content cache in front of a slow CMS.

Run from the repository root with the project's virtualenv active:

    python bench/content_cache.py [--latency-ms 50] [--rounds 5] [--requests 200]

The CMS is the real Contentful adapter over an `httpx.MockTransport` that
answers like the Content Delivery API after `--latency-ms` (the recorded
exchanges of `tests/cms/vendors.py`). For each cache backend (memory, and a
private redis-server started on a free port when `redis-server` is installed):

- (w) warm: `ContentCache.get_page("home")` on a cached page, `--requests` times;
- (u) upstream: the same page fetched from the CMS each time (the adapter
  behind the cache, with the injected latency, plus parsing);
- (b) cold burst: `--burst` concurrent `get_page` calls on an empty cache,
  counting upstream calls (single flight should make it one) and the wall time.

Prints per-round medians, the median over rounds and u/w, and writes
`bench/results/content_cache.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import redis_server  # noqa: E402
from cms_adapters.cache_backend import close_cache, open_cache  # noqa: E402
from cms_adapters.content_cache import ContentCache  # noqa: E402
from tests.cms.vendors import FakeContentful  # noqa: E402

OUTPUT = ROOT / "bench" / "results" / "content_cache.json"


def ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


async def one_round(url: str, latency: float, requests: int, burst: int) -> dict[str, Any]:
    vendor = FakeContentful()
    vendor.latency = latency
    cache = open_cache(url)
    await cache.clear()
    adapter = vendor.adapter()
    content = ContentCache(adapter, cache, ttl=3600)
    try:
        # (b) cold burst
        started = time.perf_counter()
        pages = await asyncio.gather(*(content.get_page("home") for _ in range(burst)))
        burst_seconds = time.perf_counter() - started
        assert len({page.version for page in pages}) == 1
        burst_calls = content.upstream_calls
        # (w) warm
        warm: list[float] = []
        for _ in range(requests):
            started = time.perf_counter()
            await content.get_page("home")
            warm.append(time.perf_counter() - started)
        # (u) upstream
        upstream: list[float] = []
        for _ in range(max(10, requests // 10)):
            await content.invalidate("home")
            started = time.perf_counter()
            await content.get_page("home")
            upstream.append(time.perf_counter() - started)
    finally:
        await content.aclose()
        await adapter.aclose()
        await cache.clear()
        await close_cache(cache)
    return {
        "warm": ms(warm),
        "upstream": ms(upstream),
        "burst": {
            "requests": burst,
            "upstream_calls": burst_calls,
            "wall_ms": burst_seconds * 1000,
        },
    }


def median_of(rounds: list[dict[str, Any]], part: str, key: str) -> float:
    return statistics.median(r[part][key] for r in rounds)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()

    stack = contextlib.ExitStack()
    backends = {"memory": "memory://"}
    if shutil.which("redis-server") is not None:
        backends["redis"] = stack.enter_context(
            redis_server(Path(tempfile.mkdtemp(prefix="tessera-bench-redis-")))
        )
    else:
        print("redis-server not installed: measuring the memory backend only", file=sys.stderr)
    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "settings": vars(args) | {"output": str(args.output)},
        "backends": {},
    }
    try:
        for name, url in backends.items():
            rounds = [
                await one_round(url, args.latency_ms / 1000, args.requests, args.burst)
                for _ in range(args.rounds)
            ]
            warm = median_of(rounds, "warm", "p50_ms")
            upstream = median_of(rounds, "upstream", "p50_ms")
            summary = {
                "warm_p50_ms": warm,
                "warm_p99_ms": median_of(rounds, "warm", "p99_ms"),
                "upstream_p50_ms": upstream,
                "upstream_p99_ms": median_of(rounds, "upstream", "p99_ms"),
                "u/w": upstream / warm,
                "burst_upstream_calls": [r["burst"]["upstream_calls"] for r in rounds],
                "burst_wall_ms": median_of(rounds, "burst", "wall_ms"),
            }
            report["backends"][name] = {"summary": summary, "rounds": rounds}
            print(
                f"{name:7s} warm p50 {warm:.3f} ms (p99 {summary['warm_p99_ms']:.3f}) · "
                f"upstream p50 {upstream:.2f} ms (p99 {summary['upstream_p99_ms']:.2f}) · "
                f"u/w {summary['u/w']:.0f} · burst of {args.burst}: "
                f"{summary['burst_upstream_calls']} upstream calls, "
                f"{summary['burst_wall_ms']:.1f} ms"
            )
    finally:
        stack.close()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
