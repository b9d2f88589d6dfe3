"""Node.js clients against a live gateway: `npm ci` of tests/npm, one served gateway.

The npm packages come from the registry through npm's own cache (~/.npm),
so only the first run on a machine downloads them. If node, npm or the
registry is missing, the tests fail with npm's message: they never skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_serve_socket import Served, processes_mentioning

NPM_DIR = Path(__file__).parent
#: Written after a successful `npm ci`: the lockfile and Node version it installed.
STAMP = NPM_DIR / "node_modules" / ".tessera-installed"
NODE_MAJOR = 20


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: tests/npm need Node.js {NODE_MAJOR}+ and npm.", False)
    return path


def _install_digest(node_version: str) -> str:
    digest = hashlib.sha256(node_version.encode())
    for name in ("package.json", "package-lock.json"):
        digest.update((NPM_DIR / name).read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def node() -> str:
    """The `node` binary, with tests/npm's packages installed by `npm ci`."""
    node, npm = _tool("node"), _tool("npm")
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < NODE_MAJOR:
        pytest.fail(f"tests/npm need Node.js {NODE_MAJOR}+, found {version}.", False)
    wanted = _install_digest(version)
    # A clone without node_modules (CI) always installs; a developer's rerun
    # skips the ~5 s reinstall while the lockfile and Node stay the same.
    if STAMP.is_file() and STAMP.read_text() == wanted:
        return node
    try:
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"],
            cwd=NPM_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"npm ci in tests/npm did not finish in {exc.timeout} s.", False)
    if installed.returncode != 0:
        pytest.fail(
            f"npm ci in tests/npm failed (exit {installed.returncode}): is the npm registry "
            f"reachable?\n{installed.stdout}\n{installed.stderr}",
            False,
        )
    STAMP.write_text(wanted)
    return node


@pytest.fixture(scope="session")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m gateway serve` on its embedded defaults, on a free port."""
    root = tmp_path_factory.mktemp("npm-gateway")
    served = Served(root / "state")
    try:
        yield f"{served.url}/graphql"
    finally:
        assert served.stop(), (root / "gateway.log").read_text()
        for pid in processes_mentioning(str(root)):
            os.kill(pid, signal.SIGKILL)


def run_script(node: str, script: str, *args: str) -> dict[str, Any]:
    """Run tests/npm/`script` with Node; its last stdout line is the JSON it reports."""
    try:
        done = subprocess.run(
            [node, script, *args], cwd=NPM_DIR, capture_output=True, text=True, timeout=300
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"node {script} did not finish in {exc.timeout} s.", False)
    assert done.returncode == 0, f"node {script} exited {done.returncode}:\n{done.stderr}"
    lines = done.stdout.strip().splitlines()
    assert lines, f"node {script} printed nothing:\n{done.stderr}"
    report: dict[str, Any] = json.loads(lines[-1])
    return report
