"""`python -m gateway experiments report KEY`: an experiment's results, for people or programs.

The definition is read from the CMS (`CMS`, `CONTENT_DIR`, or `--content-dir`),
exposures and events from the database (`MONGODB_URI`, else the embedded one
of a running `serve`, else the one under `STATE_DIR`). The text format prints
the table and writes the chart beside it (`--chart`, default
`experiment-KEY.html` in the current folder); `--format json` prints the
report as JSON (the chart only when `--chart` is given).

Exit status: 0 done, 1 no such experiment, 2 the database, the content or the
configuration is unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pymongo.errors import PyMongoError

from blocks.experiment_spec import KEY_PATTERN
from cms_adapters.errors import CMSError
from experiments.errors import ExperimentNotFound
from experiments.stats import alpha_problem

if TYPE_CHECKING:
    # SciPy and statsmodels: imported when a report runs, not by every CLI command.
    from experiments.analysis import Report


def _key(value: str) -> str:
    if not re.fullmatch(KEY_PATTERN, value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an experiment key (1-64 letters, digits, '_' or '-')"
        )
    return value


def _alpha(value: str) -> float:
    try:
        alpha = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    problem = alpha_problem(alpha)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return alpha


def _users(value: str) -> int:
    try:
        users = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if users < 2:
        raise argparse.ArgumentTypeError("planned users must be 2 or more")
    return users


async def _report(args: argparse.Namespace) -> Report | int:
    """The report, or the exit status when it cannot be made."""
    from experiments.data import experiment_report
    from gateway.app import build_adapter
    from gateway.database import open_database
    from gateway.embedded_mongo import EmbeddedMongoError
    from gateway.settings import Settings

    settings = Settings()
    if args.content_dir:
        settings = settings.model_copy(update={"content_dir": Path(args.content_dir)})
    try:
        async with open_database(settings) as database, build_adapter(settings) as adapter:
            report = await experiment_report(
                database,
                adapter,
                args.key,
                now=datetime.now(UTC),
                alpha=args.alpha,
                sequential=args.sequential,
                planned_users=args.planned_users,
            )
    except ExperimentNotFound as exc:
        print(f"experiments report: {exc}", file=sys.stderr)
        return 1
    except (EmbeddedMongoError, PyMongoError) as exc:
        print(f"experiments report: MongoDB unavailable: {exc}", file=sys.stderr)
        return 2
    except CMSError as exc:
        print(f"experiments report: cannot read the content: {exc}", file=sys.stderr)
        return 2
    return report


def _output(args: argparse.Namespace, report: Report) -> None:
    from experiments.report import as_json, as_text, chart_html

    chart: str | None = args.chart
    if chart is None and args.format == "text":
        chart = f"experiment-{args.key}.html"
    if chart is not None:
        Path(chart).write_text(chart_html(report), encoding="utf-8")
    if args.format == "json":
        print(json.dumps(as_json(report), indent=2, ensure_ascii=False))
    else:
        print(as_text(report, chart))


def run_report(args: argparse.Namespace) -> int:
    """The `experiments report` command."""
    # Parsing logs each bad condition as a warning; the linter reports those.
    logging.disable(logging.WARNING)
    try:
        result = asyncio.run(_report(args))
    finally:
        logging.disable(logging.NOTSET)
    if isinstance(result, int):
        return result
    _output(args, result)
    return 0


def add_experiments_command(commands: Any) -> None:
    """Register `experiments report` on the CLI's subcommands."""
    experiments = commands.add_parser("experiments", help="experiment results")
    sub = experiments.add_subparsers(dest="experiments_command", required=True)
    report = sub.add_parser("report", help="an experiment's results: table and chart, or JSON")
    report.add_argument("key", type=_key, help="the experiment key")
    report.add_argument("--format", choices=("text", "json"), default="text")
    report.add_argument(
        "--sequential",
        action="store_true",
        help="judge significance by always-valid p-values (safe to check as often as you like)",
    )
    report.add_argument("--alpha", type=_alpha, help="significance level (default: plan.alpha)")
    report.add_argument(
        "--planned-users", type=_users, help="planned sample size (default: plan.users)"
    )
    report.add_argument(
        "--chart",
        help="write the chart (self-contained HTML) here (text default: ./experiment-KEY.html)",
    )
    report.add_argument("--content-dir", help="content folder (default: $CONTENT_DIR)")
    report.set_defaults(handler=run_report)
