"""Ingestion throughput: `POST /v1/events` against raw `insert_many` on the same server.

Run from the repository root with the project's virtualenv active:

    python bench/ingest.py [--duration 10] [--rounds 3]

It starts a fresh SecantusDB server and the gateway (`bench.app`, one uvicorn
worker), then alternates, over several rounds:

- (g) wrk (16 connections, 2 threads) posting batches of 50 new events to
  `/v1/events` with a publishable key: validated, group-committed with
  `j: true`, applied to the visitors' profiles, acknowledged;
- (r) a separate process running 16 concurrent raw `insert_many` calls of 50
  documents shaped like the stored events, same write concern, same indexes,
  into another database on the same server: the floor.

It prints events/s (median over rounds), the ratio g/r, and the p50/p99
acknowledgement latency of a batch, checks that every acknowledged event is
stored and applied, and writes `bench/results/ingest.json`. Exits 2 when wrk is
missing, 1 when the run is not trustworthy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pymongo import MongoClient

from bench.run import (
    _NON_2XX,
    BenchError,
    embedded_mongo,
    find_wrk,
    gateway_server,
    machine,
    source_fingerprint,
)

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "ingest.lua"
BASELINE = ROOT / "bench" / "insert_baseline.py"
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "ingest.json"
KEY = "pk_bench_ingest"
BATCH = 50
CONNECTIONS = 16
THREADS = 2


def run_wrk(wrk: str, base_url: str, duration: float) -> dict[str, Any]:
    """One wrk run against /v1/events: events/s and acknowledgement latency."""
    command = [
        wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{int(duration)}s", "--timeout", "10s",
        "-s", str(LUA), f"{base_url}/v1/events", "--", KEY, str(BATCH),
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    line = next((x for x in output.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise BenchError(f"no BENCH_RESULT line in wrk's output:\n{output}")
    result = json.loads(line.removeprefix("BENCH_RESULT "))
    non_2xx = _NON_2XX.search(output)
    errors = {name: n for name, n in result["errors"].items() if n}
    if non_2xx or errors:
        raise BenchError(f"ingestion answered errors ({errors}); wrk said:\n{output}")
    seconds = result["duration_us"] / 1e6
    return {
        "events_per_s": result["requests"] * BATCH / seconds,
        "requests": result["requests"],
        "p50_ms": result["latency_us"]["p50"] / 1000,
        "p99_ms": result["latency_us"]["p99"] / 1000,
    }


def run_baseline(uri: str, duration: float) -> dict[str, Any]:
    """The raw insert_many floor, in its own process."""
    command = [
        sys.executable, str(BASELINE), "--uri", uri, "--clients", str(CONNECTIONS),
        "--batch", str(BATCH), "--duration", str(duration),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BASELINE_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"the insert_many baseline failed:\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(line.removeprefix("BASELINE_RESULT "))
    return {
        "events_per_s": result["documents_per_s"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    wrk = find_wrk()
    rounds: dict[str, list[dict[str, Any]]] = {"gateway": [], "insert_many": []}
    acknowledged = 0
    try:
        with tempfile.TemporaryDirectory(prefix="tessera-ingest-") as tmp:
            state = Path(tmp) / "state"
            state.mkdir()
            with (
                embedded_mongo(Path(tmp) / "db") as server,
                gateway_server(
                    server.uri, state, {"PUBLISHABLE_KEYS": KEY, "LOG_LEVEL": "WARNING"}
                ) as base_url,
            ):
                acknowledged += run_wrk(wrk, base_url, args.warmup)["requests"] * BATCH
                run_baseline(server.uri, args.warmup)
                for number in range(args.rounds):
                    order = ["gateway", "insert_many"]
                    if number % 2:
                        order.reverse()
                    for name in order:
                        if name == "gateway":
                            measured = run_wrk(wrk, base_url, args.duration)
                            acknowledged += measured["requests"] * BATCH
                        else:
                            measured = run_baseline(server.uri, args.duration)
                        rounds[name].append(measured)
                        print(
                            f"round {number + 1} {name}: {measured['events_per_s']:,.0f} events/s"
                        )
                with MongoClient(server.uri) as client:
                    events = client["tessera_bench"]["events"]
                    stored = events.count_documents({})
                    unapplied = client["tessera_bench"]["pending_commits"].count_documents({})
                if stored < acknowledged:
                    raise BenchError(f"{acknowledged} events acknowledged but {stored} stored")
                if unapplied:
                    raise BenchError(f"{unapplied} commits were not applied to profiles")
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    summary = {
        name: {
            key: statistics.median(r[key] for r in measured)
            for key in ("events_per_s", "p50_ms", "p99_ms")
        }
        for name, measured in rounds.items()
    }
    ratio = summary["gateway"]["events_per_s"] / summary["insert_many"]["events_per_s"]
    print()
    print(f"{'':12} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8}   per round")
    for name, figures in summary.items():
        per_round = " · ".join(f"{r['events_per_s']:.0f}" for r in rounds[name])
        print(
            f"{name:12} {figures['events_per_s']:>10,.0f} {figures['p50_ms']:>8.1f} "
            f"{figures['p99_ms']:>8.1f}   {per_round}"
        )
    print(f"\ngateway / insert_many = {ratio:.3f}; {acknowledged} events acknowledged, all stored")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "at": datetime.now(UTC).isoformat(),
                "machine": machine(wrk),
                "source": source_fingerprint(),
                "batch": BATCH,
                "connections": CONNECTIONS,
                "duration_s": args.duration,
                "rounds": rounds,
                "summary": summary,
                "ratio": ratio,
                "acknowledged": acknowledged,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
