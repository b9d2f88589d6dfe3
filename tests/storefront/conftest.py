"""The example storefront (examples/storefront) in a real browser, against real gateways.

`npm ci` installs the app's pinned packages (through npm's cache, ~/.npm, so
only a machine's first run downloads them); Playwright (`playwright-core`)
drives Debian's `chromium` (`/usr/bin/chromium`; scripts/test.sh installs it).
Without node, npm, the npm registry or Chromium the tests fail with the
reason: they never skip.

Three set-ups, each started once per session:

- `dev_stack`: the documented command (`npm start`: scripts/dev.mjs), which
  starts `python -m gateway serve` on its embedded defaults and Vite's dev
  server in front of it;
- `cross_origin_app`: a second dev server whose app calls that gateway on
  another origin (`VITE_TESSERA_API_URL`, the gateway's `CORS_ORIGINS`);
- `edge_stack`: the production build (`vite build`, served by `vite
  preview`) behind the shipped Varnish configuration, in front of a gateway
  that runs only the app's trusted documents (`PERSISTED_QUERIES=trusted`
  with the generated manifest).

Screenshots go to `artifacts/storefront/` (or `$STOREFRONT_ARTIFACTS`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.embedded_mongo import free_port
from tests.edge.varnish import Varnish
from tests.test_serve_socket import processes_mentioning

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "storefront"
MANIFEST = APP / "src" / "gql" / "persisted-documents.json"
STAMP = APP / "node_modules" / ".tessera-installed"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("STOREFRONT_ARTIFACTS", ROOT / "artifacts" / "storefront"))
NODE_MAJOR = 20
PUBLISHABLE = "pk_storefront"
ADMIN = "sk_storefront_tests"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: the storefront tests need Node.js 20.19+ and npm.", False)
    return path


def run(args: list[str], *, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    """Run a command in examples/storefront; fail the test with its output if it fails."""
    try:
        done = subprocess.run(
            args,
            cwd=APP,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(args)} did not finish in {exc.timeout} s", False)
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-4000:]}\n"
            f"{done.stderr[-4000:]}",
            False,
        )
    return done.stdout


@pytest.fixture(scope="session")
def node() -> str:
    """`node`, with the storefront's packages installed by `npm ci`."""
    node, npm = _tool("node"), _tool("npm")
    version = run([node, "--version"]).strip()
    if int(version.lstrip("v").split(".")[0]) < NODE_MAJOR:
        pytest.fail(f"the storefront needs Node.js {NODE_MAJOR}.19+, found {version}.", False)
    digest = hashlib.sha256(version.encode())
    for name in ("package.json", "package-lock.json"):
        digest.update((APP / name).read_bytes())
    # A clone without node_modules (CI) always installs; a rerun with the same
    # lockfile and Node skips it.
    if not (STAMP.is_file() and STAMP.read_text() == digest.hexdigest()):
        try:
            run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"])
        except pytest.fail.Exception as exc:
            pytest.fail(f"npm ci in examples/storefront failed (npm registry unreachable?) {exc}")
        STAMP.write_text(digest.hexdigest())
    return node


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, which Playwright drives (no browser download)."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} not found: apt-get install -y chromium (scripts/test.sh does it).", False
        )
    return CHROMIUM


def bin_(name: str) -> str:
    """A command installed by npm ci."""
    return str(APP / "node_modules" / ".bin" / name)


