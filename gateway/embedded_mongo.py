"""Run SecantusDB (a MongoDB-wire-compatible server) as a child process.

Used when `MONGODB_URI` is unset, and by the test fixtures: the code still
talks to it only through the MongoDB driver, exactly as to a real MongoDB.

The server runs through `gateway.embedded_child`, in a session of its own,
and stops itself cleanly once the process that started it is gone (even
after a SIGKILL). A server started for `serve` is advertised in
`<storage>/server.uri` (JSON: its URI, the owner's and the server's pids and
start times, and its supervision state), so the CLI tools share it, a
second `serve` on the same storage is refused, and a server a dead owner
left behind is stopped before a new one starts on its storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self

from pymongo import MongoClient
from pymongo.errors import PyMongoError

if TYPE_CHECKING:
    from gateway.settings import Settings

logger = logging.getLogger(__name__)


class EmbeddedMongoError(RuntimeError):
    """The embedded server could not start."""


class StorageInUse(EmbeddedMongoError):
    """Another live process owns the server on this storage."""


ADVERT = "server.uri"
LOCK_FILE = "WiredTiger.lock"


def _advert_path(storage: Path) -> Path:
    return storage / ADVERT


# -- processes ------------------------------------------------------------------------


def process_started(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot; None if unknown or gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, started: int | None = None) -> bool:
    """Whether `pid` runs (not a zombie) and, if `started` is known, is the same process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    if stat.rpartition(")")[2].split()[:1] == ["Z"]:
        return False  # exited, not yet reaped
    # A recycled pid is another process: it started at another time.
    return started is None or process_started(pid) in (None, started)


def _command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or "?"


# -- the storage lock (WiredTiger's) ----------------------------------------------------


