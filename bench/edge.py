"""The gateway behind the shipped Varnish configuration against the gateway alone, in one run.

Run from the repository root with the project's virtualenv active:

    python bench/edge.py               # about 3 minutes
    python bench/edge.py --duration 5  # while iterating

It starts a fresh SecantusDB server, the gateway (`bench.app` under uvicorn,
one worker) and a real varnishd running deploy/varnish/default.vcl in front of
it (tests/edge/varnish.py: the shipped VCL with only the backend address
changed; Debian `varnish` + `varnish-modules`), seeds `--visitors` visitors
with varied histories through the event API (bench/visitors.py), and
prepares browsers that keep the cookies the gateway hands out, as a browser
would: each asks for the home page through Varnish until its `tsr_vid` and
`tsr_ek` cookies are settled, then is classified by the cache scope the
gateway gives its page (public, audience, private).

Then, interleaved over `--rounds` rounds (order rotated), each with wrk (16
connections, 2 threads, bench/rotate.lua) for `--duration` seconds:

- (ho) / (hv) the anonymous home page (`GET /graphql?query=...` of the page
  query a frontend sends), from `--anonymous` new visitors' browsers with
  their `tsr_vid`/`tsr_ek` cookies and varied devices and countries: at the
  origin directly / through Varnish (hits: one object per edge key);
- (ao) / (av) the public `about` page, the same way;
- (xo) / (xv) a mixed population: 70 % of requests from anonymous or
  audience-keyed browsers (anonymous home and about pages, and the home pages
  of seeded visitors whose page the gateway lets the edge share), 30 % private
  (the home page of returning visitors, whose hero is a personal template,
  and `visitor { id audiences }` queries): at the origin / through Varnish.

Reports req/s (median), p50/p99, the ratios v/o, the hit ratio per scope
(wrk counts `X-Cache: HIT` per `X-Tessera-Cache-Scope`) and overall (from
varnishstat), and the load average. Exits 1 if the run cannot be trusted: a
socket error or a non-2xx answer, a private answer served as a hit, or a hit
that sets a cookie; 2 if wrk or varnishd is missing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import tempfile
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import loadgen, visitors
from bench.loadgen import WrkResult
from bench.run import (
    PAGE_QUERY,
    BenchError,
    embedded_mongo,
    find_wrk,
    gateway_process,
    machine,
    source_fingerprint,
)
from tests.edge.varnish import Varnish, VarnishError, find_binary

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "edge.json"
TARGET_HIT_RATIO = 10.0
PRIVATE_SHARE = 0.30
VISITOR_QUERY = "query Me { visitor { id audiences } }"
SCENARIOS = {
    "ho": "anonymous home, origin",
    "hv": "anonymous home, Varnish",
    "ao": "about page, origin",
    "av": "about page, Varnish",
    "xo": "mixed 70/30, origin",
    "xv": "mixed 70/30, Varnish",
}
VARNISH_COUNTERS = (
    "MAIN.client_req",
    "MAIN.cache_hit",
    "MAIN.cache_miss",
    "MAIN.cache_hitmiss",
    "MAIN.cache_hitpass",
    "MAIN.s_pass",
    "MAIN.backend_req",
)


def graphql_url(query: str, **variables: str) -> str:
    """A GET /graphql path for `query` (what an APQ-less GET client sends)."""
    params = {"query": query}
    if variables:
        params["variables"] = json.dumps(variables, sort_keys=True)
    return "/graphql?" + urllib.parse.urlencode(params)


HOME = graphql_url(PAGE_QUERY % "home")
ABOUT = graphql_url(PAGE_QUERY % "about")
VISITOR = graphql_url(VISITOR_QUERY)


@dataclass
class Browser:
    """One visitor's browser: the headers it always sends and the cookies it keeps."""

    name: str
    headers: dict[str, str]
    cookies: dict[str, str] = field(default_factory=dict)
    scope: str = ""

    def request_headers(self) -> dict[str, str]:
        """Its headers, with its cookies."""
        jar = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return {**self.headers, **({"Cookie": jar} if jar else {})}

    def keep(self, set_cookies: list[str]) -> None:
        """Store what the response set."""
        for header in set_cookies:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]


