"""Time hostile GraphQL requests and what they do to a concurrent `/healthz`.

    python bench/hostile.py [--timeout 20]

Starts SecantusDB and the gateway (one uvicorn worker), then sends each
attack once while a second thread polls `/healthz` every 50 ms. For each it
prints the status, how long the answer took (or `>timeout`), and the
slowest `/healthz` answer during the attack. Run it on an idle machine: the
figures are wall-clock times. The attacks come from issue 10; the fragment
fan-out of 40 levels comes last because code without a linear cost analysis
never answers it (and freezes the server).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from bench.run import embedded_mongo, gateway_server


def fan_out(levels: int) -> str:
    fragments = "".join(
        f"fragment F{i} on Page {{ ...F{i + 1} ...F{i + 1} }}\n" for i in range(levels)
    )
    return f'{{ page(slug: "home") {{ ...F0 }} }}\n{fragments}fragment F{levels} on Page {{ slug }}'


def aliases(count: int, field: str) -> str:
    return "{ " + " ".join(f"a{i}: {field}" for i in range(count)) + " }"


ATTACKS = [
    ("fan-out 18 levels", fan_out(18)),
    ("fan-out 20 levels", fan_out(20)),
    ("1,000 page aliases", aliases(1000, 'page(slug: "home") { slug }')),
    ("500 __schema aliases", aliases(500, "__schema { types { name fields { name } } }")),
    ("20,000 duplicate fields", "{ visitor { " + "id " * 20_000 + "} }"),
    ("2,000 visitor aliases", aliases(2000, "visitor { id audiences }")),
    ("fan-out 22 levels", fan_out(22)),
    ("fan-out 40 levels", fan_out(40)),
]


def post(url: str, query: str, timeout: float) -> tuple[str, float]:
    body = json.dumps({"query": query}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", body, {"Content-Type": "application/json"}, method="POST"
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = str(response.status)
            response.read()
    except urllib.error.HTTPError as exc:
        status = str(exc.code)
    except (TimeoutError, urllib.error.URLError):
        status = "timeout"
    return status, time.perf_counter() - started


def slowest_health(url: str, stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        with contextlib.suppress(TimeoutError, urllib.error.URLError):
            urllib.request.urlopen(f"{url}/healthz", timeout=30).read()
        out.append(time.perf_counter() - started)
        stop.wait(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="tessera-hostile-") as tmp,
        embedded_mongo(Path(tmp) / "mongo") as mongo,
        gateway_server(mongo.uri, Path(tmp), {}) as url,
    ):
        print(f"{'attack':<26} {'status':>7} {'answer':>9} {'slowest /healthz':>17}")
        for name, query in ATTACKS:
            stop = threading.Event()
            health: list[float] = []
            poller = threading.Thread(target=slowest_health, args=(url, stop, health))
            poller.start()
            status, seconds = post(url, query, args.timeout)
            stop.set()
            poller.join()
            answer = f">{args.timeout:g} s" if status == "timeout" else f"{seconds * 1000:.0f} ms"
            print(f"{name:<26} {status:>7} {answer:>9} {max(health) * 1000:>14.0f} ms", flush=True)
            if status == "timeout":
                print("the gateway is frozen; the remaining attacks are not measured")
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
