"""Supervise the embedded database: restart it with backoff when it dies, and say how it is.

`python -m gateway serve` without `MONGODB_URI` owns one SecantusDB server
(for all its workers). A watch thread waits on the server process; when it
exits while the gateway runs, it is started again on the same port and
storage (so the driver reconnects by itself) after 0.5 s, then 1 s, 2 s...
up to 30 s between attempts, for as long as the gateway runs. Each death and
each restart is logged once. After `failed_after` attempts in a row fail,
the state is `failed` (and `/healthz` answers 503) while the attempts go on.

A server that hangs is as good as dead, but never exits: a second thread
pings it (every 5 s, or a quarter of the bound if that is shorter), and once
it has answered nothing for `hang_after` seconds (60 by default,
`EMBEDDED_DB_HANG_SECONDS`; 0 turns this off) it is killed, so the watch
thread restarts it. A ping may take the whole bound: a busy server that
answers slowly is not hung (SecantusDB pauses for seconds while its storage
grows or compacts), so the bound is long.

The state is written into the advert (`<storage>/server.uri`) too, where
`serve --workers N`'s workers read it (`AdvertStatus`).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from common.service import Service
from gateway.embedded_mongo import Advert, EmbeddedMongo, EmbeddedMongoError

logger = logging.getLogger(__name__)

State = Literal["starting", "running", "restarting", "failed", "stopped", "unknown"]
#: States in which the gateway is healthy: the server runs, or is being brought back.
HEALTHY: frozenset[str] = frozenset({"starting", "running", "restarting"})
_ADVERTISED: dict[str, State] = {
    "starting": "starting", "running": "running", "restarting": "restarting", "failed": "failed",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class EmbeddedStatus:
    """The embedded server's supervision state, as `/healthz` reports it."""

    state: State
    restarts: int = 0

    @property
    def healthy(self) -> bool:
        """Whether the server runs or is being restarted within bounds."""
        return self.state in HEALTHY

    def as_json(self) -> dict[str, Any]:
        """The JSON `/healthz` shows."""
        return {"state": self.state, "restarts": self.restarts}


class EmbeddedHealth(Protocol):
    """Anything that can tell the embedded server's supervision state."""

    def status(self) -> EmbeddedStatus:
        """The current state."""
        ...


