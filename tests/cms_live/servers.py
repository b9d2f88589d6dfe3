"""Run a real Directus or Strapi from the npm cache, in a temp folder, on a free port.

Each server is a child process in its own process group, with SQLite in the
session's temp folder; `stop()` ends the group, so nothing outlives the
tests. The CLI helpers run the same commands the guides give
(`directus schema apply`, copying the Strapi schema into `src/`).
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from tests.cms_live.install import DIRECTUS, STRAPI, ensure

REPO = Path(__file__).resolve().parents[2]
DIRECTUS_SNAPSHOT = REPO / "cms_adapters" / "directus" / "snapshot.json"
STRAPI_SCHEMA = REPO / "cms_adapters" / "strapi" / "schema" / "src"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "tessera-live-Pa55"  # a throwaway admin of a throwaway server
START_TIMEOUT = 180.0


class ServerError(RuntimeError):
    """A CMS server or CLI command failed; the message carries its log."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, however it dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "npm_config_cache")
    return {k: v for k, v in os.environ.items() if k in keep} | {"NODE_ENV": "production"}


class NodeServer:
    """A Node.js CMS server process with its log file."""

    name = ""
    health_path = ""
    #: Extra environment for CLI commands (Directus logs "No changes to apply" at info).
    cli_env: dict[str, str] = {}

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    def env(self) -> dict[str, str]:
        """The environment the server and its CLI run with."""
        raise NotImplementedError

    def command(self) -> list[str]:
        """The command that serves the CMS."""
        raise NotImplementedError

    def run_cli(self, *args: str, timeout: float = 300.0) -> str:
        """Run a CLI command in the app folder; its combined output, or ServerError."""
        result = subprocess.run(
            list(args),
            cwd=self.folder,
            env=self.env() | self.cli_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise ServerError(f"{' '.join(args)} failed ({result.returncode}):\n{output[-4000:]}")
        return output

    def start(self) -> None:
        """Start the server and wait until its health endpoint answers."""
        started = time.monotonic()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.folder,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # never outlive the tests, even on SIGKILL
            )
        deadline = started + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise ServerError(f"{self.name} exited at start:\n{self.tail()}")
            try:
                if httpx.get(self.url + self.health_path, timeout=2).status_code < 300:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(
                    f"{self.name} did not answer in {START_TIMEOUT} s:\n{self.tail()}"
                )
            time.sleep(0.25)
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Stop the server's whole process group."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def tail(self, size: int = 4000) -> str:
        """The end of the server's log."""
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""


class DirectusServer(NodeServer):
    """Directus 11 on SQLite; `ADMIN_TOKEN` is the first admin's static token.

    As docs/cms/directus.md says, `IMPORT_IP_DENY_LIST` is narrowed to the cloud
    metadata address: the default (0.0.0.0, every address of this host) makes a
    Flow refuse to call a Tessera on this machine.
    """

    name = "directus"
    health_path = "/server/health"
    cli_env = {"LOG_LEVEL": "info", "LOG_STYLE": "raw"}

    def __init__(self, folder: Path, deny_list: str | None = "169.254.169.254") -> None:
        super().__init__(folder)
        self.install, _ = ensure(DIRECTUS)
        #: IMPORT_IP_DENY_LIST; None keeps Directus' default (every address of this host).
        self.deny_list = deny_list
        self.admin_token = secrets.token_hex(16)
        self.key = secrets.token_hex(16)
        self.secret = secrets.token_hex(16)

    @property
    def cli(self) -> str:
        """The `directus` command of the cached install."""
        return str(self.install / "node_modules" / ".bin" / "directus")

    def env(self) -> dict[str, str]:
        """SQLite in the folder, no telemetry, and Flows allowed to call 127.0.0.1."""
        deny = {} if self.deny_list is None else {"IMPORT_IP_DENY_LIST": self.deny_list}
        return (
            _base_env()
            | deny
            | {
                "HOST": "127.0.0.1",
                "PORT": str(self.port),
                "PUBLIC_URL": self.url,
                "DB_CLIENT": "sqlite3",
                "DB_FILENAME": str(self.folder / "data.db"),
                "KEY": self.key,
                "SECRET": self.secret,
                "ADMIN_EMAIL": ADMIN_EMAIL,
                "ADMIN_PASSWORD": ADMIN_PASSWORD,
                "ADMIN_TOKEN": self.admin_token,
                "STORAGE_LOCATIONS": "local",
                "STORAGE_LOCAL_ROOT": str(self.folder / "uploads"),
                "EXTENSIONS_PATH": str(self.folder / "extensions"),
                "TELEMETRY": "false",
                "LOG_LEVEL": "warn",
                "CACHE_ENABLED": "false",
                "RATE_LIMITER_ENABLED": "false",
            }
        )

    def command(self) -> list[str]:
        """`directus start`."""
        return [self.cli, "start"]

    def bootstrap(self) -> None:
        """Create the database and the first admin (`directus bootstrap`)."""
        # A project folder has a package.json (Directus looks for extensions in it).
        (self.folder / "package.json").write_text('{"name": "directus-project", "private": true}')
        (self.folder / "uploads").mkdir(exist_ok=True)
        (self.folder / "extensions").mkdir(exist_ok=True)
        self.run_cli(self.cli, "bootstrap")

    def apply_snapshot(self, snapshot: Path = DIRECTUS_SNAPSHOT) -> str:
        """`directus schema apply --yes <snapshot>`, as the guide says; its output."""
        return self.run_cli(self.cli, "schema", "apply", "--yes", str(snapshot))

    def dry_run(self, snapshot: Path = DIRECTUS_SNAPSHOT) -> str:
        """`directus schema apply --dry-run <snapshot>`: what applying would change."""
        return self.run_cli(self.cli, "schema", "apply", "--dry-run", str(snapshot))

    def snapshot(self, target: Path) -> None:
        """`directus schema snapshot --yes <target>`: export the current schema."""
        self.run_cli(self.cli, "schema", "snapshot", "--yes", str(target))