def storage_locked(storage: Path) -> bool:
    """Whether a process holds WiredTiger's lock on `storage` (a server runs on it)."""
    try:
        fd = os.open(storage / LOCK_FILE, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def lock_holder(storage: Path) -> int | None:
    """The pid holding WiredTiger's lock on `storage`, when Linux's /proc/locks says."""
    try:
        inode = os.stat(storage / LOCK_FILE).st_ino
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    for line in table.splitlines():
        # "3: POSIX  ADVISORY  WRITE 10522 fe:00:4612967 0 0"
        fields = line.split()
        if (
            len(fields) >= 6
            and fields[1] == "POSIX"
            and fields[4].isdigit()
            and fields[5].rsplit(":", 1)[-1] == str(inode)
        ):
            return int(fields[4])
    return None


def _wait_unlocked(storage: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while storage_locked(storage):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- the advert (server.uri) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Advert:
    """What `<storage>/server.uri` says about the server running on that storage."""

    uri: str
    owner: int | None = None
    owner_started: int | None = None
    server: int | None = None
    server_started: int | None = None
    #: The owner's supervision state: "running", "restarting" or "failed".
    state: str = "running"
    restarts: int = 0

    @classmethod
    def read(cls, storage: Path) -> Advert | None:
        """The advert on `storage` (None if absent or unreadable)."""
        try:
            text = _advert_path(storage).read_text(encoding="utf-8").strip()
        except OSError:
            return None
        if text.startswith("mongodb://"):
            return cls(uri=text)  # written by an older Tessera: a URI alone
        try:
            data: Any = json.loads(text)
            return cls(**{name: data[name] for name in data if name in cls.__dataclass_fields__})
        except (ValueError, TypeError):
            return None

    def write(self, storage: Path) -> None:
        """Write the advert atomically (readers never see half a file)."""
        target = _advert_path(storage)
        partial = target.with_name(f".{ADVERT}.{os.getpid()}.{threading.get_ident()}")
        partial.write_text(json.dumps(asdict(self)), encoding="utf-8")
        os.replace(partial, target)

    @property
    def owner_alive(self) -> bool:
        """Whether the process that started the server still runs."""
        return self.owner is not None and process_alive(self.owner, self.owner_started)


def answers(uri: str, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at the URI's host and port."""
    address = uri.removeprefix("mongodb://").split("/", 1)[0]
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _pings(uri: str, timeout_ms: int = 1000) -> bool:
    """Whether a MongoDB server answers `ping` at `uri`."""
    client: MongoClient[dict[str, Any]]
    with MongoClient(
        uri,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=timeout_ms,
        serverSelectionTimeoutMS=timeout_ms,
        appname="tessera-start",
    ) as client:
        try:
            client.admin.command("ping")
        except PyMongoError:
            return False
    return True


def running_server(storage: Path) -> str | None:
    """The URI of the server a live `serve` advertises for `storage`, if it answers."""
    advert = Advert.read(storage)
    if advert is None:
        return None
    if advert.owner is not None and not advert.owner_alive:
        return None  # an orphan: it stops itself, or the next owner stops it
    return advert.uri if answers(advert.uri) else None


def _terminate(pid: int, started: int | None, timeout: float) -> None:
    """SIGTERM `pid`, wait up to `timeout` for it to exit, then SIGKILL it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_alive(pid, started):
        if time.monotonic() > deadline:
            logger.warning("SecantusDB pid %d did not stop in %.0f s; killing it", pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)


def claim_storage(storage: Path, *, stop_timeout: float = 15.0) -> None:
    """Make `storage` free for a server of this process.

    A server whose owner is alive (another `serve` on the same `STATE_DIR`)
    is refused with `StorageInUse`; one whose owner is gone (an orphan) is
    stopped: SIGTERM, then SIGKILL after `stop_timeout`, and the storage
    lock waited for.
    """
    advert = Advert.read(storage)
    # A dead server's lock is released as it exits: wait long only for one being stopped.
    lock_wait = 1.0
    if advert is not None and advert.owner != os.getpid():  # not this process's own, restarted
        if advert.owner_alive:
            assert advert.owner is not None
            raise StorageInUse(
                f"{storage} is in use by another process (pid {advert.owner}: "
                f"{_command_line(advert.owner)}), whose embedded SecantusDB answers at "
                f"{advert.uri}: stop it first, or give this one another STATE_DIR "
                "(or a MONGODB_URI)"
            )
        if advert.server is not None and process_alive(advert.server, advert.server_started):
            logger.warning(
                "stopping SecantusDB pid %d, left running on %s by a process that is gone (pid %s)",
                advert.server,
                storage,
                advert.owner,
            )
            _terminate(advert.server, advert.server_started, stop_timeout)
            lock_wait = stop_timeout
        _advert_path(storage).unlink(missing_ok=True)
    if not _wait_unlocked(storage, lock_wait):
        holder = lock_holder(storage)
        who = f"pid {holder} ({_command_line(holder)})" if holder else "another process"
        raise StorageInUse(
            f"{storage} is locked by {who}: a SecantusDB server still runs on it; "
            "stop it, or give this one another STATE_DIR (or a MONGODB_URI)"
        )


@contextlib.asynccontextmanager
async def database_uri(settings: Settings) -> AsyncIterator[str]:
    """For the CLI tools: MONGODB_URI, a running `serve`'s embedded server, or their own."""
    if settings.mongodb_uri is not None:
        yield settings.mongodb_uri.get_secret_value()
        return
    storage = settings.state_dir / "mongo"
    shared = running_server(storage)
    if shared is not None:
        yield shared
        return
    embedded = EmbeddedMongo(storage)
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
    or call `start()` and `stop()`; `start()` again after the server died
    restarts it on the same port and storage.
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
        # `serve` advertises its server in the storage folder (see the module docstring).
        self.advertise = advertise and storage != ":memory:"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def uri(self) -> str:
        """The driver URI; SecantusDB reports a replica set, so connect directly."""
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return None if self.process is None else self.process.pid

    @property
    def log_path(self) -> Path:
        """Where the server's output goes."""
        if self.storage == ":memory:":
            return Path(os.environ.get("TMPDIR", "/tmp")) / f"secantusdb-{self.port}.log"
        return Path(self.storage) / "secantusdb.log"

    def advert(self, **fields: Any) -> Advert:
        """The advert of this server, owned by this process."""
        pid = self.pid
        return Advert(
            uri=self.uri,
            owner=os.getpid(),
            owner_started=process_started(os.getpid()),
            server=pid,
            server_started=None if pid is None else process_started(pid),
            **fields,
        )

    def start(self, timeout: float = 60.0, *, cancel: threading.Event | None = None) -> None:
        """Start the server and wait until it accepts connections (or `cancel` is set)."""
        try:
            import secantus  # noqa: F401  (only to give a clear error when missing)
        except ImportError:
            raise EmbeddedMongoError(
                "MONGODB_URI is unset and the embedded server is not installed: "
                "pip install 'tessera-gateway[embedded]' or set MONGODB_URI"
            ) from None
        if self.storage != ":memory:":
            Path(self.storage).mkdir(parents=True, exist_ok=True)
            claim_storage(Path(self.storage))
        self._close_log()  # a server that died leaves its log open
        self._log = self.log_path.open("ab")
        command = [
            sys.executable, "-m", "gateway.embedded_child", str(os.getpid()), "--",
            "--host", self.host,
            "--port", str(self.port),
            "--storage-path", str(self.storage),
            "--log-level", "WARNING",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Out of the gateway's process group: a Ctrl+C or a SIGTERM to the group must
            # not stop the database while the gateway still flushes into it.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (cancel is not None and cancel.is_set()):
            if self.process.poll() is not None:
                self.process = None
                self._close_log()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise EmbeddedMongoError(f"SecantusDB exited at start: {tail}")
            # Something answering MongoDB's ping while our process runs: another program
            # on the port (ours then exits, reported above) would pass a TCP check alone.
            if answers(self.uri, timeout=0.5) and _pings(self.uri) and self.process.poll() is None:
                logger.info("embedded SecantusDB listening on %s:%d", self.host, self.port)
                if self.advertise:
                    self.advert().write(Path(self.storage))
                return
            time.sleep(0.05)
        self.stop()
        if cancel is not None and cancel.is_set():
            raise EmbeddedMongoError("SecantusDB start cancelled")
        raise EmbeddedMongoError(f"SecantusDB did not listen on port {self.port} in {timeout}s")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server cleanly (SIGTERM), killing it if it hangs."""
        process, self.process = self.process, None
        if self.advertise and process is not None:
            _advert_path(Path(self.storage)).unlink(missing_ok=True)
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
