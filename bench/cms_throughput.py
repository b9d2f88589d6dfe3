"""Tessera's personalized page against the CMS's own REST and GraphQL APIs, same content.

Run from the repository root with the project's virtualenv active (needs `wrk`,
Node.js 20 and npm; the CMSs come from the live tests' npm cache):

    python bench/cms_throughput.py [--cms directus strapi] [--duration 5] [--rounds 3]

For each CMS it starts the real server (tests/cms_live: SQLite in a temp
folder, set up as the guide says, with the contract's `home` page) and two
Tessera gateways on it (uvicorn, one worker each, their own embedded
SecantusDB): one as deployed (page response cache on) and one with
`RESPONSE_CACHE_SIZE=0`, so every request decides the page again (the content
cache still holds the CMS page). Then wrk (16 connections, 2 threads) drives,
in rotated order each round:

- (t) Tessera: `POST /graphql`, the `home` page for `demo-vip` (every block
  type's fields, decisions), personalized;
- (n) the same with the page response cache off;
- (r) the CMS's REST request Tessera itself sends for that page (same fields,
  Tessera's read-only token);
- (g) the CMS's GraphQL query for the same page and fields (Directus' built-in
  `/graphql`; Strapi's `@strapi/plugin-graphql`).

Each response is checked once first (personalized, or the CMS's page with its
blocks). The report gives each scenario's median over the rounds and the
ratios t/r, t/g, n/r, n/g; `bench/results/cms_throughput.json` keeps all figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cms_adapters.directus import PAGE_FIELDS  # noqa: E402
from cms_adapters.strapi import _POPULATE  # noqa: E402
from tests.cms_live.directus_setup import set_up as set_up_directus  # noqa: E402
from tests.cms_live.servers import die_with_parent  # noqa: E402
from tests.cms_live.strapi_setup import set_up as set_up_strapi  # noqa: E402

OUTPUT = ROOT / "bench" / "results" / "cms_throughput.json"
WRK_SCRIPT = ROOT / "bench" / "cms_wrk.lua"
HOST = "127.0.0.1"
VISITOR = "demo-vip"
CONNECTIONS = 16
THREADS = 2
PAGE_QUERY = (
    '{ page(slug: "home") { slug title locale personalized blocks { id type variantId '
    "decision { variantId reason ruleId } "
    "... on HeroBlock { heading subheading cta { label url } image { url alt } } "
    "... on ProductGridBlock { title products { sku name price currency } } "
    "... on BannerBlock { text tone } "
    "... on CallToActionBlock { heading body button { label url } } "
    "... on TestimonialBlock { quote author rating } "
    "... on RichTextBlock { html } "
    "... on GenericBlock { fields } } } }"
)
VARIANT_FIELDS = (
    "variantId fields audiences audienceMatch condition priority scheduleStart scheduleEnd "
    "scheduleTimezone locales tags weight isDefault experiment ruleId localized"
)
DIRECTUS_GRAPHQL = (
    '{ pages(filter: {slug: {_eq: "home"}, status: {_eq: "published"}}, limit: 2) { '
    "id slug title locales titles description translations { languages_code { code } title } "
    'blocks(sort: ["sort", "id"]) { id sort collection item { ... on blocks { '
    f"id blockId type variants {{ id sort {VARIANT_FIELDS} "
    "image { id title description width height } translations { languages_code { code } fields } "
    "} } } } } }"
)
STRAPI_GRAPHQL = (
    '{ pages(filters: {slug: {eq: "home"}}) { documentId slug title locales titles '
    "description blocks { ... on ComponentTesseraBlock { blockId type variants { "
    f"{VARIANT_FIELDS} image {{ url alternativeText width height }} }} }} }} }} }}"
)


class BenchError(RuntimeError):
    """The benchmark could not run, or its figures cannot be trusted."""


@dataclass(frozen=True)
class Scenario:
    """One request under load."""

    key: str
    label: str
    method: str
    url: str
    body: str = ""
    headers: tuple[str, ...] = ()
    expect: str = ""  # a substring the response must contain


@dataclass
class Result:
    """Per-scenario figures over the rounds."""

    label: str
    requests_per_s: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    bytes_per_response: float = 0.0

    def median(self) -> float:
        """Median requests per second."""
        return statistics.median(self.requests_per_s)


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def request(scenario: Scenario) -> tuple[int, bytes]:
    """Send the scenario's request once."""
    headers = dict(h.split(": ", 1) for h in scenario.headers)
    data = scenario.body.encode() if scenario.body else None
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(scenario.url, data=data, method=scenario.method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check(scenario: Scenario) -> None:
    """The response is a 200 with the expected content and no GraphQL errors."""
    status, body = request(scenario)
    text = body.decode(errors="replace")
    if status != 200 or scenario.expect not in text or '"errors"' in text:
        raise BenchError(f"({scenario.key}) {scenario.url}: HTTP {status}: {text[:1500]}")


@contextmanager
def tessera(state: Path, env: dict[str, str]) -> Iterator[str]:
    """A gateway under uvicorn with its own embedded SecantusDB; yields its URL."""
    port = free_port()
    state.mkdir(parents=True, exist_ok=True)
    environment = {
        **{k: v for k, v in os.environ.items() if k not in ("MONGODB_URI",)},
        **env,
        "STATE_DIR": str(state),
        "SEED_DEMO": "true",
        "RATE_LIMIT_ENABLED": "false",
        "CONTENT_TTL": "3600",
        "LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory",
        "--host", HOST, "--port", str(port),
        "--workers", "1", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    log = (state / "uvicorn.log").open("wb")
    process = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=log, stderr=log, preexec_fn=die_with_parent
    )
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise BenchError(f"tessera exited: {(state / 'uvicorn.log').read_text()[-2000:]}")
            try:
                if request(Scenario("h", "", "GET", f"{url}/readyz"))[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("tessera did not become ready in 90 s")
            time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def run_wrk(wrk: str, scenario: Scenario, duration: int) -> tuple[float, float, float, float]:
    """Requests/s, p50 ms, p99 ms and bytes per response; fails on any error response."""
    command = [
        wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency",
        "--timeout", "15s",  # a CMS under load answers slowly: measured, not an error
        "-s", str(WRK_SCRIPT), scenario.url, "--", scenario.method, scenario.body,
        *scenario.headers,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed: {done.stderr or done.stdout}")
    result = json.loads(line.removeprefix("BENCH_RESULT "))
    errors = {k: v for k, v in result["errors"].items() if v}
    if errors or "Non-2xx" in done.stdout or not result["requests"]:
        raise BenchError(f"({scenario.key}) errors {errors}:\n{done.stdout}")
    requests = int(result["requests"])
    return (
        requests / (result["duration_us"] / 1e6),
        result["latency_us"]["p50"] / 1000,
        result["latency_us"]["p99"] / 1000,
        result["bytes"] / requests,
    )


def tessera_scenarios(warm: str, cold: str) -> list[Scenario]:
    """(t) and (n): the page query on both gateways."""
    body = json.dumps({"query": PAGE_QUERY})
    headers = (f"X-Visitor-Id: {VISITOR}",)
    expect = '"personalized":true'
    return [
        Scenario("t", "Tessera page, warm", "POST", f"{warm}/graphql", body, headers, expect),
        Scenario("n", "Tessera page, response cache off", "POST", f"{cold}/graphql", body,
                 headers, expect),
    ]  # fmt: skip


def directus_scenarios(url: str, token: str) -> list[Scenario]:
    """(r) the adapter's own REST request, (g) the same page through Directus GraphQL."""
    auth = (f"Authorization: Bearer {token}",)
    params = urllib.parse.urlencode(
        {
            "filter[slug][_eq]": "home",
            "fields": PAGE_FIELDS,
            "deep[blocks][_sort]": "sort,id",
            "limit": 2,
            "filter[status][_eq]": "published",
        }
    )
    return [
        Scenario("r", "Directus REST (Tessera's request)", "GET", f"{url}/items/pages?{params}",
                 headers=auth, expect="Members' early access"),
        Scenario("g", "Directus GraphQL", "POST", f"{url}/graphql",
                 json.dumps({"query": DIRECTUS_GRAPHQL}), auth, "Members' early access"),
    ]  # fmt: skip


def strapi_scenarios(url: str, token: str) -> list[Scenario]:
    """(r) the adapter's own REST request, (g) the same page through Strapi's GraphQL plugin."""
    auth = (f"Authorization: Bearer {token}",)
    params = urllib.parse.urlencode(
        {
            "filters[slug][$eq]": "home",
            _POPULATE: "image",
            "status": "published",
            "pagination[pageSize]": 1,
        }
    )
    return [
        Scenario("r", "Strapi REST (Tessera's request)", "GET", f"{url}/api/pages?{params}",
                 headers=auth, expect="Members' early access"),
        Scenario("g", "Strapi GraphQL", "POST", f"{url}/graphql",
                 json.dumps({"query": STRAPI_GRAPHQL}), auth, "Members' early access"),
    ]  # fmt: skip


def bench_cms(name: str, wrk: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Set the CMS up, start both gateways, measure the four scenarios."""
    started = time.monotonic()
    # Strapi as in production (the tests run it in development for local webhook URLs).
    site: Any = (
        set_up_directus(folder / name)
        if name == "directus"
        else set_up_strapi(folder / name, node_env="production")
    )
    setup_s = time.monotonic() - started
    try:
        env = {"CMS": name, f"{name.upper()}_URL": site.url, f"{name.upper()}_TOKEN": site.token}
        with (
            tessera(folder / f"{name}-warm", env) as warm,
            tessera(folder / f"{name}-cold", {**env, "RESPONSE_CACHE_SIZE": "0"}) as cold,
        ):
            cms = (directus_scenarios if name == "directus" else strapi_scenarios)(
                site.url, site.token
            )
            measured = [*tessera_scenarios(warm, cold), *cms]
            for scenario in measured:
                check(scenario)
                for _ in range(20):  # warm caches and JITs
                    request(scenario)
            results = {s.key: Result(s.label) for s in measured}
            for round_index in range(args.rounds):
                shift = round_index % len(measured)
                for scenario in measured[shift:] + measured[:shift]:
                    rps, p50, p99, size = run_wrk(wrk, scenario, args.duration)
                    result = results[scenario.key]
                    result.requests_per_s.append(rps)
                    result.p50_ms.append(p50)
                    result.p99_ms.append(p99)
                    result.bytes_per_response = size
    finally:
        site.server.stop()
    medians = {key: result.median() for key, result in results.items()}
    ratios = {f"{a}/{b}": medians[a] / medians[b] for a in ("t", "n") for b in ("r", "g")}
    return {
        "setup_seconds": setup_s,
        "version": _version(name),
        "results": {key: asdict(result) for key, result in results.items()},
        "medians_rps": medians,
        "ratios": ratios,
    }


def _version(name: str) -> str:
    from tests.cms_live.install import DIRECTUS, STRAPI, install_dir

    app = DIRECTUS if name == "directus" else STRAPI
    package = "directus" if name == "directus" else "@strapi/strapi"
    manifest = install_dir(app) / "node_modules" / package / "package.json"
    return str(json.loads(manifest.read_text())["version"])


def print_cms(name: str, data: dict[str, Any], rounds: int) -> None:
    """One CMS's table and ratios."""
    print(f"\n{name} {data['version']} (median of {rounds} rounds: requests/s, p50 / p99 ms)")
    for key, result in data["results"].items():
        p50 = statistics.median(result["p50_ms"])
        p99 = statistics.median(result["p99_ms"])
        rps = data["medians_rps"][key]
        print(f"  ({key}) {result['label']:<40} {rps:8.0f}  {p50:7.1f} / {p99:7.1f}")
    print("  ratios: " + ", ".join(f"{k} {v:.1f}x" for k, v in data["ratios"].items()), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark for each CMS and print the table and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cms", nargs="+", default=["directus", "strapi"])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    # SIGTERM runs the finally blocks too, so the CMS servers and gateways stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed (Debian: apt-get install -y wrk)", file=sys.stderr)
        return 2
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "duration_s": args.duration,
        "rounds": args.rounds,
        "connections": CONNECTIONS,
    }
    with tempfile.TemporaryDirectory(prefix="tessera-cms-bench-") as tmp:
        for name in args.cms:
            try:
                report[name] = bench_cms(name, wrk, args, Path(tmp))
            except BenchError as exc:
                print(f"{name}: {exc}", file=sys.stderr)
                return 1
            print_cms(name, report[name], args.rounds)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
