"""Command line: `python -m gateway serve | export-schema | lint | audiences | ...`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

SCHEMA_FILE = Path("schema.graphql")


def schema_sdl() -> str:
    """The schema in SDL, as committed in `schema.graphql`."""
    from resolvers.schema import schema

    return schema.as_str() + "\n"


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.logs import configure_logging
    from gateway.settings import Settings
    from gateway.tracing import TracingUnavailable

    settings = Settings()
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    configure_logging(settings.log_level, settings.log_format)
    try:
        app = create_app(settings)
    except TracingUnavailable as exc:
        print(f"python -m gateway serve: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=host,
        port=port,
        # LOG_FORMAT applies to uvicorn's records too: its own handlers are not installed.
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=args.access_log,
        lifespan="on",
        # The rate limiter reads forwarding headers itself, from TRUSTED_PROXIES only;
        # uvicorn's own rewrite (trusting 127.0.0.1) would hand it a client-chosen address.
        proxy_headers=False,
    )
    return 0


def _export_schema(args: argparse.Namespace) -> int:
    sdl = schema_sdl()
    target = Path(args.output)
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != sdl:
            print(
                f"{target} is out of date: run `python -m gateway export-schema`",
                file=sys.stderr,
            )
            return 1
        print(f"{target} is up to date")
        return 0
    target.write_text(sdl, encoding="utf-8")
    print(f"wrote {target}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the gateway (GraphQL at /graphql)")
    serve.add_argument("--host", help="interface to bind (default: $HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: $PORT or 8000)")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(handler=_serve)
    export = commands.add_parser("export-schema", help="write the GraphQL SDL")
    export.add_argument("--output", default=str(SCHEMA_FILE), help="file to write")
    export.add_argument("--check", action="store_true", help="fail if the file differs")
    export.set_defaults(handler=_export_schema)
    from gateway.audiences_cli import add_audiences_command
    from gateway.lint import add_lint_command

    add_lint_command(commands)
    add_audiences_command(commands)
    from gateway.models_cli import add_models_commands

    add_models_commands(commands)
    from gateway.experiments_cli import add_experiments_command

    add_experiments_command(commands)
    from gateway.recommendations_cli import add_recommendations_command
    from gateway.segments_cli import add_segments_command

    add_segments_command(commands)
    add_recommendations_command(commands)
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result
