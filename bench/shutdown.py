"""Stop the gateway under load and measure how long it takes and what it loses.

Run from the repository root with the project's virtualenv active:

    python bench/shutdown.py [--duration 40] [--workers 1] [--signal TERM|INT] [--target group]

It starts `python -m gateway serve` on its embedded defaults (a fresh
`STATE_DIR`, so SecantusDB is the gateway's own) in a process group of its
own, drives it with wrk (`bench/shutdown.lua`: three home pages for one of
2,000 visitors, then five page-view events, 16 connections) for `--duration`
seconds, and then, with the load still running, sends the signal to the whole
process group (`--target group`, what Ctrl+C in a terminal does) or to the
gateway's process only (`--target main`, what Kubernetes and `docker stop`
do). It reports:

- how long the gateway took to exit after the signal, and its exit status;
- the exposure documents: one queued per personalized page answered (counted by wrk),
  written (`/metrics` just before the signal; the documents found in the
  database afterwards), lost (answered minus stored) and dropped at shutdown
  as the gateway's log says (`exposures dropped at shutdown: N`);
- whether any process of the run (SecantusDB included) outlived the gateway.

Exits 1 when the gateway did not stop within `--bound` seconds (then it is
killed) or left a process behind; 2 when wrk is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from gateway.embedded_mongo import EmbeddedMongo, free_port

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "shutdown.lua"
KEY = "pk_shutdown_bench"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=40, help="seconds of load before")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers N")
    parser.add_argument("--signal", choices=("TERM", "INT"), default="TERM")
    parser.add_argument("--target", choices=("group", "main"), default="group")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--bound", type=float, default=60.0, help="seconds before SIGKILL")
    parser.add_argument("--log", action="store_true", help="print the gateway's log afterwards")
    return parser.parse_args(argv)


def metric(text: str, name: str) -> float:
    """The sum of every sample of `name` in a Prometheus text page."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            if head == name or head.startswith(name + "{"):
                total += float(value)
    return total


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline and entry.name != str(os.getpid()):
                found.append(int(entry.name))
    return found


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gateway exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("gateway not ready in 120 s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tessera-shutdown-") as tmp:
        state = Path(tmp) / "state"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
        env |= {"STATE_DIR": str(state), "PORT": str(port), "PUBLISHABLE_KEYS": KEY}
        env |= {"LOG_LEVEL": "INFO"}
        log = Path(tmp) / "gateway.log"
        command = [sys.executable, "-m", "gateway", "serve"]
        if args.workers > 1:
            command += ["--workers", str(args.workers)]
        with log.open("wb") as out:
            gateway = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_ready(gateway, url, log)
        load = subprocess.Popen(
            [wrk, "-t2", f"-c{args.connections}", f"-d{args.duration + int(args.bound) + 10}s",
             "-s", str(LUA), url, "--", KEY],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        time.sleep(args.duration)
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            page = response.read().decode()
        logged_before = metric(page, "tessera_exposures_logged_total")
        dropped_before = metric(page, "tessera_exposures_dropped_total")
        sig = signal.SIGTERM if args.signal == "TERM" else signal.SIGINT
        started = time.monotonic()
        if args.target == "group":
            os.killpg(gateway.pid, sig)
        else:
            gateway.send_signal(sig)
        try:
            status: int | None = gateway.wait(args.bound)
        except subprocess.TimeoutExpired:
            status = None
            os.killpg(gateway.pid, signal.SIGKILL)
            gateway.wait()
        elapsed = time.monotonic() - started
        # The gateway is gone: how long until nothing of the run is left?
        leftover_deadline = time.monotonic() + 10
        while processes_mentioning(tmp) and time.monotonic() < leftover_deadline:
            time.sleep(0.1)
        leftovers = processes_mentioning(tmp)
        # wrk prints its summary (with the pages answered 200) when interrupted.
        os.killpg(load.pid, signal.SIGINT)
        try:
            output = load.communicate(timeout=15)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            os.killpg(load.pid, signal.SIGKILL)
            output = load.communicate()[0].decode(errors="replace")
        found = re.search(r"BENCH_RESULT (\{.*\})", output)
        pages = json.loads(found.group(1))["pages"] if found else None
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        text = log.read_text(errors="replace")
        dropped = sum(int(n) for n in re.findall(r"exposures dropped at shutdown: (\d+)", text))
        time.sleep(1)
        with EmbeddedMongo(state / "mongo") as server:
            client: MongoClient[dict[str, Any]] = MongoClient(server.uri)
            stored = client["tessera"]["exposures"].count_documents({})
            client.close()
        result = {
            "signal": f"SIG{args.signal}",
            "target": args.target,
            "workers": args.workers,
            "load_seconds": args.duration,
            "shutdown_seconds": round(elapsed, 2),
            "exit_status": status,
            "killed_after_bound": status is None,
            "personalized_pages_answered": pages,
            "exposures_logged_before_signal": int(logged_before),
            "exposures_dropped_before_signal": int(dropped_before),
            "exposures_stored": stored,
            # Every personalized page answered queued one exposure document.
            "exposures_lost": None if pages is None else pages - stored,
            "exposures_dropped_at_shutdown_logged": dropped,
            "leftover_processes": len(leftovers),
        }
        print(json.dumps(result, indent=2))
        if args.log:
            print(text, file=sys.stderr)
        if status is None or leftovers:
            print(text[-3000:], file=sys.stderr)
            return 1
        return 0


if __name__ == "__main__":
    sys.exit(main())
