"""Many visitors, and many visitors while events arrive: `bench/run.py --scenario many|mixed`.

    python bench/run.py --scenario many            # about 2 minutes
    python bench/run.py --scenario mixed           # about 3 minutes
    python bench/run.py --scenario mixed --serve-workers 2

One run starts a fresh SecantusDB server and the gateway (`bench.app` under
uvicorn, one worker; or `python -m gateway serve --workers N`), seeds
`--visitors` visitors with varied histories (bench/visitors.py: new, light,
returning, outdoor fans, cart abandoners, big first carts, VIPs; desktop,
phone and tablet User-Agents; nine countries), then measures, interleaved
over `--rounds` rounds with the order rotated each round:

- (h) `GET /healthz`: the plain route, the same process and socket;
- (p) `POST /graphql`, the home page query a frontend sends, each request
  for the next visitor (`X-Visitor-Id`, the visitor's User-Agent and
  `CF-IPCountry`), cycling through all of them (bench/rotate.lua);
- (m) mixed only: (p) while another wrk posts event batches to `/v1/events`
  with a publishable key (`--event-connections` connections, `--event-batch`
  events per request, for random visitors of the same population:
  bench/events.lua).

(h) goes through the same Lua script as (p), so both pay wrk the same
per-response cost. A page is unpersonalized when its body says
`"personalized":false` (the profile read fell back): counted by wrk for
every response, so it holds for several workers too. With one process the
profile read outcomes (db, near-cache, stale, fallback) come from
`/bench/stats` (bench.app) or `/metrics` (serve).

Reports medians over the rounds, p/h and m/h, the unpersonalized share,
the load average around each round, and checks the issue's targets. Exits 1
if the run cannot be trusted (a socket error, a non-2xx answer, a page that
is not personalized when the gateway is idle), 2 if wrk is missing or
`--serve-workers` is asked of a `serve` without `--workers`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import loadgen, visitors
from bench.loadgen import WrkResult
from bench.run import (
    PAGE_QUERY,
    BenchError,
    embedded_mongo,
    gateway_process,
    http,
    machine,
    redis_server,
    serve_supports_workers,
    source_fingerprint,
)

#: The issue's targets (issue 12).
TARGET_RATIO = 0.25
TARGET_UNPERSONALIZED = {"p": 0.01, "m": 0.02}
LABELS = {
    "h": "GET /healthz (plain route)",
    "p": "home page, many visitors",
    "m": "home page + events (mixed)",
    "t": "{ __typename }, many visitors",
    "s": "about page, many visitors",
}
#: The floors (`--floors`): requests through /graphql that decide (nearly) nothing.
FLOOR_BODIES = {
    "t": json.dumps({"query": "{ __typename }"}),
    "s": json.dumps({"query": PAGE_QUERY % "about"}),
}


@dataclass(slots=True)
class Round:
    """One scenario's measurement in one round."""

    wrk: WrkResult
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    reads: dict[str, int] = field(default_factory=dict)
    events: dict[str, float] = field(default_factory=dict)
    #: CPU seconds used during the run: gateway (all its processes), database, wrk.
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def gateway_cpu_ms(self) -> float:
        """Gateway CPU time per request, in milliseconds."""
        return 1000 * self.cpu["gateway"] / self.wrk.requests

    @property
    def unpersonalized(self) -> int:
        """Pages whose body said `"personalized":false`."""
        return self.wrk.count("unpersonalized")


