"""A population of benchmark visitors: varied histories, devices and countries.

Used by `bench/run.py --visitors N`, `bench/soak.py` and `bench/edge.py`.
Each visitor gets a kind (new, light, returning, outdoor fan, cart abandoner,
big first cart, VIP), a device (User-Agent) and a country (`CF-IPCountry`),
and a history of events matching its kind, with timestamps in the last day.
Histories reach the database one of two ways, both through the real code:

- `seed_api`: posted to `POST /v1/events` with a publishable key (validated,
  group-committed, applied to the profiles by the gateway's ingestion);
- `seed_direct`: parsed by `profiles.validation.parse_event` and folded into
  profile documents by `profiles.traits.apply_events` (what ingestion applies),
  then inserted into `profiles` in bulk: much faster for the soak's 20,000
  visitors, and no events are stored.

`requests_file` writes the lines `bench/rotate.lua` cycles through.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

#: Share of each kind, in percent, and the audiences of the demo it aims at.
KINDS: tuple[tuple[str, int], ...] = (
    ("new", 20),  # no profile at all
    ("light", 25),  # 1-2 page views: new_visitor
    ("returning", 25),  # 3+ page views: returning (the home hero is a personal template)
    ("outdoor", 10),  # outdoor_fan (+ returning)
    ("cart", 8),  # cart_abandoner: a cart untouched for 40+ minutes
    ("big_cart", 5),  # big_first_cart: a fresh cart of 150+, no order yet
    ("vip", 7),  # high_value: 3+ orders or 500+ lifetime value
)
USER_AGENTS: tuple[tuple[str, str, int], ...] = (
    (
        "desktop",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0 Safari/537.36",
        50,
    ),
    (
        "mobile",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148",
        40,
    ),
    (
        "tablet",
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)",
        10,
    ),
)
#: Countries (CF-IPCountry) and weights; DE, AT and CH are the demo's `dach` audience.
COUNTRIES: tuple[tuple[str, int], ...] = (
    ("US", 35), ("GB", 15), ("DE", 15), ("FR", 10), ("AT", 5), ("CH", 5), ("NL", 5), ("SE", 5),
    ("JP", 5),
)  # fmt: skip
CATEGORIES = ("camping", "climbing", "running", "cycling", "water")
PUBLISHABLE_KEY = "pk_bench_visitors"


@dataclass(frozen=True, slots=True)
class Visitor:
    """One benchmark visitor."""

    id: str
    kind: str
    device: str
    user_agent: str
    country: str

    def headers(self) -> dict[str, str]:
        """The headers this visitor's browser sends with every request."""
        return {"User-Agent": self.user_agent, "CF-IPCountry": self.country}


def _weighted(rng: random.Random, items: Sequence[tuple[str, int]]) -> str:
    return rng.choices([item for item, _ in items], weights=[w for _, w in items])[0]


def population(count: int, prefix: str = "bv", seed: int = 12) -> list[Visitor]:
    """`count` visitors with ids `<prefix>-<n>`, the same for the same arguments."""
    rng = random.Random(seed)
    visitors = []
    for number in range(count):
        device, user_agent, _ = rng.choices(
            USER_AGENTS, weights=[weight for *_, weight in USER_AGENTS]
        )[0]
        visitors.append(
            Visitor(
                id=f"{prefix}-{number}",
                kind=_weighted(rng, KINDS),
                device=device,
                user_agent=user_agent,
                country=_weighted(rng, COUNTRIES),
            )
        )
    return visitors


def _event(
    visitor: Visitor, kind: str, at: datetime, properties: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "type": kind,
        "eventId": uuid.uuid4().hex,
        "visitorId": visitor.id,
        "timestamp": at.isoformat(),
        "properties": properties or {},
        "context": {
            "page": f"/p/{(properties or {}).get('productId', 'home')}",
            "userAgent": visitor.user_agent,
            "country": visitor.country,
        },
    }


def history(visitor: Visitor, now: datetime, rng: random.Random) -> list[dict[str, Any]]:
    """The raw events (as the event API takes them) that make `visitor` what its kind says."""
    start = now - timedelta(hours=20)

    def moments(count: int, end: datetime) -> list[datetime]:
        span = (end - start).total_seconds()
        return sorted(start + timedelta(seconds=rng.uniform(0, span)) for _ in range(count))

    def views(count: int, end: datetime, category: str | None = None) -> list[dict[str, Any]]:
        events = []
        for at in moments(count, end):
            chosen = category or rng.choice(CATEGORIES)
            product = f"P{rng.randrange(200)}"
            events.append(
                _event(visitor, "page_view", at, {"category": chosen, "productId": product})
            )
        return events

    cart_line = {"productId": "TENT-2P", "quantity": 1, "category": "camping"}
    match visitor.kind:
        case "new":
            return []
        case "light":
            return views(rng.randint(1, 2), now)
        case "returning":
            events = views(rng.randint(3, 25), now)
            events += [
                _event(visitor, "click", at, {"category": rng.choice(CATEGORIES)})
                for at in moments(rng.randint(0, 5), now)
            ]
            return events
        case "outdoor":
            return views(rng.randint(3, 12), now, "outdoor") + views(rng.randint(0, 4), now)
        case "cart":
            idle_since = now - timedelta(minutes=rng.randint(40, 180))
            events = views(rng.randint(2, 6), idle_since)
            for at in moments(rng.randint(1, 3), idle_since):
                events.append(
                    _event(visitor, "add_to_cart", at, {**cart_line, "price": rng.uniform(20, 60)})
                )
            return events
        case "big_cart":
            recent = now - timedelta(minutes=rng.randint(1, 20))
            events = views(rng.randint(1, 2), recent - timedelta(minutes=1))
            events.append(_event(visitor, "add_to_cart", recent, {**cart_line, "price": 329.0}))
            return events
        case "vip":
            events = views(rng.randint(5, 40), now)
            for at in moments(rng.randint(3, 8), now):
                events.append(
                    _event(visitor, "purchase", at, {"revenue": round(rng.uniform(50, 400), 2)})
                )
            return events
    raise ValueError(f"unknown visitor kind {visitor.kind!r}")


