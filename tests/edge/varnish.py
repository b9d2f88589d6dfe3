"""A real varnishd for tests: start it on a free port in front of a backend, stop it cleanly.

`Varnish(backend_port, workdir).start()` compiles `deploy/varnish/default.vcl`
with only its backend address and probe timing changed, so the tested VCL is
the shipped one (its ACL included). varnishd runs in the foreground (`-F`),
with its working directory (`-n`) under `workdir`, listening on
127.0.0.1:<free port>, never on the packaged service's :6081. `stat()` reads
varnishstat counters; `ban_all()` empties the cache between tests.

Reusable outside the tests (the bench uses it): `python -m tests.edge.varnish
BACKEND_PORT` serves until interrupted and prints its address.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[2]
VCL_DIR = ROOT / "deploy" / "varnish"
DEFAULT_VCL = VCL_DIR / "default.vcl"
SBIN = ("/usr/sbin", "/usr/local/sbin")


class VarnishError(RuntimeError):
    """varnishd is missing, did not start, or refused the VCL."""


def find_binary(name: str) -> str:
    """The path of a Varnish program (varnishd lives in /usr/sbin, often off PATH)."""
    found = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *SBIN]))
    if found is None:
        raise VarnishError(
            f"{name} not found: install Varnish 7 and varnish-modules "
            "(apt-get install -y varnish varnish-modules; scripts/test.sh does it)"
        )
    return found


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wrapper_vcl(
    backend_host: str,
    backend_port: int,
    *,
    probe_interval: str = "0.5s",
    probe_timeout: str = "2s",
    source: Path = DEFAULT_VCL,
) -> str:
    """The shipped default.vcl, pointed at `backend_host:backend_port`, probing more often.

    The probe's timeout is generous: on a busy CI machine a slow /healthz must not
    mark the origin sick (every miss would then fail at once).
    """
    text = source.read_text()
    replacements = [
        (r'\.host = "[^"]*";', f'.host = "{backend_host}";'),
        (r'\.port = "[^"]*";', f'.port = "{backend_port}";'),
        (r"\.interval = [0-9.]+s;", f".interval = {probe_interval};"),
        (r"\.timeout = [0-9.]+s;", f".timeout = {probe_timeout};"),
        (r'include "\./tessera\.vcl";', f'include "{VCL_DIR / "tessera.vcl"}";'),
    ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text, count=1)
        if count != 1:
            raise VarnishError(f"{source}: no match for {pattern!r}; update tests/edge/varnish.py")
    return text


@dataclass
class Varnish:
    """One varnishd process in front of 127.0.0.1:`backend_port`."""

    backend_port: int
    workdir: Path
    backend_host: str = "127.0.0.1"
    storage: str = "malloc,64m"
    params: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The base URL clients use."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def name(self) -> str:
        """The -n working directory, as varnishadm and varnishstat need it."""
        return str(self.workdir / "varnishd")

    def start(self, timeout: float = 60.0) -> Varnish:
        """Compile the VCL, start varnishd and wait until its child serves."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        vcl = self.workdir / "test.vcl"
        vcl.write_text(wrapper_vcl(self.backend_host, self.backend_port))
        self.port = free_port()
        args = [
            find_binary("varnishd"),
            "-F",
            "-n",
            self.name,
            "-a",
            f"127.0.0.1:{self.port}",
            "-T",
            "127.0.0.1:0",
            "-f",
            str(vcl),
            "-s",
            self.storage,
            # Root (CI containers) would otherwise drop to the `varnish` users, who
            # cannot read a test's private tmp folder.
            "-j",
            "none",
            "-p",
            "vsl_space=16M",
            "-p",
            "thread_pool_min=10",
        ]
        for key, value in self.params.items():
            args += ["-p", f"{key}={value}"]
        log = (self.workdir / "varnishd.log").open("wb")
        # Its own process group: Ctrl-C in pytest reaches us, and we stop it in order.
        self.process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise VarnishError(f"varnishd exited: {self.log_tail()}")
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                status = self.adm("status", timeout=5)
                if "running" in status:
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise VarnishError(f"varnishd did not start in {timeout} s: {self.log_tail()}")
            time.sleep(0.1)
        return self

    def log_tail(self) -> str:
        """The end of varnishd's own output (VCL compile errors land there)."""
        path = self.workdir / "varnishd.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def adm(self, *command: str, timeout: float = 10) -> str:
        """Run one varnishadm command; raises on failure."""
        result = subprocess.run(
            [find_binary("varnishadm"), "-n", self.name, *command],
            capture_output=True,
            timeout=timeout,
            check=True,
        )
        return result.stdout.decode()

    def stat(self, *names: str) -> dict[str, int]:
        """varnishstat counters by name (e.g. MAIN.n_object, MAIN.cache_hit)."""
        result = subprocess.run(
            [find_binary("varnishstat"), "-n", self.name, "-1", "-j"],
            capture_output=True,
            timeout=10,
            check=True,
        )
        data = json.loads(result.stdout)
        counters = data.get("counters", data)
        return {name: int(counters[name]["value"]) for name in names}

    def ban_all(self) -> None:
        """Invalidate every cached object (between tests)."""
        self.adm("ban", "obj.status", "!=", "0")

    def backend_healthy(self) -> bool:
        """Whether the probe currently says the backend is up."""
        listing = self.adm("backend.list")
        for line in listing.splitlines()[1:]:
            columns = line.split()
            if columns and columns[0].endswith(".tessera"):
                return columns[3] == "healthy"
        raise VarnishError(f"backend tessera not listed: {listing}")

    def stop(self, timeout: float = 20.0) -> None:
        """Stop varnishd (SIGTERM to the manager, which stops its child) and wait."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.process = None

    def __enter__(self) -> Varnish:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> None:
    """Serve varnishd with the shipped VCL in front of 127.0.0.1:BACKEND_PORT until Ctrl-C."""
    import tempfile

    backend_port = int(sys.argv[1])
    with (
        tempfile.TemporaryDirectory(prefix="tessera-varnish-") as folder,
        Varnish(backend_port, Path(folder)) as varnish,
    ):
        print(varnish.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.sigwait({signal.SIGINT, signal.SIGTERM})


if __name__ == "__main__":
    main()
