"""Command line: `python -m gateway serve | export-schema | lint | audiences | ...`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

SCHEMA_FILE = Path("schema.graphql")


def schema_sdl() -> str:
    """The schema in SDL, as committed in `schema.graphql`."""
    from resolvers.schema import schema

    return schema.as_str() + "\n"


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
    from gateway.serve import add_serve_command

    add_serve_command(commands)
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
    try:
        result: int = args.handler(args)
    except ValidationError as exc:
        print(settings_problems(f"python -m gateway {args.command}", exc), file=sys.stderr)
        return 2
    return result


#: Settings whose values are never echoed in an error (they may hold credentials).
_SECRET_WORDS = ("key", "secret", "token", "uri", "url", "password")


def settings_problems(command: str, error: ValidationError) -> str:
    """One line per invalid environment variable: its name, what is wrong, what was given."""
    lines = [f"{command}: invalid settings:"]
    for problem in error.errors():
        name = "_".join(str(part) for part in problem["loc"]).upper() or "(settings)"
        given = ""
        if not any(word in name.lower() for word in _SECRET_WORDS) and "input" in problem:
            given = f" (got {problem['input']!r})"
        lines.append(f"  {name}: {problem['msg']}{given}")
    return "\n".join(lines)
