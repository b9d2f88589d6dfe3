"""`python -m gateway serve [--workers N]`: the gateway, and the embedded database it owns.

Without `MONGODB_URI`, `serve` starts one embedded SecantusDB server (for
all its workers) before uvicorn, supervises it (restarted with backoff if it
dies: `gateway.embedded_supervisor`) and stops it after uvicorn has
returned, that is after every worker's lifespan has flushed its queued
events and exposures. The server runs in a session of its own, so a Ctrl+C
or a SIGTERM to the process group does not stop it first, and it stops by
itself if `serve` dies, even by SIGKILL (`gateway.embedded_child`).

`--workers N` runs N uvicorn worker processes on one socket. They get
`MONGODB_URI` (the embedded server's, unless one was configured) and the
embedded storage's path in their environment; each configures logging,
reports the parent's supervision state on `/healthz`, and stops itself if
the parent dies.

Stopping is bounded by `SHUTDOWN_TIMEOUT`: requests in flight get a quarter
of it, then the services share the rest to flush; the embedded server then
gets up to 10 s to stop cleanly before it is killed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from cms_adapters.cache_backend import is_redis
from common.gc_tuning import tune_gc
from gateway.embedded_mongo import EmbeddedMongoError
from gateway.embedded_supervisor import AdvertStatus, EmbeddedSupervisor
from gateway.lifeline import follow_parent
from gateway.logs import configure_logging
from gateway.settings import Settings
from gateway.tracing import TracingUnavailable, require_tracing

if TYPE_CHECKING:
    from starlette.applications import Starlette

logger = logging.getLogger(__name__)

#: Exported to `--workers` workers: the storage of the embedded server the parent supervises.
EMBEDDED_STORAGE_ENV = "TESSERA_EMBEDDED_STORAGE"
#: Exported to `--workers` workers: the pid of `serve`, which each worker follows.
SERVE_PID_ENV = "TESSERA_SERVE_PID"
#: The workers' app factory, for uvicorn.
WORKER_APP = "gateway.serve:worker_app"


def add_serve_command(commands: Any) -> None:
    """Register `serve` on the CLI's subcommands."""
    serve = commands.add_parser("serve", help="serve the gateway (GraphQL at /graphql)")
    serve.add_argument("--host", help="interface to bind (default: $HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: $PORT or 8000)")
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="worker processes sharing the port (default 1)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(handler=serve_command)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive number of workers: {text!r}")
    return value


@contextlib.contextmanager
def signals_held() -> Iterator[list[int]]:
    """SIGINT and SIGTERM recorded instead of acted on (uvicorn hands them back when done)."""
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve_command(args: argparse.Namespace) -> int:
    """Run the gateway until SIGINT or SIGTERM; the embedded database stops last."""
    import uvicorn

    settings = Settings()
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    configure_logging(settings.log_level, settings.log_format)
    try:
        # What would stop every worker at start-up stops the parent now, with the reason.
        require_tracing(settings)
    except TracingUnavailable as exc:
        print(f"python -m gateway serve: {exc}", file=sys.stderr)
        return 2
    if args.workers > 1 and not is_redis(settings.cache_url):
        # Webhooks reach every worker through MongoDB; the rest is shared only in Redis.
        logger.warning(
            "%d workers without a Redis CACHE_URL: each keeps its own content cache (and "
            "fetches pages from the CMS itself), persisted queries and rate limits (each "
            "allows the whole rate); set CACHE_URL=redis://... to share them",
            args.workers,
        )
    supervisor = None
    if settings.mongodb_uri is None:
        supervisor = EmbeddedSupervisor(
            settings.state_dir / "mongo", hang_after=settings.embedded_db_hang_seconds
        )
        settings = settings.model_copy(update={"mongodb_uri": SecretStr(supervisor.uri)})
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        # LOG_FORMAT applies to uvicorn's records too: its own handlers are not installed.
        "log_config": None,
        "log_level": settings.log_level.lower(),
        "access_log": args.access_log,
        "lifespan": "on",
        # The rate limiter reads forwarding headers itself, from TRUSTED_PROXIES only;
        # uvicorn's own rewrite (trusting 127.0.0.1) would hand it a client-chosen address.
        "proxy_headers": False,
        # In-flight requests get this long at shutdown; the lifespan's flush comes after.
        "timeout_graceful_shutdown": settings.drain_seconds,
        "workers": args.workers,
    }
    received: list[int] = []
    try:
        if supervisor is not None:
            supervisor.open()
        with signals_held() as received:
            if args.workers > 1:
                assert settings.mongodb_uri is not None
                os.environ["MONGODB_URI"] = settings.mongodb_uri.get_secret_value()
                os.environ[SERVE_PID_ENV] = str(os.getpid())
                if supervisor is not None:
                    os.environ[EMBEDDED_STORAGE_ENV] = str(supervisor.storage)
                uvicorn.run(WORKER_APP, factory=True, **options)
            else:
                from gateway.app import create_app

                app = create_app(settings, embedded=supervisor)
                tune_gc()
                uvicorn.run(app, **options)
            if supervisor is not None:
                # Last: every worker has flushed into it and exited.
                supervisor.close()
                logger.info("embedded SecantusDB stopped")
    except EmbeddedMongoError as exc:
        print(f"python -m gateway serve: {exc}", file=sys.stderr)
        return 1
    finally:
        if supervisor is not None:
            supervisor.close()  # a failed start-up, or an interrupted one
    for signum in received[:1]:
        # Exit as the signal asked, with its conventional status.
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
    return 0


def _stop_this_worker() -> None:
    logger.error("the serve process is gone; stopping this worker")
    os.kill(os.getpid(), signal.SIGTERM)


def worker_app() -> Starlette:
    """The app of one `serve --workers N` worker (uvicorn's factory, run in the worker)."""
    from gateway.app import create_app

    settings = Settings()
    # Workers are fresh interpreters (spawned): nothing of the parent's logging set-up.
    # uvicorn has already silenced its access log unless `--access-log`: keep that choice.
    access = logging.getLogger("uvicorn.access")
    access_log = access.propagate
    configure_logging(settings.log_level, settings.log_format)
    access.propagate = access_log
    # A worker of a parent killed outright must not serve on, without its database
    # (even one that was still starting when the parent died).
    follow_parent(int(os.environ.get(SERVE_PID_ENV) or os.getppid()), _stop_this_worker)
    storage = os.environ.get(EMBEDDED_STORAGE_ENV)
    app = create_app(settings, embedded=AdvertStatus(Path(storage)) if storage else None)
    tune_gc()
    return app
