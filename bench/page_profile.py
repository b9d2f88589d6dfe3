"""Where a personalized page's time goes, in process: CPU per request by stage, no sockets.

Run from the repository root with the project's virtualenv active:

    python bench/page_profile.py              # about a minute
    python bench/page_profile.py --requests 5000 --top 40

The wrk scenarios (bench/run.py --scenario many) measure throughput on a
shared 2-core machine, where the load of other processes moves req/s by
tens of percent. This script measures CPU time instead, which moves much
less: it starts a fresh SecantusDB server, builds the real gateway
(`create_app(Settings())`, lifespan entered), seeds `--visitors` visitors
with varied histories (bench/visitors.py, folded into profiles by the
ingestion code), then calls the ASGI app directly (a minimal driver, no HTTP
server, no client library) for:

- `GET /healthz` through the whole middleware stack;
- `POST /graphql`, the home page query of bench/run.py (`--page SLUG`: another
  demo page), each request for the next visitor (their User-Agent and
  CF-IPCountry);

It reports process CPU time per request for each (after a warm-up pass over
every visitor, so near-cache and response cache are warm as in the wrk
runs), their ratio, and then profiles the page requests with cProfile and
prints the functions with the most cumulative time, as a share of the total.
cProfile inflates small functions; read the shares as a ranking, the CPU
times above as the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import visitors
from bench.run import PAGE_QUERY, embedded_mongo

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


async def call(app: ASGIApp, method: str, path: str, headers: dict[str, str], body: bytes) -> int:
    """One request straight into the ASGI app; its status (the body is discarded)."""
    scope: Message = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


async def measure(args: argparse.Namespace, mongodb_uri: str, state: Path) -> None:
    """Seed, warm up, time, profile."""
    os.environ.update(
        {
            "MONGODB_URI": mongodb_uri,
            "MONGODB_DATABASE": "tessera_profile",
            "STATE_DIR": str(state),
            "LOG_LEVEL": "WARNING",
        }
    )
    from asgi_lifespan import LifespanManager

    from gateway.app import create_app
    from gateway.settings import Settings

    population = visitors.population(args.visitors, prefix="pp")
    seeded = visitors.seed_direct(mongodb_uri, "tessera_profile", population)
    app = create_app(Settings())
    if not args.default_gc:
        from common.gc_tuning import tune_gc

        tune_gc()  # as `serve` does
    body = json.dumps({"query": PAGE_QUERY % args.page}).encode()
    pages = [
        {"Content-Type": "application/json", "X-Visitor-Id": v.id, **v.headers()}
        for v in population
    ]
    async with LifespanManager(app) as manager:
        asgi: ASGIApp = manager.app

        async def run_pages(count: int, offset: int = 0) -> None:
            for number in range(count):
                headers = pages[(offset + number) % len(pages)]
                status = await call(asgi, "POST", "/graphql", headers, body)
                if status != 200:
                    raise RuntimeError(f"the page answered {status}")

        async def run_health(count: int) -> None:
            for _ in range(count):
                if await call(asgi, "GET", "/healthz", {}, b"") != 200:
                    raise RuntimeError("/healthz did not answer 200")

        await run_pages(2 * len(pages))  # warm: near-cache, response cache, compiled templates
        await run_health(1000)
        figures: dict[str, float] = {}
        began = time.process_time()
        await run_health(args.requests)
        figures["healthz"] = (time.process_time() - began) / args.requests * 1000
        began = time.process_time()
        await run_pages(args.requests, offset=7)
        figures["page"] = (time.process_time() - began) / args.requests * 1000
        print(
            f"{seeded} profiles seeded for {args.visitors} visitors; {args.requests} requests each"
        )
        print(
            f"CPU per request, in process (no HTTP server): /healthz {figures['healthz']:.3f} ms, "
            f"{args.page} page {figures['page']:.3f} ms; "
            f"ratio {figures['healthz'] / figures['page']:.3f}"
        )
        cache = app.state.response_cache
        hits, misses = (cache.hits, cache.misses) if cache is not None else (0, 0)
        profiler = cProfile.Profile()
        profiler.enable()
        await run_pages(args.requests, offset=13)
        profiler.disable()
        if cache is not None:
            hits, misses = cache.hits - hits, cache.misses - misses
            print(
                f"page response cache during the profiled requests: {hits} hits, {misses} "
                "misses (a miss executes GraphQL)"
            )
    stats = pstats.Stats(profiler)
    total = max(stats.total_tt, 1e-9)  # type: ignore[attr-defined]
    rows = []
    for (filename, line, function), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = filename.split("site-packages/")[-1].replace(str(Path.cwd()) + "/", "")
        rows.append((cumulative, own, calls, f"{function} ({where}:{line})"))
    print(
        f"\ncProfile of {args.requests} page requests: cumulative share, own share, calls/request"
    )
    for cumulative, own, calls, name in sorted(rows, reverse=True)[: args.top]:
        print(
            f"  {cumulative / total:6.1%} {own / total:6.1%} {calls / args.requests:7.1f}  {name}"
        )
    print("\nby own time:")
    for cumulative, own, calls, name in sorted(rows, key=lambda r: r[1], reverse=True)[:20]:
        print(
            f"  {cumulative / total:6.1%} {own / total:6.1%} {calls / args.requests:7.1f}  {name}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--visitors", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--page", default="home", help="the page's slug (home)")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep the interpreter's garbage collection settings (serve tunes them)",
    )
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="tessera-page-profile-") as tmp,
        embedded_mongo(Path(tmp) / "mongo") as mongo,
    ):
        state = Path(tmp) / "state"
        state.mkdir()
        asyncio.run(measure(args, mongo.uri, state))
    return 0


if __name__ == "__main__":
    sys.exit(main())