class EmbeddedSupervisor(Service):
    """The embedded server of this process, restarted with backoff when it dies."""

    def __init__(
        self,
        storage: Path,
        *,
        restart_initial: float = 0.5,
        restart_max: float = 30.0,
        failed_after: int = 5,
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        hang_after: float = 60.0,
        ping_interval: float | None = None,
    ) -> None:
        self.server = EmbeddedMongo(storage, advertise=True)
        self.storage = storage
        self.restart_initial = restart_initial
        self.restart_max = restart_max
        self.failed_after = failed_after
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.hang_after = hang_after
        #: Every 5 s, or more often for a short bound (a quarter of it).
        self.ping_interval = (
            ping_interval if ping_interval is not None else min(5.0, hang_after / 4)
        )
        self.restarts = 0
        #: Servers killed because they answered nothing for `hang_after` seconds.
        self.hangs = 0
        self._state: State = "stopped"
        self._stopping = threading.Event()
        # Held while the server is started or stopped: the watch thread and close() take turns.
        self._lock = threading.Lock()
        self._watch: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None

    @property
    def uri(self) -> str:
        """The driver URI (the same across restarts)."""
        return self.server.uri

    def status(self) -> EmbeddedStatus:
        """The current supervision state."""
        return EmbeddedStatus(self._state, self.restarts)

    def open(self) -> None:
        """Start the server (see `claim_storage` for a storage already in use) and watch it."""
        self._stopping.clear()
        self._state = "starting"
        try:
            with self._lock:
                self.server.start(self.start_timeout, cancel=self._stopping)
        except BaseException:
            self._state = "stopped"
            raise
        self._set_state("running")
        self._watch = threading.Thread(
            target=self._supervise, name="embedded-db-supervisor", daemon=True
        )
        self._watch.start()
        if self.hang_after > 0:
            self._watchdog = threading.Thread(
                target=self._watch_hangs, name="embedded-db-watchdog", daemon=True
            )
            self._watchdog.start()

    def close(self) -> None:
        """Stop watching, then stop the server (SIGTERM; SIGKILL after `stop_timeout`)."""
        self._stopping.set()
        with self._lock:
            self.server.stop(self.stop_timeout)
        self._state = "stopped"
        for thread in (self._watch, self._watchdog):
            if thread is not None:
                thread.join(self.stop_timeout)
        self._watch = self._watchdog = None

    async def start(self) -> None:
        """`open()`, off the event loop."""
        await asyncio.to_thread(self.open)

    async def aclose(self) -> None:
        """`close()`, off the event loop."""
        await asyncio.to_thread(self.close)

    def _set_state(self, state: State) -> None:
        self._state = state
        if not self._stopping.is_set():  # stopping removes the advert: never write it back
            try:
                self.server.advert(state=state, restarts=self.restarts).write(self.storage)
            except OSError as exc:
                logger.warning("could not write %s: %s", self.storage / "server.uri", exc)

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            process = self.server.process
            if process is None:
                return
            status = process.wait()
            if self._stopping.is_set():
                return
            died = time.monotonic()
            self.restarts += 1
            self._set_state("restarting")
            logger.error(
                "embedded SecantusDB (pid %d) exited with status %s; restarting it on the same "
                "port and storage (restart %d)",
                process.pid,
                status,
                self.restarts,
            )
            if not self._restart(died):
                return

    def _watch_hangs(self) -> None:
        """Kill the server once it has answered no ping for `hang_after` seconds."""
        # A ping may take the whole bound: a slow answer is still an answer.
        bound_ms = int(max(self.hang_after, 0.1) * 1000)
        client: MongoClient[dict[str, Any]]
        with MongoClient(
            self.uri,
            directConnection=True,
            appname="tessera-watchdog",
            connectTimeoutMS=bound_ms,
            socketTimeoutMS=bound_ms,
            serverSelectionTimeoutMS=bound_ms,
        ) as client:
            watched, answered = None, time.monotonic()
            while not self._stopping.wait(self.ping_interval):
                process = self.server.process
                if process is None or self._state != "running" or process.pid != watched:
                    # Starting, restarting or a new server: its silence counts from now.
                    watched = process.pid if process is not None else None
                    answered = time.monotonic()
                    continue
                try:
                    client.admin.command("ping")
                except PyMongoError:
                    silent = time.monotonic() - answered
                    if silent >= self.hang_after and not self._stopping.is_set():
                        self._kill_hung(process, silent)
                        answered = time.monotonic()
                else:
                    answered = time.monotonic()

    def _kill_hung(self, process: subprocess.Popen[bytes], silent: float) -> None:
        with self._lock:  # not while close() stops it or a restart starts it
            if self._stopping.is_set() or process is not self.server.process:
                return
            if process.poll() is not None:
                return  # it died meanwhile: the watch thread restarts it
            self.hangs += 1
            logger.error(
                "embedded SecantusDB (pid %d) answered nothing for %.0f s; killing it so it is "
                "restarted",
                process.pid,
                silent,
            )
            process.kill()

    def _restart(self, died: float) -> bool:
        """Start the server again, backing off; False once the supervisor is stopping."""
        delay = self.restart_initial
        failures = 0
        while not self._stopping.wait(delay):
            try:
                with self._lock:
                    if self._stopping.is_set():
                        return False
                    self.server.start(self.start_timeout, cancel=self._stopping)
            except EmbeddedMongoError as exc:
                if self._stopping.is_set():
                    return False
                failures += 1
                if failures == 1:
                    logger.warning("embedded SecantusDB did not restart, retrying: %s", exc)
                if failures == self.failed_after:
                    self._set_state("failed")
                    logger.error(
                        "embedded SecantusDB failed to restart %d times in a row; still "
                        "retrying every %g s at most (/healthz answers 503 meanwhile)",
                        failures,
                        self.restart_max,
                    )
                delay = min(delay * 2, self.restart_max)
                continue
            self._set_state("running")
            logger.warning(
                "embedded SecantusDB restarted (pid %s), %.1f s after it died",
                self.server.pid,
                time.monotonic() - died,
            )
            return True
        return False


class AdvertStatus:
    """The state a `serve` parent writes in its advert, for its workers' `/healthz`."""

    def __init__(self, storage: Path, *, ttl: float = 1.0) -> None:
        self.storage = storage
        self.ttl = ttl
        self._read_at = -ttl
        self._status = EmbeddedStatus("unknown")

    def status(self) -> EmbeddedStatus:
        """The advertised state, read at most once per `ttl` seconds."""
        now = time.monotonic()
        if now - self._read_at >= self.ttl:
            self._read_at = now
            advert = Advert.read(self.storage)
            if advert is None:
                self._status = EmbeddedStatus("stopped")
            elif not advert.owner_alive:
                self._status = EmbeddedStatus("stopped", advert.restarts)
            else:
                state = _ADVERTISED.get(advert.state, "unknown")
                self._status = EmbeddedStatus(state, advert.restarts)
        return self._status
