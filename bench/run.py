"""Load-test the personalized home page against two physical baselines.

Run from the repository root with the project's virtualenv active:

    python bench/run.py [--duration 10] [--rounds 3]

It starts a fresh SecantusDB server and the gateway (`bench.app`, one uvicorn
worker) on free loopback ports, captures the GraphQL response of the home page
for the demo visitor `demo-vip`, then drives three endpoints with wrk
(16 connections, 2 threads), interleaved over several rounds:

- (a) `POST /graphql`: the personalized home page query;
- (b) `GET /bench/static`: the same bytes, pre-serialized (no I/O);
- (c) `GET /bench/profile`: one profile read through the gateway's MongoDB
  client, then the same bytes.

`--page SLUG` measures another demo page; `--model` first registers and
activates a small calibrated variant model, so (a) scores the page's
contested blocks (the `sale` page has one, for `demo-vip`), with the default
exploration.

`--scenario many` measures many visitors instead (`--visitors 2000` with
varied histories, devices and countries) against `GET /healthz`;
`--scenario mixed` adds a round with event ingestion running at the same
time; `--serve-workers N` runs them against `python -m gateway serve
--workers N` instead of `bench.app`. See `bench/many.py`.

It prints the median requests/s, p50 and p99 latency of each, the ratios a/b
and a/c, and writes everything to `bench/results/latest.json`. Exits 2 when
wrk is missing, 1 when the run is not trustworthy (errors, non-2xx responses).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# `python bench/run.py` puts bench/ first on the path, not the repository root.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.embedded_mongo import EmbeddedMongo, free_port  # noqa: E402

WRK_SCRIPT = ROOT / "bench" / "wrk.lua"
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "latest.json"
HOST = "127.0.0.1"
CONNECTIONS = 16
THREADS = 2
VISITOR_ID = "demo-vip"
# The code and demo content a run measures (other work may change them between runs).
SOURCE_PACKAGES = ("gateway", "resolvers", "blocks", "profiles", "cms_adapters", "scoring")
# A minimal Strawberry resolver (one profile read, 10 blocks) on the same machines.
REFERENCE_RATIOS = {"a/b": 0.10, "a/c": 0.37}
PAGE_QUERY = (
    '{ page(slug: "%s") { slug title locale personalized blocks { id blockId type variantId '
    "decision { variantId reason ruleId } "
    "... on HeroBlock { heading subheading cta { label url } } "
    "... on ProductGridBlock { title products { sku name price currency } } "
    "... on BannerBlock { text tone } "
    "... on CallToActionBlock { heading body button { label url } } "
    "... on TestimonialBlock { quote author rating } "
    "... on RichTextBlock { html } "
    "... on GenericBlock { fields } } } }"
)
#: The signing key and the poll interval a `--model` run gives the gateway.
MODEL_ENV = {"MODEL_SIGNING_KEY": "bench-signing-key", "MODEL_POLL_SECONDS": "0.5"}


def page_body(slug: str) -> str:
    """The JSON body of the page query (a) sends."""
    return json.dumps({"query": PAGE_QUERY % slug})


_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")


class BenchError(RuntimeError):
    """The benchmark could not run, or its measurements cannot be trusted."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One endpoint under load."""

    key: str
    label: str
    method: str
    path: str
    visitor_id: str | None = None
    body: str | None = None

    def wrk_args(self) -> list[str]:
        """The arguments `bench/wrk.lua` reads: METHOD [VISITOR_ID [BODY]]."""
        args = [self.method, self.visitor_id or ""]
        return [*args, self.body] if self.body is not None else args


