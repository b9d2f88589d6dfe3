"""`python -m gateway audiences import FILE`: load audience definitions in bulk.

The file format is the one of `gateway/demo/audiences.yaml` (see
docs/editors.md). Every definition is checked together first (conditions,
references, cycles); nothing is written when one is refused. With
`MONGODB_URI` unset it uses the embedded database of a running `serve`, or
opens the one in `STATE_DIR` itself.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from pymongo.errors import PyMongoError

from profiles.audiences import (
    AudienceError,
    AudienceFileError,
    AudienceRepository,
    parse_audience_file,
)


async def _import(args: argparse.Namespace) -> int:
    from gateway.database import open_database
    from gateway.embedded_mongo import EmbeddedMongoError
    from gateway.settings import Settings

    settings = Settings()
    path = Path(args.file)
    try:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        documents = parse_audience_file(text, str(path))
    except (AudienceFileError, OSError) as exc:
        print(f"audiences: {exc}", file=sys.stderr)
        return 2
    async with AsyncExitStack() as stack:
        try:
            database = await stack.enter_async_context(open_database(settings))
        except EmbeddedMongoError as exc:
            print(f"audiences: cannot open the embedded database: {exc}", file=sys.stderr)
            return 2
        repository = AudienceRepository(database)
        try:
            count = await repository.import_documents(documents, replace_all=args.replace)
        except AudienceError as exc:
            print(f"audiences: refused, nothing written: {exc}", file=sys.stderr)
            return 1
        except PyMongoError as exc:
            print(f"audiences: MongoDB unavailable: {exc}", file=sys.stderr)
            return 2
    print(f"imported {count} audience(s) from {path}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    """The `audiences import` command."""
    return asyncio.run(_import(args))


def add_audiences_command(commands: Any) -> None:
    """Register `audiences import` on the CLI's subcommands."""
    audiences = commands.add_parser("audiences", help="manage audience definitions")
    actions = audiences.add_subparsers(dest="action", required=True)
    load = actions.add_parser("import", help="load audiences in bulk from a YAML/JSON file")
    load.add_argument("file", help="the audience file")
    load.add_argument(
        "--replace", action="store_true", help="also delete audiences the file does not define"
    )
    load.set_defaults(handler=run_import)