def get(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], list[str]]:
    """One GET: status, lower-cased headers, the Set-Cookie values."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        lower = {name.lower(): value for name, value in response.getheaders()}
        return response.status, lower, response.msg.get_all("set-cookie") or []
    finally:
        connection.close()


def settle(browser: Browser, port: int, path: str = HOME) -> None:
    """Ask for `path` until the browser's cookies stop changing; record the page's scope."""
    for _ in range(4):
        status, headers, cookies = get(port, path, browser.request_headers())
        if status != 200:
            raise BenchError(f"{browser.name}: {path[:60]}... answered {status} while preparing")
        browser.keep(cookies)
        browser.scope = headers.get("x-tessera-cache-scope", "-")
        if not cookies:
            return
    raise BenchError(f"{browser.name}: the gateway keeps setting cookies ({browser.cookies})")


def prepare(
    varnish_port: int, population: list[visitors.Visitor], anonymous: int
) -> dict[str, list[Browser]]:
    """The browsers: anonymous ones, and one per seeded visitor; grouped by their home's scope."""
    rng = random.Random(5)
    browsers: dict[str, list[Browser]] = {"anonymous": [], "public": [], "audience": []}
    browsers["private"] = []
    for number in range(anonymous):
        # New visitors: varied devices and countries, no cookie yet (the gateway mints one).
        like = population[rng.randrange(len(population))]
        browser = Browser(f"anonymous-{number}", like.headers())
        settle(browser, varnish_port)
        if browser.scope == "private":
            raise BenchError(f"an anonymous visitor's home page is private: {browser}")
        browsers["anonymous"].append(browser)
    for visitor in population:
        if visitor.kind == "new":
            continue  # already covered by the anonymous browsers
        # A returning browser: it holds the visitor id from an earlier visit.
        browser = Browser(visitor.id, visitor.headers(), {"tsr_vid": visitor.id})
        settle(browser, varnish_port)
        browsers.setdefault(browser.scope, []).append(browser)
    return browsers


def line(browser: Browser, path: str) -> tuple[str, str, dict[str, str]]:
    """A request line for bench/rotate.lua."""
    return ("GET", path, browser.request_headers())


def mixed_lines(
    browsers: dict[str, list[Browser]], count: int
) -> tuple[list[tuple[str, str, dict[str, str]]], dict[str, int]]:
    """`count` requests: 70 % anonymous or audience-keyed, 30 % private, shuffled."""
    rng = random.Random(9)
    shared = browsers["anonymous"] + browsers["audience"] + browsers["public"]
    private = browsers["private"]
    if not private or not shared:
        raise BenchError(f"no {'private' if not private else 'shared'} browsers to mix")
    lines = []
    kinds: dict[str, int] = {}
    for _ in range(count):
        if rng.random() < PRIVATE_SHARE:
            browser = rng.choice(private)
            if rng.random() < 0.5:
                kind, path = "private home (returning visitor)", HOME
            else:
                kind, path = "visitor query", VISITOR
                browser = rng.choice(shared + private)
        else:
            browser = rng.choice(shared)
            if browser.name.startswith("anonymous"):
                kind, path = rng.choice(
                    [("anonymous home", HOME), ("anonymous home", HOME), ("about", ABOUT)]
                )
            else:
                kind, path = "audience-keyed home (seeded visitor)", HOME
        kinds[kind] = kinds.get(kind, 0) + 1
        lines.append(line(browser, path))
    return lines, kinds