def scenarios(slug: str) -> tuple[Scenario, ...]:
    """(a) the page `slug`, (b) and (c) its baselines."""
    return (
        Scenario(
            "a", f"GraphQL {slug} page ({VISITOR_ID})", "POST", "/graphql", VISITOR_ID,
            page_body(slug),
        ),
        Scenario("b", "static pre-serialized bytes", "GET", "/bench/static"),
        Scenario("c", "profile read + static bytes", "GET", "/bench/profile", VISITOR_ID),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Measurement:
    """One wrk run against one endpoint."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    requests: int
    bytes_per_response: float


@dataclass(frozen=True, slots=True)
class Summary:
    """The median of a scenario's rounds."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float

    @classmethod
    def median_of(cls, rounds: list[Measurement]) -> Summary:
        """Each figure's median over the rounds (taken separately)."""
        return cls(
            requests_per_s=statistics.median(m.requests_per_s for m in rounds),
            p50_ms=statistics.median(m.p50_ms for m in rounds),
            p99_ms=statistics.median(m.p99_ms for m in rounds),
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python bench/run.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per endpoint (2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a gateway setting for this run, e.g. RESPONSE_CACHE_SIZE=0 (repeatable)",
    )
    parser.add_argument("--page", default="home", help="the demo page (a) requests (home)")
    parser.add_argument(
        "--model",
        action="store_true",
        help="activate a variant model before measuring, so (a) scores its contested blocks",
    )
    parser.add_argument(
        "--scenario",
        choices=("single", "many", "mixed"),
        default="single",
        help="single: one visitor, (a)/(b)/(c) as below (default); many: --visitors "
        "visitors against GET /healthz; mixed: many, plus pages with events ingested "
        "at the same time (bench/many.py)",
    )
    parser.add_argument("--visitors", type=int, default=2000, help="visitors in many/mixed (2000)")
    parser.add_argument(
        "--seed",
        choices=("api", "direct"),
        default="api",
        help="many/mixed: seed histories through POST /v1/events (api, default) or fold "
        "them into profiles with the ingestion code and bulk-insert (direct)",
    )
    parser.add_argument(
        "--connections", type=int, default=CONNECTIONS, help=f"wrk connections ({CONNECTIONS})"
    )
    parser.add_argument(
        "--event-connections",
        type=int,
        default=2,
        help="mixed: wrk connections posting events (2)",
    )
    parser.add_argument(
        "--event-batch", type=int, default=10, help="mixed: events per request (10)"
    )
    parser.add_argument(
        "--serve-workers",
        type=int,
        default=None,
        metavar="N",
        help="many/mixed: run `python -m gateway serve --workers N` instead of bench.app",
    )
    parser.add_argument(
        "--redis",
        action="store_true",
        help="many/mixed: start a private redis-server and set CACHE_URL to it, as replicas "
        "run (content cache, persisted queries and rate limits in Redis)",
    )
    parser.add_argument(
        "--floors",
        action="store_true",
        help="many/mixed: also measure what bounds any page from below, for the same "
        "visitors: (t) `{ __typename }` through /graphql and (s) the `about` page, "
        "which has nothing to personalize",
    )
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="many/mixed: after the rounds, profile the gateway under the page load "
        "(py-spy) and print the top frames",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help=f"JSON results ({DEFAULT_OUTPUT})"
    )
    args = parser.parse_args(argv)
    if args.output is None:
        name = "latest" if args.scenario == "single" else args.scenario
        if args.serve_workers is not None:
            name += f"-serve{args.serve_workers}"
        if args.redis:
            name += "-redis"
        if args.floors:
            name += "-floors"
        args.output = DEFAULT_OUTPUT.with_name(f"{name}.json")
    if args.duration < 1 or args.warmup < 1 or args.rounds < 1:
        parser.error("--duration, --warmup and --rounds must be at least 1")
    if args.visitors < 1 or args.connections < 1 or args.event_connections < 1:
        parser.error("--visitors and the connection counts must be at least 1")
    if args.serve_workers is not None and args.scenario == "single":
        parser.error("--serve-workers needs --scenario many or mixed (single uses /bench routes)")
    if args.redis and args.scenario == "single":
        parser.error("--redis needs --scenario many or mixed")
    if args.floors and args.scenario == "single":
        parser.error("--floors needs --scenario many or mixed")
    if args.serve_workers is not None and args.serve_workers < 1:
        parser.error("--serve-workers must be at least 1")
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    args.env = dict(item.split("=", 1) for item in args.env)
    if args.model:
        args.env = {**MODEL_ENV, **args.env}
    return args


def find_wrk() -> str:
    """The wrk executable; exits with status 2 and instructions if it is missing."""
    wrk = shutil.which("wrk")
    if wrk is None:
        print(
            "wrk is not installed: install it (Debian/Ubuntu: `apt-get install -y wrk`) "
            "and run again.",
            file=sys.stderr,
        )
        sys.exit(2)
    return wrk


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, bytes]:
    """One plain HTTP request: the status and the body."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextmanager
def embedded_mongo(directory: Path) -> Iterator[EmbeddedMongo]:
    """A fresh SecantusDB server (it slows as it ages, so one per run)."""
    server = EmbeddedMongo(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A private redis-server (no persistence) on a free port; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port(HOST)
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((HOST, port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise BenchError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://{HOST}:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def gateway_server(mongodb_uri: str, state_dir: Path, settings: Mapping[str, str]) -> Iterator[str]:
    """`bench.app` under uvicorn (one worker) on a free port; yields its base URL."""
    with gateway_process(mongodb_uri, state_dir, settings) as (base_url, _):
        yield base_url


def serve_supports_workers() -> bool:
    """Whether `python -m gateway serve` takes `--workers` on this checkout."""
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--help"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    return "--workers" in done.stdout


@contextmanager
def gateway_process(
    mongodb_uri: str,
    state_dir: Path,
    settings: Mapping[str, str],
    serve_workers: int | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The gateway on a free port; yields its base URL and process.

    By default `bench.app` under uvicorn (one worker, the process is the
    app); with `serve_workers`, `python -m gateway serve --workers N` (the
    process is the parent; the app runs in its workers).
    """
    port = free_port(HOST)
    env = {
        **os.environ,
        **settings,
        "MONGODB_URI": mongodb_uri,
        "MONGODB_DATABASE": "tessera_bench",
        "STATE_DIR": str(state_dir),
        "SEED_DEMO": "true",
    }
    if serve_workers is None:
        command = [
            sys.executable, "-m", "uvicorn", "bench.app:create_bench_app", "--factory",
            "--app-dir", str(ROOT),
            "--host", HOST, "--port", str(port),
            "--workers", "1", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    else:
        env.update({"HOST": HOST, "PORT": str(port), "LOG_LEVEL": env.get("LOG_LEVEL", "WARNING")})
        command = [sys.executable, "-m", "gateway", "serve"]
        if serve_supports_workers():
            command += ["--workers", str(serve_workers)]
        elif serve_workers > 1:
            raise BenchError("`python -m gateway serve` has no --workers option on this checkout")
    log_path = state_dir / "uvicorn.log"
    group = serve_workers is not None
    with log_path.open("wb") as log:
        # `serve` gets its own session, so that its workers can be stopped with it.
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=group,
        )  # fmt: skip
        try:
            base_url = f"http://{HOST}:{port}"
            _wait_ready(process, base_url)
            yield base_url, process
        except BenchError as exc:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise BenchError(f"{exc}\n--- gateway log (end) ---\n{tail}") from exc
        finally:
            _stop(process, group)


