"""Run SecantusDB (a MongoDB-wire-compatible server) as a child process.

Used when `MONGODB_URI` is unset, and by the test fixtures: the code still
talks to it only through the MongoDB driver, exactly as to a real MongoDB.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Self

if TYPE_CHECKING:
    from gateway.settings import Settings

logger = logging.getLogger(__name__)


class EmbeddedMongoError(RuntimeError):
    """The embedded server could not start."""


def _advert(storage: Path) -> Path:
    return storage / "server.uri"


def running_server(storage: Path) -> str | None:
    """The URI of a server a running `serve` advertises for `storage`, if it answers."""
    try:
        uri = _advert(storage).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    address = uri.removeprefix("mongodb://").split("/", 1)[0]
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return uri
    except (OSError, ValueError):
        return None  # a stale file left by a crash


@contextlib.asynccontextmanager
async def database_uri(settings: Settings, *, advertise: bool = False) -> AsyncIterator[str]:
    """MONGODB_URI, a running `serve`'s embedded server, or one of the caller's own."""
    if settings.mongodb_uri is not None:
        yield settings.mongodb_uri.get_secret_value()
        return
    storage = settings.state_dir / "mongo"
    shared = running_server(storage)
    if shared is not None:
        yield shared
        return
    embedded = EmbeddedMongo(storage, advertise=advertise)
    await asyncio.to_thread(embedded.start)
    try:
        yield embedded.uri
    finally:
        await asyncio.to_thread(embedded.stop)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedMongo:
    """A SecantusDB server on a free loopback port, data kept in `storage`.

    `storage=":memory:"` gives a throw-away server. Use as a context manager,
    or call `start()` and `stop()`.
    """

    def __init__(
        self,
        storage: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        advertise: bool = False,
    ) -> None:
        self.storage = storage
        self.host = host
        self.port = port or free_port(host)
        # `serve` advertises its server in the storage folder so the CLI can share it.
        self.advertise = advertise and storage != ":memory:"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def uri(self) -> str:
        """The driver URI; SecantusDB reports a replica set, so connect directly."""
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    @property
    def log_path(self) -> Path:
        """Where the server's output goes."""
        if self.storage == ":memory:":
            return Path(os.environ.get("TMPDIR", "/tmp")) / f"secantusdb-{self.port}.log"
        return Path(self.storage) / "secantusdb.log"

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it accepts connections."""
        try:
            import secantus  # noqa: F401  (only to give a clear error when missing)
        except ImportError:
            raise EmbeddedMongoError(
                "MONGODB_URI is unset and the embedded server is not installed: "
                "pip install 'tessera-gateway[embedded]' or set MONGODB_URI"
            ) from None
        if self.storage != ":memory:":
            Path(self.storage).mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        command = [
            sys.executable, "-m", "secantus",
            "--host", self.host,
            "--port", str(self.port),
            "--storage-path", str(self.storage),
            "--log-level", "WARNING",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._close_log()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise EmbeddedMongoError(
                    f"SecantusDB exited with status {self.process.returncode}: {tail}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.5),
            ):
                logger.info("embedded SecantusDB listening on %s:%d", self.host, self.port)
                if self.advertise:
                    _advert(Path(self.storage)).write_text(self.uri, encoding="utf-8")
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedMongoError(f"SecantusDB did not listen on port {self.port} in {timeout}s")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server cleanly (SIGTERM), killing it if it hangs."""
        process, self.process = self.process, None
        if self.advertise and process is not None:
            _advert(Path(self.storage)).unlink(missing_ok=True)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("SecantusDB did not stop in %.0fs; killing it", timeout)
                process.kill()
                process.wait()
        self._close_log()

    def kill(self) -> None:
        """Kill the server abruptly, as a crash would (used by outage tests)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