@dataclass(slots=True)
class Round:
    """One scenario's measurement in one round."""

    wrk: WrkResult
    load: tuple[float, float, float]
    varnish: dict[str, int]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python bench/edge.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run (8)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per scenario (2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--visitors", type=int, default=600, help="seeded visitors (600)")
    parser.add_argument("--anonymous", type=int, default=200, help="anonymous browsers (200)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a gateway setting for this run (repeatable)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if min(args.duration, args.warmup, args.rounds, args.visitors, args.anonymous) < 1:
        parser.error("every count and duration must be at least 1")
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    args.env = dict(item.split("=", 1) for item in args.env)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the edge benchmark; the exit status says whether it could be trusted."""
    args = parse_args(argv)
    wrk = find_wrk()
    try:
        find_binary("varnishd")
    except VarnishError as exc:
        print(exc, file=sys.stderr)
        return 2
    info = machine(wrk)
    source = source_fingerprint()
    print(f"source fingerprint {source}; load average {loadgen.loadavg()}", flush=True)
    population = visitors.population(args.visitors, prefix="ev")
    env = {"PUBLISHABLE_KEYS": visitors.PUBLISHABLE_KEY, "LOG_LEVEL": "WARNING", **args.env}
    rounds: dict[str, list[Round]] = {key: [] for key in SCENARIOS}
    extra: dict[str, Any] = {}
    problems: list[str] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="tessera-edge-") as tmp,
            embedded_mongo(Path(tmp) / "mongo") as mongo,
            gateway_process(mongo.uri, Path(tmp), env) as (origin, _),
        ):
            origin_port = int(origin.rsplit(":", 1)[1])
            with Varnish(origin_port, Path(tmp) / "varnish") as varnish:
                loadgen.wait_until(varnish.backend_healthy, 30, "varnishd seeing the gateway")
                seeded = visitors.seed_api(origin, population)
                print(
                    f"gateway at {origin}, varnishd at {varnish.url}; {seeded} events for "
                    f"{args.visitors} visitors {visitors.kinds(population)}",
                    flush=True,
                )
                browsers = prepare(varnish.port, population, args.anonymous)
                extra["browsers"] = {scope: len(group) for scope, group in browsers.items()}
                print(f"browsers by the scope of their home page: {extra['browsers']}", flush=True)
                folder = Path(tmp)
                lines, kinds = mixed_lines(browsers, 4000)
                extra["mix"] = kinds
                files = {
                    "home": visitors.requests_file(
                        folder / "home.txt", [line(b, HOME) for b in browsers["anonymous"]]
                    ),
                    "about": visitors.requests_file(
                        folder / "about.txt", [line(b, ABOUT) for b in browsers["anonymous"]]
                    ),
                    "mixed": visitors.requests_file(folder / "mixed.txt", lines),
                }
                targets = {"o": origin, "v": varnish.url}
                page = {"h": "home", "a": "about", "x": "mixed"}

                def run(key: str, duration: float) -> Round:
                    before = varnish.stat(*VARNISH_COUNTERS)
                    result = loadgen.run_rotate(
                        wrk, f"{targets[key[1]]}/graphql", files[page[key[0]]],
                        duration=duration, connections=args.connections,
                        label=f"({key}) {SCENARIOS[key]}",
                    )  # fmt: skip
                    # Varnish's threads add their counters to the totals a moment later.
                    time.sleep(1)
                    after = varnish.stat(*VARNISH_COUNTERS)
                    return Round(result, loadgen.loadavg(), loadgen.delta(after, before))

                for key in SCENARIOS:
                    run(key, args.warmup)
                print("warm-up done", flush=True)
                keys = list(SCENARIOS)
                for number in range(args.rounds):
                    # Rotate by pairs, so each origin run stays next to its Varnish run.
                    shift = 2 * (number % 3)
                    for key in keys[shift:] + keys[:shift]:
                        measured = run(key, args.duration)
                        rounds[key].append(measured)
                        problems += check(key, measured.wrk)
                        print(round_line(number, args.rounds, key, measured), flush=True)
    except (BenchError, VarnishError, RuntimeError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    summary = report(rounds)
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
                "summary": summary,
                "rounds": {
                    key: [{**asdict(r.wrk), "load": r.load, "varnish": r.varnish} for r in measured]
                    for key, measured in rounds.items()
                },
                **extra,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"\nwrote {args.output}")
    if problems:
        print("run not trustworthy:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


def check(key: str, result: WrkResult) -> list[str]:
    """What must never happen: a private answer from the cache, a hit that sets a cookie."""
    problems = []
    private_hits = result.classes.get("private", {}).get("hits", 0)
    if private_hits:
        problems.append(f"({key}) {private_hits} private answers were cache hits")
    cookie_hits = result.count("hit_set_cookie")
    if cookie_hits:
        problems.append(f"({key}) {cookie_hits} cache hits set a cookie")
    if key[1] == "o" and result.count("hits"):
        problems.append(f"({key}) the origin answered X-Cache: HIT")
    return problems


def hit_ratio(result: WrkResult) -> float:
    """Hits over requests, as wrk counted them."""
    return result.count("hits") / result.requests


def round_line(number: int, total: int, key: str, measured: Round) -> str:
    """One progress line."""
    w = measured.wrk
    text = (
        f"round {number + 1}/{total} ({key}) {SCENARIOS[key]:<24} {w.requests_per_s:>9,.0f} req/s, "
        f"p50 {w.p50_ms:.2f} ms, p99 {w.p99_ms:.2f} ms"
    )
    if key.endswith("v"):
        text += f", hits {hit_ratio(w):.1%}"
    return text + f", load {measured.load[0]:.1f}"


def report(rounds: dict[str, list[Round]]) -> dict[str, Any]:
    """Print the table, the ratios and the hit ratios; return the summary."""
    summary: dict[str, Any] = {}
    print()
    print(f"{'scenario':<30} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  {'hits':>6}   per round")
    for key, measured in rounds.items():
        requests = sum(r.wrk.requests for r in measured)
        hits = sum(r.wrk.count("hits") for r in measured)
        by_scope: dict[str, dict[str, int]] = {}
        for r in measured:
            for scope, counts in r.wrk.classes.items():
                entry = by_scope.setdefault(scope, {"requests": 0, "hits": 0})
                entry["requests"] += counts.get("requests", 0)
                entry["hits"] += counts.get("hits", 0)
        varnish = {name: sum(r.varnish.get(name, 0) for r in measured) for name in VARNISH_COUNTERS}
        summary[key] = {
            "requests_per_s": statistics.median(r.wrk.requests_per_s for r in measured),
            "p50_ms": statistics.median(r.wrk.p50_ms for r in measured),
            "p99_ms": statistics.median(r.wrk.p99_ms for r in measured),
            "requests": requests,
            "hit_ratio": hits / requests if requests else 0.0,
            "by_scope": by_scope,
            "varnish": varnish if key.endswith("v") else None,
            "load": [r.load[0] for r in measured],
        }
        per_round = " · ".join(f"{r.wrk.requests_per_s:.0f}" for r in measured)
        hit_text = f"{hits / requests:.1%}" if key.endswith("v") else ""
        print(
            f"({key}) {SCENARIOS[key]:<25} {summary[key]['requests_per_s']:>9,.0f} "
            f"{summary[key]['p50_ms']:>8.2f} {summary[key]['p99_ms']:>8.2f}  {hit_text:>6}   "
            f"{per_round}"
        )
    print()
    for page in ("h", "a", "x"):
        ratio = summary[f"{page}v"]["requests_per_s"] / summary[f"{page}o"]["requests_per_s"]
        summary[f"{page}_ratio"] = ratio
        verdict = ""
        if page in ("h", "a"):
            verdict = f" (target >= {TARGET_HIT_RATIO:.0f}x: " + (
                "met)" if ratio >= TARGET_HIT_RATIO else "MISSED)"
            )
        print(f"{page}v/{page}o = {ratio:.1f}x{verdict}")
    mixed = summary["xv"]
    counters = mixed["varnish"]
    client = counters["MAIN.client_req"] or 1
    print(
        f"mixed through Varnish: hit ratio {mixed['hit_ratio']:.1%} of all requests "
        f"(varnishstat: cache_hit {counters['MAIN.cache_hit']} of client_req "
        f"{counters['MAIN.client_req']} = {counters['MAIN.cache_hit'] / client:.1%}; "
        f"backend requests {counters['MAIN.backend_req']})"
    )
    for scope, counts in sorted(mixed["by_scope"].items()):
        share = counts["hits"] / counts["requests"] if counts["requests"] else 0.0
        print(f"    {scope:<9} {counts['requests']:>7} requests, {share:.1%} hits")
    return summary


if __name__ == "__main__":
    sys.exit(main())