def _wait_ready(process: subprocess.Popen[bytes], base_url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"uvicorn exited with status {process.returncode}")
        try:
            if http("GET", f"{base_url}/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"the gateway did not answer {base_url}/healthz within 60 s")


def _stop(process: subprocess.Popen[bytes], group: bool = False) -> None:
    """Interrupt the gateway and wait; kill it (its whole session when `group`) after 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            if group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            process.wait()


def capture_payload(base_url: str, measured: tuple[Scenario, ...]) -> bytes:
    """Request (a) once, check it is personalized, and hand its bytes to (b) and (c)."""
    status, payload = http(
        "POST",
        f"{base_url}/graphql",
        (measured[0].body or "").encode(),
        {"Content-Type": "application/json", "X-Visitor-Id": VISITOR_ID},
    )
    if status != 200:
        raise BenchError(f"the page query answered {status}: {payload[:500]!r}")
    document = json.loads(payload)
    if document.get("errors") or not document.get("data", {}).get("page"):
        raise BenchError(f"the page query failed: {payload[:1000]!r}")
    if document["data"]["page"]["personalized"] is not True:
        raise BenchError(f"the page is not personalized for {VISITOR_ID}: is the demo seeded?")
    status, _ = http("PUT", f"{base_url}/bench/payload", payload)
    if status != 204:
        raise BenchError(f"PUT /bench/payload answered {status}")
    for scenario in measured[1:]:
        headers = {"X-Visitor-Id": scenario.visitor_id} if scenario.visitor_id else {}
        status, body = http("GET", f"{base_url}{scenario.path}", headers=headers)
        if (status, body) != (200, payload):
            raise BenchError(f"{scenario.path} does not return the captured payload ({status})")
    return payload


def bench_stats(base_url: str) -> dict[str, Any]:
    """The gateway's counters: profile fallbacks and exposures."""
    status, body = http("GET", f"{base_url}/bench/stats")
    if status != 200:
        raise BenchError(f"/bench/stats answered {status}")
    stats: dict[str, Any] = json.loads(body)
    return stats


def profile_fallbacks(base_url: str) -> int:
    """How many page requests so far were served unpersonalized (profile read failed)."""
    return int(bench_stats(base_url)["fallbacks"])


def run_wrk(wrk: str, base_url: str, scenario: Scenario, duration: int) -> Measurement:
    """Drive `scenario` with wrk; fail on socket errors or non-2xx responses."""
    command = [
        wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency",
        "-s", str(WRK_SCRIPT), f"{base_url}{scenario.path}", "--", *scenario.wrk_args(),
    ]  # fmt: skip
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    output = completed.stdout
    if completed.returncode != 0:
        raise BenchError(f"wrk failed ({completed.returncode}): {completed.stderr or output}")
    line = next((x for x in output.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise BenchError(f"no BENCH_RESULT line in wrk's output:\n{output}")
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
    non_2xx_match = _NON_2XX.search(output)
    non_2xx = int(non_2xx_match.group(1)) if non_2xx_match else 0
    errors = {name: count for name, count in result["errors"].items() if count}
    if non_2xx or errors:
        raise BenchError(
            f"({scenario.key}) {scenario.path}: {non_2xx} non-2xx responses, "
            f"socket/status errors {errors or 'none'}; wrk said:\n{output}"
        )
    requests = int(result["requests"])
    if requests == 0:
        raise BenchError(f"({scenario.key}) {scenario.path}: no request completed")
    latency = result["latency_us"]
    return Measurement(
        requests_per_s=requests / (result["duration_us"] / 1e6),
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        mean_ms=latency["mean"] / 1000,
        max_ms=latency["max"] / 1000,
        requests=requests,
        bytes_per_response=result["bytes"] / requests,
    )


def source_fingerprint() -> str:
    """A short hash of the application's Python and YAML files, to tie figures to code."""
    digest = hashlib.sha256()
    files = sorted(
        path
        for package in SOURCE_PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.suffix in {".py", ".yaml", ".yml"}
    )
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def machine(wrk: str) -> dict[str, Any]:
    """What the figures were measured on."""
    wrk_version = subprocess.run(
        [wrk, "-v"], capture_output=True, text=True, check=False
    ).stdout.split("\n")[0]
    return {
        "nproc": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": wrk_version.strip(),
    }


@dataclass(slots=True)
class Run:
    """Everything one benchmark run measured."""

    payload_bytes: int
    rounds: dict[str, list[Measurement]]
    fallbacks: int = 0
    exposures: dict[str, int] = field(default_factory=dict)

    def requests(self, key: str) -> int:
        """Requests completed by scenario `key` over all rounds."""
        return sum(m.requests for m in self.rounds[key])


def activate_bench_model(mongodb_uri: str, signing_key: str, slug: str) -> str:
    """Fit a small calibrated model over the page's variants, register it signed, activate it."""
    import asyncio

    from pymongo import AsyncMongoClient
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from cms_adapters.filesystem import FilesystemAdapter
    from gateway.settings import DEMO_CONTENT_DIR
    from scoring.compact import compact
    from scoring.features import candidate_row
    from scoring.registry import VARIANT_MODEL, ModelRegistry
    from scoring.synthetic import make_visitors

    async def register() -> str:
        async with FilesystemAdapter(DEMO_CONTENT_DIR) as cms:
            page = (await cms.fetch_page(slug)).page
        arms = [
            (block.id, variant.id, variant.tags)
            for block in page.blocks
            for variant in block.variants
        ]
        rng = random.Random(0)
        rows, labels = [], []
        for visitor in make_visitors(300):
            for block_id, variant_id, tags in arms:
                rows.append(candidate_row(visitor.snapshot, block_id, variant_id, tags))
                labels.append(int(rng.random() < 0.1))
        pipeline = Pipeline(
            [("vectorize", DictVectorizer()), ("model", LogisticRegression(max_iter=500))]
        )
        fitted = CalibratedClassifierCV(pipeline, method="sigmoid", cv=3).fit(rows, labels)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
        try:
            registry = ModelRegistry(client["tessera_bench"], signing_key.encode())
            info = await registry.save(
                compact(fitted), kind=VARIANT_MODEL, metrics={}, features=[], window={}
            )
            await registry.activate(info.version)
            return info.version
        finally:
            await client.close()

    return asyncio.run(register())


def wait_for_model(base_url: str, page: Scenario, version: str) -> None:
    """Wait until (a)'s decisions are ranked by `version` (the gateway polls for it)."""
    body = (page.body or "").replace(
        "decision { variantId reason ruleId }", "decision { modelVersion }"
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, payload = http(
            "POST",
            f"{base_url}/graphql",
            body.encode(),
            {"Content-Type": "application/json", "X-Visitor-Id": VISITOR_ID},
        )
        if status == 200 and f'"modelVersion":"{version}"' in payload.decode():
            return
        time.sleep(0.2)
    raise BenchError(f"the page was not scored by {version} within 30 s: no contested block?")


def run_benchmark(wrk: str, args: argparse.Namespace) -> Run:
    """Start the database and the gateway, warm up, then measure interleaved rounds."""
    with (
        tempfile.TemporaryDirectory(prefix="tessera-bench-") as tmp,
        embedded_mongo(Path(tmp) / "mongo") as mongo,
        gateway_server(mongo.uri, Path(tmp), args.env) as base_url,
    ):
        measured_scenarios = scenarios(args.page)
        if args.model:
            version = activate_bench_model(mongo.uri, args.env["MODEL_SIGNING_KEY"], args.page)
            wait_for_model(base_url, measured_scenarios[0], version)
            print(f"model {version} active and scoring {args.page}", flush=True)
        payload = capture_payload(base_url, measured_scenarios)
        print(f"gateway at {base_url}; payload {len(payload)} bytes", flush=True)
        run = Run(payload_bytes=len(payload), rounds={s.key: [] for s in measured_scenarios})
        for scenario in measured_scenarios:
            print(f"warm-up ({scenario.key}) {scenario.path} {args.warmup} s", flush=True)
            run_wrk(wrk, base_url, scenario, args.warmup)
        for number in range(args.rounds):
            # Rotate the order so no scenario always runs right after the same one.
            shift = number % len(measured_scenarios)
            for scenario in measured_scenarios[shift:] + measured_scenarios[:shift]:
                before = profile_fallbacks(base_url)
                measured = run_wrk(wrk, base_url, scenario, args.duration)
                run.fallbacks += profile_fallbacks(base_url) - before
                run.rounds[scenario.key].append(measured)
                print(
                    f"round {number + 1}/{args.rounds} ({scenario.key}) "
                    f"{measured.requests_per_s:.1f} req/s, p50 {measured.p50_ms:.2f} ms, "
                    f"p99 {measured.p99_ms:.2f} ms",
                    flush=True,
                )
        # Everything queued is written (or dropped) within a few flush intervals.
        time.sleep(1.0)
        run.exposures = bench_stats(base_url)["exposures"]
        return run


def print_report(
    run: Run,
    summaries: Mapping[str, Summary],
    ratios: Mapping[str, float],
    measured: tuple[Scenario, ...],
) -> None:
    """The table, the ratios and any warning."""
    print()
    print(f"{'scenario':<36} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}   req/s per round")
    for scenario in measured:
        summary = summaries[scenario.key]
        per_round = " ".join(f"{m.requests_per_s:.0f}" for m in run.rounds[scenario.key])
        print(
            f"({scenario.key}) {scenario.label:<32} {summary.requests_per_s:>9.1f} "
            f"{summary.p50_ms:>8.2f} {summary.p99_ms:>8.2f}   {per_round}"
        )
    print()
    for name, value in ratios.items():
        reference = REFERENCE_RATIOS[name]
        verdict = "at or above" if value >= reference else "BELOW"
        print(f"{name} = {value:.3f}   ({verdict} the reference {reference:.2f})")
    exposures = run.exposures
    if exposures:
        print(
            f"exposures: {exposures['logged']} page views logged, {exposures['dropped']} "
            f"dropped, writes held back {exposures['deferred']} times while reads were slow"
        )
    if run.fallbacks:
        print(
            f"\nWARNING: {run.fallbacks} of {run.requests('a')} (a) requests were served "
            "unpersonalized: profile reads exceeded PROFILE_BUDGET_MS under load, so (a) "
            "partly measured the fallback path."
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the exit status says whether it could be trusted."""
    args = parse_args(argv)
    wrk = find_wrk()
    if args.scenario != "single":
        from bench.many import run_scenario

        return run_scenario(args, wrk)
    info = machine(wrk)
    source = source_fingerprint()
    print(f"source fingerprint {source}", flush=True)
    try:
        run = run_benchmark(wrk, args)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    summaries = {key: Summary.median_of(measured) for key, measured in run.rounds.items()}
    ratios = {
        "a/b": summaries["a"].requests_per_s / summaries["b"].requests_per_s,
        "a/c": summaries["a"].requests_per_s / summaries["c"].requests_per_s,
    }
    measured = scenarios(args.page)
    print_report(run, summaries, ratios, measured)
    results = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_fingerprint": source,
        "machine": info,
        "config": {
            "connections": CONNECTIONS,
            "threads": THREADS,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "gateway_env": args.env,
            "visitor_id": VISITOR_ID,
            "page": args.page,
            "model": args.model,
            "payload_bytes": run.payload_bytes,
        },
        "scenarios": {
            s.key: {
                "label": s.label,
                "method": s.method,
                "path": s.path,
                "median": asdict(summaries[s.key]),
                "rounds": [asdict(m) for m in run.rounds[s.key]],
            }
            for s in measured
        },
        "ratios": ratios,
        "reference_ratios": REFERENCE_RATIOS,
        "a_requests": run.requests("a"),
        "a_served_unpersonalized": run.fallbacks,
        "exposures": run.exposures,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