class StrapiServer(NodeServer):
    """Strapi 5 on SQLite, in a project made from `strapi_app/` plus Tessera's schema."""

    name = "strapi"
    health_path = "/_health"

    def __init__(self, folder: Path, node_env: str = "development") -> None:
        super().__init__(folder)
        self.install, _ = ensure(STRAPI)
        self.node_env = node_env
        self.secrets = {
            name: secrets.token_hex(16)
            for name in (
                "ADMIN_JWT_SECRET",
                "API_TOKEN_SALT",
                "TRANSFER_TOKEN_SALT",
                "ENCRYPTION_KEY",
                "JWT_SECRET",
            )
        }
        self.app_keys = ",".join(secrets.token_hex(16) for _ in range(2))

    def env(self) -> dict[str, str]:
        """SQLite in the folder, secrets of this run, no telemetry."""
        return (
            _base_env()
            | self.secrets
            | {
                "HOST": "127.0.0.1",
                "PORT": str(self.port),
                "APP_KEYS": self.app_keys,
                "DATABASE_FILENAME": str(self.folder / "data.db"),
                "STRAPI_TELEMETRY_DISABLED": "true",
                "STRAPI_DISABLE_UPDATE_NOTIFICATION": "true",
                "BROWSER": "none",
                # In production Strapi refuses webhook URLs on this machine ("isn't
                # reachable over the public internet"); the guide says so. The tests'
                # Tessera is on 127.0.0.1, so Strapi runs as a development server
                # (the benchmark, which needs no webhook, runs it in production).
                "NODE_ENV": self.node_env,
            }
        )

    def command(self) -> list[str]:
        """`strapi start` from the cached install."""
        return [str(self.install / "node_modules" / ".bin" / "strapi"), "start"]

    def create_project(self, schema: Path = STRAPI_SCHEMA) -> None:
        """The project: config and `src/` from strapi_app/, then the guide's step (copy schema)."""
        source = DIRECTUS.source.parent / "strapi_app"
        shutil.copytree(source / "config", self.folder / "config", dirs_exist_ok=True)
        shutil.copytree(source / "src", self.folder / "src", dirs_exist_ok=True)
        shutil.copy2(source / "package.json", self.folder / "package.json")
        (self.folder / "public" / "uploads").mkdir(parents=True, exist_ok=True)
        link = self.folder / "node_modules"
        if not link.exists():
            link.symlink_to(self.install / "node_modules", target_is_directory=True)
        # docs/cms/strapi.md: "Copy cms_adapters/strapi/schema/src/ into your project's src/".
        shutil.copytree(schema, self.folder / "src", dirs_exist_ok=True)
