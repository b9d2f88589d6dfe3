"""Shared load-generation helpers for bench/run.py (many visitors), soak.py and edge.py.

- wrk with `bench/rotate.lua` (a file of prepared requests, counted per cache
  scope) and `bench/events.lua` (event beacons), run in the foreground or
  side by side;
- the gateway's numbers: `/bench/stats`, `/metrics` (profile read outcomes),
  a process's resident memory;
- py-spy: record a process (and its workers) and list the top frames.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.run import BenchError, http

ROOT = Path(__file__).resolve().parent.parent
ROTATE_LUA = ROOT / "bench" / "rotate.lua"
EVENTS_LUA = ROOT / "bench" / "events.lua"
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run: throughput, latency, and the per-scope counts of `rotate.lua`."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    requests: int
    seconds: float
    classes: dict[str, dict[str, int]] = field(default_factory=dict)
    #: 503 answers (events.lua: the gateway shedding load), when tolerated.
    refused: int = 0

    def count(self, name: str) -> int:
        """A `rotate.lua` count (requests, non200, unpersonalized, hits, set_cookie) summed."""
        return sum(entry.get(name, 0) for entry in self.classes.values())


def _command(
    wrk: str, url: str, script: Path, duration: float, connections: int, threads: int
) -> list[str]:
    return [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
        "--latency", "--timeout", "10s", "-s", str(script), url, "--",
    ]  # fmt: skip


def start_rotate(
    wrk: str,
    url: str,
    requests: Path,
    body: Path | None = None,
    *,
    duration: float,
    connections: int = 16,
    threads: int = 2,
    start: int = 0,
) -> subprocess.Popen[str]:
    """Start wrk cycling through `requests` from line `start` (see bench/rotate.lua)."""
    args = [str(requests), str(body) if body is not None else "", str(start)]
    command = _command(wrk, url, ROTATE_LUA, duration, connections, threads) + args
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_events(
    wrk: str,
    base_url: str,
    key: str,
    run_id: str,
    visitors: int,
    *,
    duration: float,
    connections: int = 2,
    batch: int = 10,
    prefix: str = "bv",
) -> subprocess.Popen[str]:
    """Start wrk posting event batches for `<prefix>-0..visitors-1` (see bench/events.lua)."""
    args = [key, run_id, str(visitors), str(batch), prefix]
    url = f"{base_url}/v1/events"
    command = _command(wrk, url, EVENTS_LUA, duration, connections, max(1, min(2, connections)))
    return subprocess.Popen(
        command + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(
    process: subprocess.Popen[str], label: str, timeout: float = 120, *, tolerate_503: bool = False
) -> WrkResult:
    """Wait for a wrk started above; BenchError on socket errors or non-2xx answers.

    With `tolerate_503` (event beacons), 503 answers, counted by events.lua,
    are returned as `refused` instead.
    """
    try:
        output, errors = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, errors = process.communicate()
        raise BenchError(f"{label}: wrk did not finish in {timeout} s") from None
    if process.returncode != 0:
        raise BenchError(f"{label}: wrk failed ({process.returncode}): {errors or output}")
    line = next((x for x in output.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise BenchError(f"{label}: no BENCH_RESULT line in wrk's output:\n{output}\n{errors}")
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
    match = _NON_2XX.search(output)
    refused = int(result.get("refused", 0)) if tolerate_503 else 0
    non_2xx = max((int(match.group(1)) if match else 0) - refused, int(result.get("non2xx", 0)))
    # wrk counts every status >= 400 among its errors too.
    result["errors"]["status"] = max(0, result["errors"]["status"] - refused)
    socket_errors = {name: count for name, count in result["errors"].items() if count}
    if non_2xx or socket_errors:
        raise BenchError(
            f"{label}: {non_2xx} non-2xx responses, socket/status errors "
            f"{socket_errors or 'none'}; wrk said:\n{output}"
        )
    requests = int(result["requests"])
    if requests == 0:
        raise BenchError(f"{label}: no request completed")
    seconds = result["duration_us"] / 1e6
    latency = result["latency_us"]
    return WrkResult(
        requests_per_s=requests / seconds,
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        mean_ms=latency["mean"] / 1000,
        max_ms=latency["max"] / 1000,
        requests=requests,
        seconds=seconds,
        classes=result.get("classes", {}),
        refused=refused,
    )


def run_rotate(
    wrk: str,
    url: str,
    requests: Path,
    body: Path | None = None,
    *,
    duration: float,
    connections: int = 16,
    threads: int = 2,
    label: str = "",
    start: int = 0,
) -> WrkResult:
    """Run wrk over `requests` for `duration` seconds and return its result."""
    process = start_rotate(
        wrk, url, requests, body, duration=duration, connections=connections, threads=threads,
        start=start,
    )  # fmt: skip
    return finish(process, label or url, timeout=duration + 60)


def json_get(base_url: str, path: str) -> dict[str, Any]:
    """GET a JSON document from the gateway; BenchError unless 200."""
    status, body = http("GET", f"{base_url}{path}")
    if status != 200:
        raise BenchError(f"{path} answered {status}: {body[:300]!r}")
    document: dict[str, Any] = json.loads(body)
    return document


_SAMPLE = re.compile(r"^(\w+)(?:\{([^}]*)\})?\s+([-+0-9.eEinfNa]+)$")


def prometheus(base_url: str) -> dict[str, float]:
    """The gateway's /metrics as `name{labels}` -> value (labels as written)."""
    status, body = http("GET", f"{base_url}/metrics")
    if status != 200:
        raise BenchError(f"/metrics answered {status}")
    samples: dict[str, float] = {}
    for line in body.decode().splitlines():
        match = _SAMPLE.match(line)
        if match:
            name, labels, value = match.groups()
            samples[f"{name}{{{labels}}}" if labels else name] = float(value)
    return samples


