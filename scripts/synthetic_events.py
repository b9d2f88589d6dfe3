"""Write realistic synthetic shopping events (NDJSON, the `/v1/events` format) with latent tastes.

    python scripts/synthetic_events.py --visitors 3000 --days 60 --out events.ndjson
    python -m gateway recommendations evaluate --events events.ndjson
    python scripts/synthetic_events.py --visitors 3000 --shuffle --out shuffled.ndjson
    python -m gateway recommendations evaluate --events shuffled.ndjson

Shoppers browse the catalogue (the demo's, or `--content-dir`'s `catalog/`)
over `--days` days: each has a hidden taste over categories (most love one or
two), a hidden style preference, a device and a buying habit; products have a
hidden quality and complements bought with them. Sessions view products of a
favourite category, cart the ones they like (and their complements), and
sometimes buy the cart. So the events carry real signal: the hybrid model
should beat popularity clearly on them. `--shuffle` deals every event's
product out at random among all events, keeping each product's popularity and
destroying everything else: no model should beat popularity by more than noise.

Every event is valid for `POST /v1/events` (ids, ISO timestamps, a browser
User-Agent), so the file can also be sent to a gateway (which stamps events
older than `EVENT_MAX_SKEW_SECONDS` with the time it receives them); the
generator's world is documented in `scoring/recommendations/synthetic.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from cms_adapters.filesystem import FilesystemAdapter
from gateway.settings import DEMO_CONTENT_DIR
from scoring.recommendations.synthetic import generate_events, shuffle_products


def main(argv: list[str] | None = None) -> int:
    """Generate the events and write them; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=3000, help="shoppers (3000)")
    parser.add_argument("--days", type=float, default=60.0, help="days of history (60)")
    parser.add_argument("--seed", type=int, default=1, help="the dataset's seed (1)")
    parser.add_argument("--end", help="the last moment (ISO 8601; default now)")
    parser.add_argument(
        "--concentration",
        type=float,
        default=0.3,
        help="Dirichlet concentration of tastes over categories: small = focused (0.3)",
    )
    parser.add_argument("--shuffle", action="store_true", help="deal products out at random")
    parser.add_argument("--content-dir", help="content folder with catalog/ (default: the demo)")
    parser.add_argument("--out", help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    catalog = asyncio.run(FilesystemAdapter(args.content_dir or DEMO_CONTENT_DIR).fetch_catalog())
    end = datetime.fromisoformat(args.end.replace("Z", "+00:00")) if args.end else None
    if end is not None and end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    events = generate_events(
        catalog,
        visitors=args.visitors,
        days=args.days,
        seed=args.seed,
        end=end,
        concentration=args.concentration,
    )
    if args.shuffle:
        events = shuffle_products(events, seed=args.seed)
    lines = "".join(json.dumps(event, separators=(",", ":")) + "\n" for event in events)
    if args.out:
        Path(args.out).write_text(lines, encoding="utf-8")
        print(
            f"wrote {len(events)} events of {args.visitors} visitors to {args.out}", file=sys.stderr
        )
    else:
        sys.stdout.write(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
