"""Soak: pages for ~20,000 visitors and event beacons together, for minutes; memory and misses.

Run from the repository root with the project's virtualenv active:

    python bench/soak.py                 # about 6 minutes (5 of load)
    python bench/soak.py --minutes 30    # the issue's long soak

It starts a fresh SecantusDB server and the gateway (`bench.app` under
uvicorn, one worker), seeds `--visitors` visitors with varied histories
(bench/visitors.py; `--seed direct` by default: folded into profiles by the
ingestion code and bulk-inserted, which takes ~20 s for 20,000), then runs
two wrk processes side by side, in slices of `--slice` seconds:

- page workers: `--page-connections` connections (12) asking for the home
  page, each request for the next visitor (bench/rotate.lua);
- event workers: `--event-connections` connections (3) posting batches of
  `--event-batch` events (10) for random visitors (bench/events.lua).

After each slice it prints and records: pages/s, p50/p99, the share served
unpersonalized (bodies saying `"personalized":false`), the profile read
outcomes, events/s, the gateway's and the database's resident memory, the
near-cache's size and the load average. Slices are warm-up until
`--warmup-minutes` have passed and every visitor was asked for at least once
(until then the near-cache fills, by design); RSS growth is measured from the
end of warm-up to the end, also as a trend (least squares, MB per minute).

Exits 1 if any slice saw a socket error or a non-2xx answer (503s to events,
the gateway shedding load, are counted apart as "refused" but fail the run
too), or the gateway died; 2 if wrk is missing. Writes bench/results/soak.json (every slice) and
keeps the gateway's log beside it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import loadgen, visitors
from bench.run import (
    PAGE_QUERY,
    BenchError,
    embedded_mongo,
    find_wrk,
    gateway_process,
    http,
    machine,
    source_fingerprint,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "soak.json"
#: The issue's targets (issue 12).
TARGET_RSS_GROWTH = 0.05
TARGET_UNPERSONALIZED = 0.02
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Slice:
    """What one slice measured."""

    at_s: float
    warmup: bool
    pages: int
    pages_per_s: float
    p50_ms: float
    p99_ms: float
    unpersonalized: int
    events_per_s: float
    events_p99_ms: float
    events_refused: int
    template_failures: int
    reads: dict[str, int]
    gateway_rss: int
    database_rss: int
    near_cache_entries: int
    near_cache_bytes: int
    feed_restarts: int
    page_cache_entries: int
    load: tuple[float, float, float]
    #: Exposure documents queued for the database (bounded by EXPOSURE_QUEUE_SIZE).
    exposures_queued: int = 0
    error: str | None = None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python bench/soak.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="minutes of load (5)")
    parser.add_argument(
        "--warmup-minutes",
        type=float,
        default=None,
        help="minutes counted as warm-up (default: a third of --minutes, at most 5)",
    )
    parser.add_argument("--visitors", type=int, default=20_000, help="visitor ids (20000)")
    parser.add_argument("--page-connections", type=int, default=12, help="page workers (12)")
    parser.add_argument("--event-connections", type=int, default=3, help="event workers (3)")
    parser.add_argument("--event-batch", type=int, default=10, help="events per request (10)")
    parser.add_argument("--slice", type=float, default=20.0, help="seconds per slice (20)")
    parser.add_argument("--seed", choices=("api", "direct"), default="direct")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a gateway setting for this run (repeatable)",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="trace the gateway's allocations (PYTHONTRACEMALLOC=1, slower) and list the "
        "sites that grew after warm-up",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.slice < 2 or args.visitors < 1:
        parser.error("--minutes must be positive, --slice at least 2, --visitors at least 1")
    if args.warmup_minutes is None:
        args.warmup_minutes = min(5.0, args.minutes / 3)
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    args.env = dict(item.split("=", 1) for item in args.env)
    return args


def trend_mb_per_minute(points: list[tuple[float, int]]) -> float:
    """The least-squares slope of RSS (bytes) over time (seconds), in MB per minute."""
    if len(points) < 2:
        return 0.0
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return slope * 60 / MB


def run_slice(
    args: argparse.Namespace,
    wrk: str,
    base_url: str,
    files: dict[str, Path],
    run_id: str,
    number: int,
    start: int,
) -> tuple[loadgen.WrkResult | None, loadgen.WrkResult | None, str | None]:
    """Pages and events side by side for one slice; the error instead of raising."""
    beacons = loadgen.start_events(
        wrk, base_url, visitors.PUBLISHABLE_KEY, f"{run_id}-{number}", args.visitors,
        duration=args.slice, connections=args.event_connections, batch=args.event_batch,
    )  # fmt: skip
    pages = loadgen.start_rotate(
        wrk, f"{base_url}/graphql", files["pages"], files["body"],
        duration=args.slice, connections=args.page_connections, start=start,
    )  # fmt: skip
    page_result = event_result = None
    problems = []
    try:
        page_result = loadgen.finish(pages, "pages", timeout=args.slice + 60)
    except BenchError as exc:
        problems.append(str(exc))
    try:
        event_result = loadgen.finish(beacons, "events", timeout=args.slice + 60, tolerate_503=True)
    except BenchError as exc:
        problems.append(str(exc))
    return page_result, event_result, "\n".join(problems) or None


def main(argv: list[str] | None = None) -> int:
    """Run the soak; the exit status says whether it could be trusted."""
    args = parse_args(argv)
    wrk = find_wrk()
    info = machine(wrk)
    source = source_fingerprint()
    run_id = uuid.uuid4().hex[:8]
    population = visitors.population(args.visitors)
    print(
        f"source fingerprint {source}; load average {loadgen.loadavg()}; {args.minutes} min of "
        f"load ({args.warmup_minutes:.1f} warm-up), {args.visitors} visitors, "
        f"{args.page_connections} page + {args.event_connections} event connections",
        flush=True,
    )
    env = {"PUBLISHABLE_KEYS": visitors.PUBLISHABLE_KEY, "LOG_LEVEL": "WARNING", **args.env}
    if args.tracemalloc:
        env["PYTHONTRACEMALLOC"] = "1"
    growth: dict[str, Any] = {}
    slices: list[Slice] = []
    died = False
    try:
        with (
            tempfile.TemporaryDirectory(prefix="tessera-soak-") as tmp,
            embedded_mongo(Path(tmp) / "mongo") as mongo,
            gateway_process(mongo.uri, Path(tmp), env) as (base_url, process),
        ):
            began = time.monotonic()
            if args.seed == "api":
                seeded = visitors.seed_api(base_url, population)
                what = f"{seeded} events posted"
            else:
                seeded = visitors.seed_direct(mongo.uri, "tessera_bench", population)
                what = f"{seeded} profiles inserted"
            print(
                f"gateway at {base_url} (pid {process.pid}); {visitors.kinds(population)}: "
                f"{what} in {time.monotonic() - began:.1f} s",
                flush=True,
            )
            folder = Path(tmp)
            (folder / "body.json").write_text(json.dumps({"query": PAGE_QUERY % "home"}))
            files = {
                "pages": visitors.requests_file(
                    folder / "pages.txt", visitors.page_requests(population)
                ),
                "body": folder / "body.json",
            }
            database_pid = mongo.process.pid if mongo.process is not None else 0
            print(
                f"{'t (s)':>6} {'pages/s':>8} {'p50':>6} {'p99':>7} {'unpers.':>8} "
                f"{'events/s':>8} {'reads db/cache/stale/fb':>24} {'RSS MB':>7} {'DB MB':>6} "
                f"{'cache':>12} {'pages':>6} {'expo.':>6} {'load':>5}",
                flush=True,
            )
            start = time.monotonic()
            stats = loadgen.json_get(base_url, "/bench/stats")
            number = 0
            # Where the next slice's page workers continue in the visitor list.
            offset = 0
            asked = 0
            baseline_taken = False
            while time.monotonic() - start < args.minutes * 60:
                number += 1
                before = stats["reads"]
                failures_before = stats.get("template_failures", 0)
                pages, events, error = run_slice(args, wrk, base_url, files, run_id, number, offset)
                # wrk's two threads each did about half the requests.
                offset = (offset + (pages.requests // 2 if pages else 0)) % args.visitors
                if process.poll() is not None:
                    died = True
                    error = f"the gateway exited with status {process.returncode}"
                try:
                    stats = loadgen.json_get(base_url, "/bench/stats")
                except (BenchError, OSError) as exc:
                    died = True
                    error = f"{error or ''} /bench/stats failed: {exc}".strip()
                elapsed = time.monotonic() - start
                asked += pages.requests if pages else 0
                measured = Slice(
                    at_s=round(elapsed, 1),
                    # Until every visitor was asked for once, memory grows by design
                    # (the near-cache fills); warm-up lasts at least that long.
                    # The page response cache (bounded) must be full too.
                    warmup=elapsed <= args.warmup_minutes * 60
                    or asked < args.visitors
                    or stats["page_cache"]["entries"] < stats["page_cache"].get("capacity", 0),
                    pages=pages.requests if pages else 0,
                    pages_per_s=pages.requests_per_s if pages else 0.0,
                    p50_ms=pages.p50_ms if pages else 0.0,
                    p99_ms=pages.p99_ms if pages else 0.0,
                    unpersonalized=pages.count("unpersonalized") if pages else 0,
                    events_per_s=events.requests_per_s * args.event_batch if events else 0.0,
                    events_p99_ms=events.p99_ms if events else 0.0,
                    events_refused=events.refused if events else 0,
                    template_failures=stats.get("template_failures", 0) - failures_before,
                    reads=loadgen.delta(stats["reads"], before) if not died else {},
                    gateway_rss=loadgen.rss_bytes(process.pid),
                    database_rss=loadgen.rss_bytes(database_pid),
                    near_cache_entries=stats["near_cache"]["entries"],
                    near_cache_bytes=stats["near_cache"]["bytes"],
                    feed_restarts=stats["near_cache"].get("feed_restarts", 0),
                    page_cache_entries=stats["page_cache"]["entries"],
                    load=loadgen.loadavg(),
                    exposures_queued=stats["exposures"].get("queued", 0),
                    error=error,
                )
                if args.tracemalloc and not measured.warmup and not baseline_taken:
                    # The first slice after warm-up: allocations from here on are growth.
                    # A snapshot of a busy process with every allocation traced is slow.
                    http("POST", f"{base_url}/bench/memory", timeout=300)
                    baseline_taken = True
                slices.append(measured)
                print(progress_line(measured), flush=True)
                if error:
                    print(f"    ERROR: {error[:2000]}", flush=True)
                if measured.events_refused:
                    print(
                        f"    {measured.events_refused} event requests refused with 503 "
                        "(the gateway shedding load: a commit ran past its bound)",
                        flush=True,
                    )
                if died:
                    break
            if baseline_taken and not died:
                status, body = http("GET", f"{base_url}/bench/memory", timeout=300)
                if status != 200:
                    raise BenchError(f"/bench/memory answered {status}: {body[:300]!r}")
                growth = json.loads(body)
                print(
                    f"\ntracemalloc: {growth['traced_bytes'] / MB:.1f} MB traced; the sites "
                    "that grew most since the end of warm-up:"
                )
                for site in growth["growth"][:15]:
                    print(f"  {site['bytes'] / 1024:+9.0f} KiB {site['count']:+8d}  {site['site']}")
            log = args.output.with_suffix(".gateway.log")
            log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / "uvicorn.log", log)
    except (BenchError, RuntimeError) as exc:
        print(f"soak failed: {exc}", file=sys.stderr)
        return 1
    summary = report(args, slices)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                "source_fingerprint": source,
                "machine": info,
                "config": {
                    key: value if not isinstance(value, Path) else str(value)
                    for key, value in vars(args).items()
                },
                "kinds": visitors.kinds(population),
                "summary": summary,
                "tracemalloc": growth,
                "slices": [asdict(s) for s in slices],
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"\nwrote {args.output} (gateway log beside it)")
    return 1 if summary["errors"] or summary["events_refused"] or died else 0


def progress_line(s: Slice) -> str:
    """One line per slice."""
    reads = "/".join(str(s.reads.get(k, 0)) for k in loadgen.READ_OUTCOMES)
    share = s.unpersonalized / s.pages if s.pages else 0.0
    cache = f"{s.near_cache_entries}/{s.near_cache_bytes / MB:.0f}MB"
    return (
        f"{s.at_s:>6.0f} {s.pages_per_s:>8.0f} {s.p50_ms:>6.1f} {s.p99_ms:>7.1f} "
        f"{share:>8.2%} {s.events_per_s:>8.0f} {reads:>24} {s.gateway_rss / MB:>7.1f} "
        f"{s.database_rss / MB:>6.0f} {cache:>12} {s.page_cache_entries:>6} "
        f"{s.exposures_queued:>6} {s.load[0]:>5.1f}" + ("  (warm-up)" if s.warmup else "")
    )


def report(args: argparse.Namespace, slices: list[Slice]) -> dict[str, Any]:
    """Print the summary and the targets; return it."""
    measured = [s for s in slices if not s.warmup]
    if not measured:
        print(
            "\nWARNING: the whole run was warm-up (not every visitor was asked for yet): "
            "run longer (--minutes) for figures after warm-up"
        )
        measured = slices[-1:]
    pages = sum(s.pages for s in measured)
    unpersonalized = sum(s.unpersonalized for s in measured)
    all_pages = sum(s.pages for s in slices)
    all_unpersonalized = sum(s.unpersonalized for s in slices)
    errors = [s.error for s in slices if s.error]
    refused = sum(s.events_refused for s in slices)
    baseline = measured[0]
    # RSS at the end of warm-up: the sample taken after the last warm-up slice.
    warm = [s for s in slices if s.warmup]
    base_rss = warm[-1].gateway_rss if warm else baseline.gateway_rss
    base_cache = warm[-1].near_cache_bytes if warm else baseline.near_cache_bytes
    final = slices[-1]
    growth = (final.gateway_rss - base_rss) / base_rss if base_rss else 0.0
    points = [(s.at_s, s.gateway_rss) for s in ([warm[-1]] if warm else []) + measured]
    shares = [s.unpersonalized / s.pages for s in measured if s.pages]
    # Whether growth levels off: the second half of the measured slices alone.
    middle = measured[len(measured) // 2]
    late_growth = (final.gateway_rss - middle.gateway_rss) / middle.gateway_rss
    summary = {
        "slices": len(slices),
        "errors": errors,
        "events_refused": refused,
        "template_failures": sum(s.template_failures for s in slices),
        "pages": all_pages,
        "pages_after_warmup": pages,
        "unpersonalized_share": all_unpersonalized / all_pages if all_pages else None,
        "unpersonalized_share_after_warmup": unpersonalized / pages if pages else None,
        "worst_slice_share": max(shares) if shares else None,
        "pages_per_s_median": statistics.median(s.pages_per_s for s in measured),
        "p99_ms_median": statistics.median(s.p99_ms for s in measured),
        "events_per_s_median": statistics.median(s.events_per_s for s in measured),
        "rss_after_warmup_mb": base_rss / MB,
        "rss_final_mb": final.gateway_rss / MB,
        "rss_growth": growth,
        "rss_trend_mb_per_min": trend_mb_per_minute(points),
        "rss_growth_second_half": late_growth,
        "rss_trend_second_half_mb_per_min": trend_mb_per_minute(
            [(s.at_s, s.gateway_rss) for s in measured[len(measured) // 2 :]]
        ),
        "exposures_queued_final": final.exposures_queued,
        "near_cache_growth_mb": (final.near_cache_bytes - base_cache) / MB,
        "database_rss_final_mb": final.database_rss / MB,
        "load_median": statistics.median(s.load[0] for s in slices),
    }
    print()
    print(
        f"{len(slices)} slices, {all_pages} pages, {len(errors)} slices with errors; "
        f"after warm-up: {pages} pages at {summary['pages_per_s_median']:.0f}/s (median), "
        f"p99 {summary['p99_ms_median']:.0f} ms, events {summary['events_per_s_median']:.0f}/s"
    )
    share = unpersonalized / pages if pages else 0.0
    print(
        f"unpersonalized after warm-up: {unpersonalized}/{pages} ({share:.2%}; worst slice "
        f"{(summary['worst_slice_share'] or 0):.2%}; whole run "
        f"{(summary['unpersonalized_share'] or 0):.2%}); target <= {TARGET_UNPERSONALIZED:.0%}: "
        + ("met" if share <= TARGET_UNPERSONALIZED else "MISSED")
    )
    print(
        f"gateway RSS: {base_rss / MB:.1f} MB after warm-up -> {final.gateway_rss / MB:.1f} MB "
        f"at the end ({growth:+.1%}; trend {summary['rss_trend_mb_per_min']:+.2f} MB/min; "
        f"the near-cache grew {summary['near_cache_growth_mb']:+.1f} MB meanwhile); "
        f"target <= {TARGET_RSS_GROWTH:.0%}: "
        + ("met" if growth <= TARGET_RSS_GROWTH else "MISSED")
    )
    print(
        f"    second half of the measured slices: {late_growth:+.1%} "
        f"(trend {summary['rss_trend_second_half_mb_per_min']:+.2f} MB/min); "
        f"{final.exposures_queued} exposure documents queued at the end"
    )
    print(
        f"event requests refused with 503: {refused}; templated fields that fell back to "
        f"plain text: {summary['template_failures']}"
    )
    print(f"load average (1 min) median over slices: {summary['load_median']:.1f}")
    if args.tracemalloc:
        print(
            "(--tracemalloc: tracing slows the gateway several times and the snapshots "
            "themselves take memory; use its RSS figures for nothing but the sites above)"
        )
    return summary


if __name__ == "__main__":
    sys.exit(main())