@dataclass(slots=True)
class Gateway:
    """The gateway under test and how to read its counters."""

    base_url: str
    process: subprocess.Popen[bytes]
    bench_app: bool
    workers: int
    database_pid: int
    #: Where the next page run continues in the visitor list (see bench/rotate.lua).
    position: int = 0

    def advance(self, result: WrkResult, visitors_count: int) -> None:
        """Move past what a page run asked for (each of wrk's 2 threads did about half)."""
        self.position = (self.position + result.requests // 2) % visitors_count

    def reads(self) -> dict[str, int]:
        """Profile reads by outcome so far (one process's view); {} with several workers."""
        if self.workers > 1:
            return {}
        if self.bench_app:
            return dict(loadgen.json_get(self.base_url, "/bench/stats")["reads"])
        return loadgen.profile_reads(self.base_url)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: the gateway's processes, the database, finished wrk runs."""
        pids = [self.process.pid, *loadgen.children(self.process.pid)]
        return {
            "gateway": sum(loadgen.cpu_seconds(pid) for pid in pids),
            "database": loadgen.cpu_seconds(self.database_pid),
            "wrk": loadgen.children_cpu_seconds(),
        }

    def stats(self) -> dict[str, Any]:
        """bench.app's /bench/stats ({} under serve)."""
        return loadgen.json_get(self.base_url, "/bench/stats") if self.bench_app else {}


def check_pages(base_url: str, population: list[visitors.Visitor], body: bytes) -> dict[str, str]:
    """One page per visitor kind, asked once: 200, no errors, personalized; each hero variant."""
    scopes: dict[str, str] = {}
    for visitor in population:
        if visitor.kind in scopes:
            continue
        status, payload = http(
            "POST",
            f"{base_url}/graphql",
            body,
            {"Content-Type": "application/json", "X-Visitor-Id": visitor.id, **visitor.headers()},
        )
        document = json.loads(payload) if status == 200 else {}
        page = (document.get("data") or {}).get("page") if isinstance(document, dict) else None
        if status != 200 or document.get("errors") or not page:
            raise BenchError(f"the page for {visitor.id} answered {status}: {payload[:500]!r}")
        if page["personalized"] is not True:
            raise BenchError(f"the page for {visitor.id} ({visitor.kind}) is not personalized")
        hero = next(b for b in page["blocks"] if b["blockId"] == "home-hero")
        scopes[visitor.kind] = hero["variantId"]
    return scopes


def measure(
    key: str,
    args: argparse.Namespace,
    wrk: str,
    gateway: Gateway,
    files: dict[str, Path],
    duration: float,
    run_id: str,
) -> Round:
    """Run scenario `key` once."""
    load_before = loadgen.loadavg()
    reads_before = gateway.reads()
    cpu_before = gateway.cpu()
    events: dict[str, float] = {}
    if key == "h":
        result = loadgen.run_rotate(
            wrk, f"{gateway.base_url}/healthz", files["health"], duration=duration,
            connections=args.connections, label="(h) /healthz",
        )  # fmt: skip
    elif key == "p":
        result = loadgen.run_rotate(
            wrk, f"{gateway.base_url}/graphql", files["pages"], files["body"],
            duration=duration, connections=args.connections, label="(p) pages",
            start=gateway.position,
        )  # fmt: skip
        gateway.advance(result, args.visitors)
    elif key in FLOOR_BODIES:
        result = loadgen.run_rotate(
            wrk, f"{gateway.base_url}/graphql", files["pages"], files[f"body-{key}"],
            duration=duration, connections=args.connections, label=f"({key}) floor",
            start=gateway.position,
        )  # fmt: skip
    else:
        # The events start first and end last, so every page request meets them.
        beacons = loadgen.start_events(
            wrk, gateway.base_url, visitors.PUBLISHABLE_KEY, run_id, args.visitors,
            duration=duration + 2, connections=args.event_connections, batch=args.event_batch,
        )  # fmt: skip
        time.sleep(1)
        try:
            result = loadgen.run_rotate(
                wrk, f"{gateway.base_url}/graphql", files["pages"], files["body"],
                duration=duration, connections=args.connections, label="(m) pages",
                start=gateway.position,
            )  # fmt: skip
            gateway.advance(result, args.visitors)
        finally:
            posted = loadgen.finish(beacons, "(m) events", timeout=duration + 60, tolerate_503=True)
        events = {
            "requests_per_s": posted.requests_per_s,
            "events_per_s": posted.requests_per_s * args.event_batch,
            "p50_ms": posted.p50_ms,
            "p99_ms": posted.p99_ms,
            "events": posted.requests * args.event_batch,
            "refused_requests": posted.refused,
        }
    cpu = {name: value - cpu_before[name] for name, value in gateway.cpu().items()}
    reads = loadgen.delta(gateway.reads(), reads_before) if reads_before else {}
    return Round(result, load_before, loadgen.loadavg(), reads, events, cpu)


def warm_up(args: argparse.Namespace, wrk: str, gateway: Gateway, files: dict[str, Path]) -> None:
    """Both routes for `--warmup` s, then pages until every visitor was asked about twice."""
    loadgen.run_rotate(
        wrk, f"{gateway.base_url}/healthz", files["health"], duration=args.warmup,
        connections=args.connections, label="warm-up /healthz",
    )  # fmt: skip
    asked = 0
    deadline = time.monotonic() + 60
    while asked < 2 * args.visitors and time.monotonic() < deadline:
        result = loadgen.run_rotate(
            wrk, f"{gateway.base_url}/graphql", files["pages"], files["body"],
            duration=args.warmup, connections=args.connections, label="warm-up pages",
            start=gateway.position,
        )  # fmt: skip
        gateway.advance(result, args.visitors)
        asked += result.requests
    for key in FLOOR_BODIES if args.floors else ():
        loadgen.run_rotate(
            wrk, f"{gateway.base_url}/graphql", files["pages"], files[f"body-{key}"],
            duration=args.warmup, connections=args.connections, label=f"warm-up ({key})",
            start=gateway.position,
        )  # fmt: skip
    print(f"warm-up: {asked} page requests", flush=True)


def profile_round(
    key: str,
    args: argparse.Namespace,
    wrk: str,
    gateway: Gateway,
    files: dict[str, Path],
    run_id: str,
    output_dir: Path,
) -> dict[str, Any]:
    """Measure `key` once more under py-spy (not counted in the medians); the top frames."""
    raw = output_dir / f"pyspy-{args.scenario}-{key}.txt"
    duration = max(args.duration, 8)
    # Under serve the app runs in the parent's workers: sample them all.
    spy = loadgen.py_spy_record(
        gateway.process.pid, duration - 2, raw, subprocesses=not gateway.bench_app
    )
    measured = measure(key, args, wrk, gateway, files, duration, f"{run_id}-spy")
    output, _ = spy.communicate(timeout=60)
    if not raw.exists():
        raise BenchError(f"py-spy wrote nothing (is ptrace allowed?):\n{output}")
    profile = loadgen.summarize(raw, top=25)
    loadgen.print_profile(
        profile,
        f"py-spy, ({key}) {LABELS[key]} at {measured.wrk.requests_per_s:.0f} req/s "
        f"(raw stacks: {raw})",
    )
    return {"raw": str(raw), **asdict(profile)}


def run_scenario(args: argparse.Namespace, wrk: str) -> int:
    """`bench/run.py --scenario many|mixed`: measure, report, write JSON; the exit status."""
    if args.serve_workers is not None and args.serve_workers > 1 and not serve_supports_workers():
        print(
            "`python -m gateway serve` has no --workers option on this checkout yet: "
            "--serve-workers needs it (issue 12). The scenario is ready for it.",
            file=sys.stderr,
        )
        return 2
    info = machine(wrk)
    source = source_fingerprint()
    keys = ["h", "p"] + (["m"] if args.scenario == "mixed" else [])
    keys += list(FLOOR_BODIES) if args.floors else []
    print(
        f"source fingerprint {source}; load average {loadgen.loadavg()}; "
        f"scenarios {', '.join(keys)}",
        flush=True,
    )
    run_id = uuid.uuid4().hex[:8]
    population = visitors.population(args.visitors)
    env = {
        "PUBLISHABLE_KEYS": visitors.PUBLISHABLE_KEY,
        "LOG_LEVEL": "WARNING",
        **args.env,
    }
    rounds: dict[str, list[Round]] = {key: [] for key in keys}
    extra: dict[str, Any] = {}
    try:
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="tessera-many-"))
            mongo = stack.enter_context(embedded_mongo(Path(tmp) / "mongo"))
            if args.redis:
                # The replicas' configuration: content cache, persisted queries, rate limits.
                env["CACHE_URL"] = stack.enter_context(redis_server(Path(tmp) / "redis"))
            url, process = stack.enter_context(
                gateway_process(mongo.uri, Path(tmp), env, args.serve_workers)
            )
            gateway = Gateway(
                url,
                process,
                bench_app=args.serve_workers is None,
                workers=args.serve_workers or 1,
                database_pid=mongo.process.pid if mongo.process is not None else 0,
            )
            began = time.monotonic()
            if args.seed == "api":
                seeded = visitors.seed_api(url, population)
                what = f"{seeded} events posted to /v1/events"
            else:
                seeded = visitors.seed_direct(mongo.uri, "tessera_bench", population)
                what = f"{seeded} profiles inserted"
            print(
                f"gateway at {url}; {args.visitors} visitors {visitors.kinds(population)}: "
                f"{what} in {time.monotonic() - began:.1f} s",
                flush=True,
            )
            folder = Path(tmp)
            body = json.dumps({"query": PAGE_QUERY % "home"})
            (folder / "body.json").write_text(body)
            files = {
                "pages": visitors.requests_file(
                    folder / "pages.txt", visitors.page_requests(population)
                ),
                "health": visitors.requests_file(folder / "health.txt", [("GET", "/healthz", {})]),
                "body": folder / "body.json",
            }
            for key, floor in FLOOR_BODIES.items():
                files[f"body-{key}"] = folder / f"body-{key}.json"
                files[f"body-{key}"].write_text(floor)
            extra["heroes"] = check_pages(url, population, body.encode())
            warm_up(args, wrk, gateway, files)
            for number in range(args.rounds):
                shift = number % len(keys)
                for key in keys[shift:] + keys[:shift]:
                    measured = measure(key, args, wrk, gateway, files, args.duration, run_id)
                    rounds[key].append(measured)
                    print(round_line(number, args.rounds, key, measured), flush=True)
            if args.py_spy:
                args.output.parent.mkdir(parents=True, exist_ok=True)
                extra["py_spy"] = {
                    key: profile_round(key, args, wrk, gateway, files, run_id, args.output.parent)
                    for key in keys
                    if key in ("p", "m")
                }
            extra["stats"] = gateway.stats()
            log = args.output.with_suffix(".gateway.log")
            log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / "uvicorn.log", log)
            warnings = [line for line in log.read_text(errors="replace").splitlines() if line]
            print(f"gateway log: {len(warnings)} lines, kept in {log}", flush=True)
            for line in warnings[:10]:
                print(f"    {line[:200]}")
    except (BenchError, RuntimeError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    summary = report(args, rounds)
    refused = summary.get("m", {}).get("events_refused_requests", 0)
    results = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_fingerprint": source,
        "machine": info,
        "config": {
            "scenario": args.scenario,
            "visitors": args.visitors,
            "kinds": visitors.kinds(population),
            "seed": args.seed,
            "connections": args.connections,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "event_connections": args.event_connections,
            "event_batch": args.event_batch,
            "serve_workers": args.serve_workers,
            "redis": args.redis,
            "floors": args.floors,
            "gateway_env": args.env,
        },
        "summary": summary,
        "rounds": {
            key: [
                {
                    **asdict(r.wrk),
                    "load_before": r.load_before,
                    "load_after": r.load_after,
                    "reads": r.reads,
                    "events": r.events,
                    "cpu_s": r.cpu,
                }
                for r in measured
            ]
            for key, measured in rounds.items()
        },
        **extra,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.output}")
    if refused:
        print(f"run not trustworthy: {refused} event requests were refused (503)", file=sys.stderr)
        return 1
    return 0