READ_OUTCOMES = ("db", "near-cache", "stale", "fallback")


def profile_reads(base_url: str) -> dict[str, int]:
    """`tessera_profile_reads_total` by outcome, from /metrics (one process's view)."""
    samples = prometheus(base_url)
    return {
        outcome: int(samples.get(f'tessera_profile_reads_total{{outcome="{outcome}"}}', 0))
        for outcome in READ_OUTCOMES
    }


def delta(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    """Counter differences, key by key."""
    return {key: after.get(key, 0) - before.get(key, 0) for key in after}


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (VmRSS), in bytes; 0 once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far (0 once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name (field 2) may hold spaces: count fields after its ')'.
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def children_cpu_seconds() -> float:
    """CPU time of this process's finished children (the wrk runs), so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def children(pid: int) -> list[int]:
    """The direct children of a process (e.g. uvicorn's workers)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def loadavg() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def find_py_spy() -> str:
    """The py-spy executable (this virtualenv's first); BenchError with a hint if missing."""
    local = Path(sys.executable).parent / "py-spy"
    found = str(local) if local.exists() else shutil.which("py-spy")
    if found is None:
        raise BenchError("py-spy is not installed: `pip install py-spy`")
    return found


def py_spy_record(
    pid: int, seconds: float, output: Path, *, subprocesses: bool = False, rate: int = 100
) -> subprocess.Popen[str]:
    """Start sampling `pid` (and its children) for `seconds` into `output` (collapsed stacks)."""
    command = [
        find_py_spy(), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
        "--rate", str(rate), "--format", "raw", "--output", str(output),
    ]  # fmt: skip
    if subprocesses:
        command.append("--subprocesses")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@dataclass(frozen=True, slots=True)
class Profile:
    """Collapsed py-spy stacks summarized: the top frames by own and by total samples."""

    samples: int
    own: list[tuple[str, float]]
    total: list[tuple[str, float]]


#: Frames every request passes through (server, loop, middleware): not informative.
_PLUMBING = re.compile(
    r"runpy|click/|uvicorn/main|uvicorn/_compat|uvicorn/server|asyncio/runners|"
    r"threading\.py|concurrent/futures/thread|proxy_headers|starlette/middleware|"
    r"starlette/applications|starlette/routing|starlette/_exception_handler|run_asgi"
)


def summarize(raw: Path, top: int = 20, skip_idle_threads: bool = True) -> Profile:
    """Own and inclusive shares of each frame over all samples of the main threads.

    Idle worker threads (a thread pool waiting for work shows as
    `concurrent/futures/thread.py` `_worker`) are left out when asked.
    """
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if skip_idle_threads and any("concurrent/futures/thread.py" in f for f in frames[-2:]):
            continue
        count = int(count_text)
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if samples == 0:
        return Profile(0, [], [])
    informative = [(f, n) for f, n in total.most_common() if not _PLUMBING.search(f)]
    return Profile(
        samples=samples,
        own=[(frame, count / samples) for frame, count in own.most_common(top)],
        total=[(frame, count / samples) for frame, count in informative[:top]],
    )


def print_profile(profile: Profile, title: str) -> None:
    """The top frames, as a report section."""
    print(f"\n{title}: {profile.samples} samples")
    print("  own time:")
    for frame, share in profile.own:
        print(f"    {share * 100:5.1f}%  {frame}")
    print("  total time (with callees; server and middleware plumbing left out):")
    for frame, share in profile.total:
        print(f"    {share * 100:5.1f}%  {frame}")


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    """Poll `predicate()` every 0.1 s until it is true; BenchError after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)
