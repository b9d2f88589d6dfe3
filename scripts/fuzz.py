"""Fuzz a live gateway's GraphQL API with schemathesis: no 5xx, no internal error.

    python scripts/fuzz.py                      # about 500 cases, with and without an admin key
    python scripts/fuzz.py --examples 10000     # the long run: >= 10,000 cases per key mode

It starts `python -m gateway serve` on its embedded defaults (a fresh
SecantusDB in a temporary folder, the demo content, publishable and admin
keys set), generates queries and mutations from the schema with
schemathesis (GraphQL mode, hypothesis-graphql) as an anonymous client and
as an admin, and counts every response by status. It exits 1 if any response
was a 5xx or a masked internal error, 2 if the gateway did not start.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ADMIN_KEY = "sk_fuzz_admin"
PUBLISHABLE_KEY = "pk_fuzz"
#: Root fields schemathesis tests as operations (queries and mutations).
OPERATIONS = 12


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gateway(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m gateway serve` on its embedded defaults, ready."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    env |= {
        "STATE_DIR": str(folder / "state"),
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "ADMIN_KEYS": ADMIN_KEY,
        "PUBLISHABLE_KEYS": PUBLISHABLE_KEY,
        "PREVIEW_TOKENS": "preview_fuzz",
    }
    log = (folder / "gateway.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop(process)
    raise SystemExit(f"the gateway did not start; see {folder / 'gateway.log'}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the gateway's process group, then SIGKILL if it lingers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        process.wait()


def fuzz(
    url: str, mode: str, examples: int, workers: int, folder: Path, seed: int | None
) -> Counter[str]:
    """Run schemathesis once; the responses it got, counted by status."""
    tally = folder / f"tally-{mode}.ndjson"
    tally.unlink(missing_ok=True)
    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if schemathesis is None:
        raise SystemExit("schemathesis is not installed: pip install -e '.[dev]'")
    command = [
        schemathesis,
        "run",
        f"{url}/graphql",
        "--checks",
        "tessera_no_internal_error",
        "--max-examples",
        str(max(1, math.ceil(examples / OPERATIONS))),
        "--workers",
        str(workers),
        "--request-timeout",
        "30",
        "--no-color",
        "--suppress-health-check",
        "all",
    ]
    if seed is not None:
        command += ["--seed", str(seed)]
    if mode == "admin":
        command += ["-H", f"Authorization: Bearer {ADMIN_KEY}"]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "fuzz_hooks",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "scripts"), os.environ.get("PYTHONPATH", "")]),
        "TESSERA_FUZZ_TALLY": str(tally),
    }
    print(f"== {mode}: {' '.join(command[1:])}", flush=True)
    result = subprocess.run(command, env=env, check=False)
    counts: Counter[str] = Counter()
    if tally.exists():
        for line in tally.read_text().splitlines():
            record = json.loads(line)
            counts[str(record["status"])] += 1
            if record["status"] >= 500:
                counts["5xx"] += 1
            if record["internal"]:
                counts["internal"] += 1
    counts["schemathesis exit"] = result.returncode
    return counts


def main(argv: list[str] | None = None) -> int:
    """Fuzz anonymous and admin clients; print the counts; 1 on any 5xx."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="cases per key mode (500)")
    parser.add_argument("--modes", default="anonymous,admin", help="comma list of anonymous, admin")
    parser.add_argument("--workers", type=int, default=1, help="concurrent schemathesis workers")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (reproducible)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tessera-fuzz-") as tmp:
        folder = Path(tmp)
        process, url = start_gateway(folder)
        results: dict[str, Counter[str]] = {}
        try:
            for mode in args.modes.split(","):
                results[mode] = fuzz(url, mode, args.examples, args.workers, folder, args.seed)
        finally:
            stop(process)
        print()
        print(f"{'mode':<10} {'responses':>9} {'5xx':>5} {'internal':>8}  by status")
        failed = False
        for mode, counts in results.items():
            statuses = {k: v for k, v in counts.items() if k.isdigit()}
            total = sum(statuses.values())
            print(
                f"{mode:<10} {total:>9} {counts['5xx']:>5} {counts['internal']:>8}  "
                + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
            )
            failed |= bool(counts["5xx"] or counts["internal"] or counts["schemathesis exit"])
            failed |= total == 0
        if failed:
            kept = Path(tempfile.gettempdir()) / "tessera-fuzz-gateway.log"
            shutil.copy(folder / "gateway.log", kept)
            print(f"FAILED: see schemathesis's report above and {kept}", file=sys.stderr)
            return 1
        return 0


if __name__ == "__main__":
    sys.exit(main())