class Process:
    """A child process in its own session, its output in a log file, stopped cleanly."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                args,
                cwd=APP,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_for(self, text: str, timeout: float = 120) -> None:
        """Until `text` appears in the output; fail with the log if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                pytest.fail(f"{self.log.name} exited:\n{self.log.read_text()[-4000:]}", False)
            time.sleep(0.1)
        pytest.fail(f"{self.log.name}: no {text!r} in {timeout} s:\n{self.log.read_text()}", False)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL the whole group after 30 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def wait_ready(url: str, process: Process, timeout: float = 120) -> None:
    """Until `url` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            pytest.fail(f"{process.log.name} exited:\n{process.log.read_text()[-4000:]}", False)
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer in {timeout} s:\n{process.log.read_text()[-4000:]}", False)


@dataclass
class Stack:
    """A running storefront: where the app and its gateway answer."""

    app: str
    gateway: str
    root: Path

    def admin(self, query: str, **variables: Any) -> dict[str, Any]:
        """An admin GraphQL query against the gateway (exportVisitor, ...)."""
        response = httpx.post(
            f"{self.gateway}/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=30,
        )
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        return body["data"]

    def export(self, visitor_id: str) -> dict[str, Any]:
        """Everything the gateway holds about a visitor."""
        exported: dict[str, Any] = self.admin(
            "query($id: ID!) { exportVisitor(id: $id) }", id=visitor_id
        )["exportVisitor"]
        return exported


def _cleanup(root: Path) -> None:
    for pid in processes_mentioning(str(root)):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def cross_origin_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def dev_stack(
    node: str, tmp_path_factory: pytest.TempPathFactory, cross_origin_port: int
) -> Iterator[Stack]:
    """`npm start`: the gateway on its embedded defaults plus Vite's dev server."""
    root = tmp_path_factory.mktemp("storefront-dev")
    gateway_port, app_port = free_port(), free_port()
    env = {
        "STATE_DIR": str(root / "state"),
        "TESSERA_PORT": str(gateway_port),
        "STOREFRONT_PORT": str(app_port),
        "TESSERA_PYTHON": sys.executable,
        "ADMIN_KEYS": ADMIN,
        "CORS_ORIGINS": f"http://localhost:{cross_origin_port}",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("TESSERA_URL", None)
    started = Process([node, "scripts/dev.mjs"], env, root / "dev.log")
    try:
        started.wait_for("Storefront: ")
        yield Stack(f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{gateway_port}", root)
    finally:
        started.stop()
        _cleanup(root)


@pytest.fixture(scope="session")
def cross_origin_app(
    node: str, dev_stack: Stack, tmp_path_factory: pytest.TempPathFactory, cross_origin_port: int
) -> Iterator[Stack]:
    """The app on http://localhost:<port>, calling the dev stack's gateway on its own origin."""
    root = tmp_path_factory.mktemp("storefront-cross")
    gateway_port = dev_stack.gateway.rsplit(":", 1)[1]
    env = {
        "STOREFRONT_PORT": str(cross_origin_port),
        "VITE_TESSERA_API_URL": f"http://localhost:{gateway_port}",
        "VITE_TESSERA_PUBLISHABLE_KEY": PUBLISHABLE,
        # Its own dependency cache: two dev servers must not rewrite one folder.
        "VITE_CACHE_DIR": str(root / "vite-cache"),
    }
    server = Process([node, bin_("vite")], env, root / "vite.log")
    try:
        wait_ready(f"http://127.0.0.1:{cross_origin_port}/", server)
        yield Stack(f"http://localhost:{cross_origin_port}", dev_stack.gateway, root)
    finally:
        server.stop()
        _cleanup(root)


@pytest.fixture(scope="session")
def production_build(node: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`vite build` of the app (after `tsc`), into a temporary folder."""
    out = tmp_path_factory.mktemp("storefront-build") / "dist"
    run([node, bin_("vite"), "build", "--outDir", str(out), "--emptyOutDir"])
    return out


@pytest.fixture(scope="session")
def edge_stack(
    node: str, production_build: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The built app (vite preview) -> Varnish (deploy/varnish) -> a trusted-documents gateway."""
    root = tmp_path_factory.mktemp("storefront-edge")
    gateway_port, app_port = free_port(), free_port()
    gateway = Process(
        [sys.executable, "-m", "gateway", "serve", "--port", str(gateway_port)],
        {
            "STATE_DIR": str(root / "state"),
            "PUBLISHABLE_KEYS": PUBLISHABLE,
            "ADMIN_KEYS": ADMIN,
            "PERSISTED_QUERIES": "trusted",
            "PERSISTED_QUERIES_MANIFEST": str(MANIFEST),
            "LOG_LEVEL": "WARNING",
        },
        root / "gateway.log",
    )
    varnish: Varnish | None = None
    preview: Process | None = None
    try:
        wait_ready(f"http://127.0.0.1:{gateway_port}/readyz", gateway)
        varnish = Varnish(gateway_port, root / "varnish").start()
        preview = Process(
            [node, bin_("vite"), "preview", "--outDir", str(production_build)],
            {"STOREFRONT_PORT": str(app_port), "TESSERA_URL": varnish.url},
            root / "preview.log",
        )
        wait_ready(f"http://127.0.0.1:{app_port}/", preview)
        yield Stack(f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{gateway_port}", root)
    finally:
        if preview is not None:
            preview.stop()
        if varnish is not None:
            varnish.stop()
        gateway.stop()
        _cleanup(root)


def browse(node: str, stack: Stack, suite: str) -> dict[str, Any]:
    """Run the browser suite `suite` of e2e/storefront.mjs against `stack`; its JSON report."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = run(
        [node, "e2e/storefront.mjs", stack.app, str(ARTIFACTS / suite), suite, stack.gateway],
        env={"ADMIN_KEY": ADMIN, "CHROMIUM": str(CHROMIUM)},
        timeout=900,
    )
    lines = out.strip().splitlines()
    assert lines, "e2e/storefront.mjs printed nothing"
    report: dict[str, Any] = json.loads(lines[-1])
    (ARTIFACTS / f"{suite}.json").write_text(json.dumps(report, indent=2))
    return report


def scenario(report: dict[str, Any], name: str) -> dict[str, Any]:
    """One scenario's result; fail with its error if it did not complete."""
    result: dict[str, Any] = report["scenarios"][name]
    assert result["ok"], result["error"]
    return result