def histories(visitors: Iterable[Visitor], seed: int = 7) -> list[dict[str, Any]]:
    """Every visitor's history, in one list (each visitor's events in time order)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    return [event for visitor in visitors for event in history(visitor, now, rng)]


def kinds(visitors: Iterable[Visitor]) -> dict[str, int]:
    """How many visitors of each kind."""
    return dict(Counter(visitor.kind for visitor in visitors))


def _post(url: str, key: str, batch: list[dict[str, Any]], attempts: int = 6) -> dict[str, Any]:
    """Post one batch; a 503 (a commit past its time bound) is retried after Retry-After."""
    request = urllib.request.Request(
        url,
        data=json.dumps(batch).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                answer: dict[str, Any] = json.loads(response.read())
            return answer
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or attempt == attempts - 1:
                raise RuntimeError(
                    f"seeding: {url} answered {exc.code}: {exc.read()[:300]!r}"
                ) from None
            time.sleep(float(exc.headers.get("Retry-After") or 1))
    raise AssertionError("unreachable")


def seed_api(
    base_url: str,
    visitors: Sequence[Visitor],
    key: str = PUBLISHABLE_KEY,
    batch_size: int = 250,
    concurrency: int = 2,
) -> int:
    """Post every visitor's history to `/v1/events`; returns the events accepted.

    Raises RuntimeError when an event is rejected or dropped: the population
    would not be what the benchmark says it is.
    """
    events = histories(visitors)
    batches = [events[i : i + batch_size] for i in range(0, len(events), batch_size)]
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(lambda b: _post(f"{base_url}/v1/events", key, b), batches))
    # A retried batch may have been committed the first time: its events are duplicates.
    accepted = sum(int(answer["accepted"]) + int(answer["duplicates"]) for answer in answers)
    problems = [a for a in answers if a["rejected"] or a["errors"] or a["dropped"]]
    if accepted != len(events) or problems:
        raise RuntimeError(
            f"seeding: {accepted} of {len(events)} events accepted; first problem: "
            f"{problems[0] if problems else 'none'}"
        )
    return accepted


def seed_direct(mongodb_uri: str, database: str, visitors: Sequence[Visitor]) -> int:
    """Fold every history into its profile with the ingestion code; bulk-insert them.

    Returns the number of profiles written (new visitors have none).
    """
    from pymongo import MongoClient
    from pymongo.collection import Collection

    from common.collections import PROFILES
    from profiles.traits import apply_events
    from profiles.validation import Event, parse_event

    now = datetime.now(UTC)
    by_visitor: dict[str, list[Event]] = {}
    for index, raw in enumerate(histories(visitors)):
        parsed = parse_event(raw, index, now=now, max_skew=timedelta(days=1))
        if not isinstance(parsed, Event):
            raise RuntimeError(f"seeding: event refused: {parsed}")
        by_visitor.setdefault(parsed.visitor_id, []).append(parsed)
    documents = []
    for visitor_id, events in by_visitor.items():
        profile = apply_events(
            None, visitor_id, events, now=now, half_life_days=30.0, commit=f"seed-{visitor_id}"
        )
        assert profile is not None
        documents.append(profile)
    client: MongoClient[dict[str, Any]]
    with MongoClient(mongodb_uri, tz_aware=True) as client:
        collection: Collection[dict[str, Any]] = client[database][PROFILES]
        for start in range(0, len(documents), 1000):
            collection.insert_many(documents[start : start + 1000], ordered=False)
    return len(documents)


def requests_file(path: Path, lines: Iterable[tuple[str, str, dict[str, str]]]) -> Path:
    """Write `(method, path, headers)` lines in the format `bench/rotate.lua` reads."""
    with path.open("w", encoding="utf-8") as handle:
        for method, target, headers in lines:
            fields = [method, target, *(f"{name}: {value}" for name, value in headers.items())]
            if any("\t" in field or "\n" in field for field in fields):
                raise ValueError(f"a request field holds a tab or newline: {fields!r}")
            handle.write("\t".join(fields) + "\n")
    return path


def page_requests(visitors: Sequence[Visitor]) -> list[tuple[str, str, dict[str, str]]]:
    """One `POST /graphql` per visitor, identified by `X-Visitor-Id` (as a renderer sends)."""
    return [("POST", "/graphql", {"X-Visitor-Id": v.id, **v.headers()}) for v in visitors]
