"""`python -m gateway train | models ... | scores propensity`: the data scientist's commands.

- `train [--days N | --since ISO] [--until ISO] [--activate] [--min-exposures N]`:
  attribute outcomes to the exposures of the window, train the variant model,
  print its report, register it (and activate it with `--activate`).
- `models list [--kind K]`, `models activate VERSION`, `models rollback [--kind K]`,
  `models drift [--hours N]`.
- `scores propensity [--activate]`: train the purchase-propensity model and
  write `scores.purchasePropensity` into every profile.

The database is `MONGODB_URI`, else the embedded one of a running `serve`
(or, with none running, the one under `STATE_DIR`). Models are signed with
`MODEL_SIGNING_KEY` (else a key kept in `STATE_DIR`, which only a single node
can share). Exit status: 0 done,
1 refused (not enough data, no such model, a signature that does not verify),
2 the database or the configuration is unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from gateway.cli_args import iso_instant
from scoring.errors import ModelNotFound, NotEnoughData, ScoringError, SignatureMismatch
from scoring.registry import (
    MODEL_KINDS,
    PROPENSITY_MODEL,
    RECOMMENDATIONS_MODEL,
    SEGMENTS_MODEL,
    VARIANT_MODEL,
    ModelRegistry,
    signing_key_from,
)

Database = AsyncDatabase[dict[str, Any]]

#: What the gateway does while no model of a kind is active.
_WITHOUT = {
    VARIANT_MODEL: "variants rank by priority",
    PROPENSITY_MODEL: "no purchase propensity is computed",
    RECOMMENDATIONS_MODEL: "recommendations blocks show trending products, by interest",
    SEGMENTS_MODEL: "profiles have no segment",
}


class _Unusable(Exception):
    """The database or configuration cannot be used (exit status 2)."""


@asynccontextmanager
async def _database() -> AsyncIterator[tuple[Database, ModelRegistry]]:
    from gateway.database import open_database
    from gateway.embedded_mongo import EmbeddedMongoError
    from gateway.settings import Settings

    settings = Settings()
    secret = settings.model_signing_key.get_secret_value()
    async with AsyncExitStack() as stack:
        try:
            database = await stack.enter_async_context(open_database(settings))
        except EmbeddedMongoError as exc:
            raise _Unusable(f"cannot open the embedded database: {exc}") from exc
        key = signing_key_from(secret, settings.state_dir)
        yield database, ModelRegistry(database, key)


def _run(prefix: str, command: Callable[[Database, ModelRegistry], Awaitable[int]]) -> int:
    async def main() -> int:
        async with _database() as (database, registry):
            return await command(database, registry)

    try:
        return asyncio.run(main())
    except SignatureMismatch as exc:
        print(f"{prefix}: refused: {exc}", file=sys.stderr)
        return 1
    except (NotEnoughData, ModelNotFound, ScoringError) as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return 1
    except _Unusable as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return 2
    except PyMongoError as exc:
        print(f"{prefix}: MongoDB unavailable: {exc}", file=sys.stderr)
        return 2


#: The same runner and refusal for the other model commands (segments, recommendations).
run_with_registry = _run
Unusable = _Unusable


def _train(args: argparse.Namespace) -> int:
    from scoring.attribution import attribute_outcomes
    from scoring.train import train_variant_model

    until: datetime = args.until or datetime.now(UTC)
    since: datetime = args.since or until - timedelta(days=args.days)

    async def command(database: Database, registry: ModelRegistry) -> int:
        window = timedelta(minutes=args.attribution_minutes)
        found = await attribute_outcomes(database, since=since, until=until, window=window)
        print(
            f"attributed {since:%Y-%m-%d %H:%M} → {until:%Y-%m-%d %H:%M} UTC: "
            f"{found.exposures} exposures, {found.clicked_exposures} clicked, "
            f"{found.converted_exposures} converted ({found.updated} updated)"
        )
        # Clicks on the newest exposures may still be on their way: leave those out.
        settle = timedelta(
            minutes=window.total_seconds() / 60
            if args.settle_minutes is None
            else args.settle_minutes
        )
        labelled = min(until, datetime.now(UTC) - settle)
        if labelled < until:
            print(
                f"training on exposures up to {labelled:%Y-%m-%d %H:%M:%S} UTC "
                f"(later ones may still be clicked; --settle-minutes)"
            )
        report = await train_variant_model(
            database,
            registry,
            since=since,
            until=labelled,
            activate=args.activate,
            min_exposures=args.min_exposures,
        )
        print(report.format())
        if not args.activate:
            print(f"activate it with: python -m gateway models activate {report.version}")
        return 0

    return _run("train", command)


def _list(args: argparse.Namespace) -> int:
    async def command(database: Database, registry: ModelRegistry) -> int:
        models = await registry.list(args.kind)
        if not models:
            print("no models registered")
        for info in models:
            metrics = info.metrics
            auc = metrics.get("auc")
            loss = metrics.get("logLoss")
            summary = " ".join(
                part
                for part in (
                    f"auc={auc:.4f}" if isinstance(auc, float) else "",
                    f"logloss={loss:.4f}" if isinstance(loss, float) else "",
                )
                if part
            )
            marker = "*" if info.active else " "
            print(
                f"{marker} {info.version:40} {info.kind:10} "
                f"{info.created_at:%Y-%m-%d %H:%M} {info.size:>8} B  {summary}"
            )
        return 0

    return _run("models list", command)


def _activate(args: argparse.Namespace) -> int:
    async def command(database: Database, registry: ModelRegistry) -> int:
        info = await registry.activate(args.version)
        print(f"activated {info.version} ({info.kind}); gateways pick it up on their next poll")
        if info.kind == SEGMENTS_MODEL:
            from gateway.segments_cli import apply_active

            counts = await apply_active(database, registry)
            print(f"{counts.get('written', 0)} profiles reassigned to its segments")
        return 0

    return _run("models activate", command)


def _rollback(args: argparse.Namespace) -> int:
    async def command(database: Database, registry: ModelRegistry) -> int:
        previous = await registry.rollback(args.kind)
        if args.kind == SEGMENTS_MODEL:
            from gateway.segments_cli import apply_active

            await apply_active(database, registry)
        if previous is None:
            print(f"rolled back: no {args.kind} model is active now ({_WITHOUT[args.kind]})")
        else:
            print(f"rolled back: {previous} is the active {args.kind} model")
        return 0

    return _run("models rollback", command)


def _drift(args: argparse.Namespace) -> int:
    from scoring.drift import drift_report

    async def command(database: Database, registry: ModelRegistry) -> int:
        since = datetime.now(UTC) - timedelta(hours=args.hours)
        report = await drift_report(database, registry, since=since)
        print(report.format())
        return 0

    return _run("models drift", command)


def _propensity(args: argparse.Namespace) -> int:
    from scoring.propensity import score_profiles, train_propensity_model

    async def command(database: Database, registry: ModelRegistry) -> int:
        estimator, report = await train_propensity_model(database, registry, activate=args.activate)
        report.scored, report.distribution = await score_profiles(database, estimator)
        print(report.format())
        return 0

    return _run("scores propensity", command)


def add_models_commands(commands: Any) -> None:
    """Register `train`, `models` and `scores` on the CLI's subcommands."""
    train = commands.add_parser("train", help="attribute outcomes and train the variant model")
    start = train.add_mutually_exclusive_group()
    start.add_argument("--days", type=float, default=7.0, help="window: the last N days (7)")
    start.add_argument("--since", type=iso_instant, help="window start (ISO 8601)")
    train.add_argument("--until", type=iso_instant, help="window end (ISO 8601; default now)")
    train.add_argument("--activate", action="store_true", help="serve the new model")
    train.add_argument(
        "--min-exposures", type=int, default=50, help="refuse to train on fewer (50)"
    )
    train.add_argument(
        "--settle-minutes",
        type=float,
        help="leave out exposures newer than this, whose clicks may not have arrived "
        "(default: the attribution window)",
    )
    train.add_argument(
        "--attribution-minutes", type=float, default=30.0, help="attribution window (30)"
    )
    train.set_defaults(handler=_train)

    models = commands.add_parser("models", help="list, activate, roll back models; drift")
    actions = models.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="registered versions, newest first (* = active)")
    listing.add_argument("--kind", choices=MODEL_KINDS)
    listing.set_defaults(handler=_list)
    activate = actions.add_parser("activate", help="serve VERSION (its signature is verified)")
    activate.add_argument("version")
    activate.set_defaults(handler=_activate)
    rollback = actions.add_parser("rollback", help="re-activate the previous version")
    rollback.add_argument("--kind", default=VARIANT_MODEL, choices=MODEL_KINDS)
    rollback.set_defaults(handler=_rollback)
    drift = actions.add_parser("drift", help="compare recent traffic with the training sample")
    drift.add_argument("--hours", type=float, default=24.0, help="recent = the last N hours")
    drift.set_defaults(handler=_drift)

    scores = commands.add_parser("scores", help="visitor-level model scores")
    kinds = scores.add_subparsers(dest="action", required=True)
    propensity = kinds.add_parser(
        "propensity", help="train the purchase-propensity model and score every profile"
    )
    propensity.add_argument("--activate", action="store_true", help="activate the new model")
    propensity.set_defaults(handler=_propensity)
