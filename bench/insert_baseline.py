"""The physical floor of ingestion: concurrent raw `insert_many` of event documents.

Run by `bench/ingest.py` as a separate process (so the load generator does not
share the gateway's event loop): CLIENTS concurrent tasks each insert batches of
BATCH documents shaped exactly like the gateway's stored events, with the same
journaled write concern, into a collection with the same indexes, for DURATION
seconds. Prints `BASELINE_RESULT {...}` with documents/s and per-call latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pymongo import AsyncMongoClient, WriteConcern

from profiles.indexes import ensure_indexes


def documents(prefix: str, counter: int, size: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    visitor = f"bv-{prefix}-{counter % 500}"
    return [
        {
            "_id": f"{prefix}-{counter}-{i}",
            "type": "page_view",
            "visitorId": visitor,
            "timestamp": now,
            "receivedAt": now,
            "context": {"page": f"/p/{i % 13}", "device": "desktop"},
            "properties": {"category": f"c{i % 7}", "productId": f"P{i % 13}"},
            "commit": f"{prefix}-{counter}",
        }
        for i in range(1, size + 1)
    ]


async def main(uri: str, database: str, clients: int, batch: int, duration: float) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    db = client[database]
    await ensure_indexes(db, retention_days=90)
    events = db.get_collection("events", write_concern=WriteConcern(w=1, j=True))
    latencies: list[float] = []
    inserted = 0
    prefix = uuid.uuid4().hex[:8]
    deadline = time.perf_counter() + duration

    async def worker(n: int) -> None:
        nonlocal inserted
        counter = 0
        while time.perf_counter() < deadline:
            counter += 1
            docs = documents(f"{prefix}{n}", counter, batch)
            started = time.perf_counter()
            await events.insert_many(docs, ordered=False)
            latencies.append(time.perf_counter() - started)
            inserted += len(docs)

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    await client.close()
    latencies.sort()
    result = {
        "documents": inserted,
        "seconds": elapsed,
        "documents_per_s": inserted / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0,
    }
    print("BASELINE_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uri", required=True)
    parser.add_argument("--database", default="tessera_baseline")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(main(args.uri, args.database, args.clients, args.batch, args.duration))