def round_line(number: int, total: int, key: str, measured: Round) -> str:
    """One progress line."""
    w = measured.wrk
    line = (
        f"round {number + 1}/{total} ({key}) {w.requests_per_s:,.0f} req/s, "
        f"p50 {w.p50_ms:.2f} ms, p99 {w.p99_ms:.2f} ms"
    )
    if key != "h":
        share = measured.unpersonalized / w.requests
        line += f", unpersonalized {measured.unpersonalized}/{w.requests} ({share:.2%})"
    if measured.reads:
        line += ", reads " + " ".join(f"{k}={v}" for k, v in measured.reads.items() if v)
    if measured.events:
        line += f", events {measured.events['events_per_s']:,.0f}/s"
        if measured.events["refused_requests"]:
            line += f" ({measured.events['refused_requests']:.0f} requests refused with 503)"
    line += (
        f", gateway CPU {measured.gateway_cpu_ms:.3f} ms/request (+ database "
        f"{measured.cpu['database']:.1f} s, wrk {measured.cpu['wrk']:.1f} s)"
    )
    return line + f", load {measured.load_before[0]:.1f}->{measured.load_after[0]:.1f}"


def report(args: argparse.Namespace, rounds: dict[str, list[Round]]) -> dict[str, Any]:
    """Print the table, the ratios and the targets; return the summary."""
    summary: dict[str, Any] = {}
    print()
    print(f"{'scenario':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  unpersonalized   per round")
    for key, measured in rounds.items():
        requests = sum(r.wrk.requests for r in measured)
        unpersonalized = sum(r.unpersonalized for r in measured)
        figures = {
            "requests_per_s": statistics.median(r.wrk.requests_per_s for r in measured),
            "p50_ms": statistics.median(r.wrk.p50_ms for r in measured),
            "p99_ms": statistics.median(r.wrk.p99_ms for r in measured),
            "requests": requests,
            "unpersonalized": unpersonalized,
            "unpersonalized_share": unpersonalized / requests if key != "h" else None,
            "reads": {
                outcome: sum(r.reads.get(outcome, 0) for r in measured)
                for outcome in loadgen.READ_OUTCOMES
            }
            if any(r.reads for r in measured)
            else None,
            "load": [r.load_before[0] for r in measured],
            "gateway_cpu_ms_per_request": statistics.median(r.gateway_cpu_ms for r in measured),
            "cpu_share": {
                name: statistics.median(r.cpu[name] / r.wrk.seconds for r in measured)
                for name in ("gateway", "database", "wrk")
            },
        }
        if key == "m":
            figures["events_per_s"] = statistics.median(r.events["events_per_s"] for r in measured)
            figures["events_p99_ms"] = statistics.median(r.events["p99_ms"] for r in measured)
            figures["events_refused_requests"] = sum(r.events["refused_requests"] for r in measured)
        summary[key] = figures
        per_round = " · ".join(f"{r.wrk.requests_per_s:.0f}" for r in measured)
        share = (
            "" if key == "h" else f"{unpersonalized}/{requests} ({unpersonalized / requests:.2%})"
        )
        print(
            f"({key}) {LABELS[key]:<30} {figures['requests_per_s']:>9,.0f} "
            f"{figures['p50_ms']:>8.2f} {figures['p99_ms']:>8.2f}  {share:<16} {per_round}"
        )
    plain = summary["h"]["requests_per_s"]
    print()
    for key in ("t", "s"):
        if key in summary:
            ratio = summary[key]["ratio_to_plain"] = summary[key]["requests_per_s"] / plain
            cpu_ratio = (
                summary["h"]["gateway_cpu_ms_per_request"]
                / summary[key]["gateway_cpu_ms_per_request"]
            )
            summary[key]["cpu_ratio_to_plain"] = cpu_ratio
            print(
                f"floor {key}/h = {ratio:.3f} ({LABELS[key]}; gateway CPU "
                f"{summary[key]['gateway_cpu_ms_per_request']:.3f} ms per request, "
                f"ratio {cpu_ratio:.3f})"
            )
    for key in ("p", "m"):
        if key not in summary:
            continue
        ratio = summary[key]["requests_per_s"] / plain
        summary[key]["ratio_to_plain"] = ratio
        share = summary[key]["unpersonalized_share"]
        met_ratio = "met" if ratio >= TARGET_RATIO else "MISSED"
        met_share = "met" if share <= TARGET_UNPERSONALIZED[key] else "MISSED"
        print(
            f"{key}/h = {ratio:.3f} (target >= {TARGET_RATIO} of the plain route: {met_ratio}); "
            f"unpersonalized {share:.2%} (target <= {TARGET_UNPERSONALIZED[key]:.0%}: {met_share})"
        )
        cpu_ratio = (
            summary["h"]["gateway_cpu_ms_per_request"]
            / (summary[key]["gateway_cpu_ms_per_request"])
        )
        summary[key]["cpu_ratio_to_plain"] = cpu_ratio
        shares = summary[key]["cpu_share"]
        print(
            f"    gateway CPU per request: {summary[key]['gateway_cpu_ms_per_request']:.3f} ms "
            f"against {summary['h']['gateway_cpu_ms_per_request']:.3f} ms for /healthz "
            f"(ratio {cpu_ratio:.3f}); cores busy during ({key}): gateway "
            f"{shares['gateway']:.2f}, database {shares['database']:.2f}, wrk {shares['wrk']:.2f}"
        )
        reads = summary[key]["reads"]
        if reads:
            total = sum(reads.values()) or 1
            print(
                "    profile reads: "
                + ", ".join(f"{k} {v} ({v / total:.1%})" for k, v in reads.items())
            )
    if "m" in summary:
        print(
            f"    events ingested during (m): {summary['m']['events_per_s']:,.0f}/s "
            f"(p99 {summary['m']['events_p99_ms']:.0f} ms per batch of {args.event_batch}); "
            f"{summary['m']['events_refused_requests']} event requests refused with 503"
        )
    return summary
