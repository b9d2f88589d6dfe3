"""Hostile events against the real database server: one client's bad event never fails another's.

Finding 3 (event timestamps) and finding 4 (a bad event in a shared group commit)
of issue 10.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from gateway.embedded_mongo import free_port
from profiles.events import EventType
from profiles.indexes import ensure_indexes
from profiles.ingest import Ingestor, IngestOutcome, IngestRejected
from profiles.validation import Event, parse_event
from tests.conftest import FIXED_NOW, Clock
from tests.graphql_helpers import INGEST, graphql

Mongo = AsyncMongoClient[dict[str, Any]]
JSON = {**INGEST, "content-type": "application/json"}


def event(visitor: str, **fields: Any) -> dict[str, Any]:
    return {"type": "page_view", "eventId": uuid.uuid4().hex, "visitorId": visitor, **fields}


# Raw JSON, as an attacker writes it: Python's json module reads NaN, Infinity,
# 1e999999 (inf), 2^70 and lone surrogates without complaint.
HOSTILE_EVENTS = [
    '{"type":"page_view","eventId":"%s","visitorId":"bad","timestamp":"0001-01-01T00:00:00+01:00"}',
    '{"type":"page_view","eventId":"%s","visitorId":"bad","timestamp":"9999-12-31T23:59:59-01:00"}',
    '{"type":"page_view","eventId":"%s","visitorId":"bad","timestamp":1e999999}',
    '{"type":"page_view","eventId":"%s","visitorId":"bad","timestamp":NaN}',
    '{"type":"page_view","eventId":"%s","visitorId":"bad","timestamp":' + str(2**70) + "}",
    '{"type":"page_view","eventId":"%s","visitorId":"bad","properties":{"n":' + str(2**70) + "}}",
    '{"type":"page_view","eventId":"%s","visitorId":"bad","properties":{"n":Infinity}}',
    '{"type":"page_view","eventId":"%s","visitorId":"bad","properties":{"note":"\\ud800"}}',
    '{"type":"page_view","eventId":"%s","visitorId":"bad","userId":"\\udfff"}',
    '{"type":"page_view","eventId":"%s","visitorId":"bad","properties":{"\\ud800":1}}',
    '{"type":"page_view","eventId":"%s","visitorId":"bad","\\ud800x":1}',
    '{"type":"purchase","eventId":"%s","visitorId":"bad","properties":{"revenue":1e999999}}',
    '{"type":"page_view","eventId":"%s","visitorId":"bad","properties":{"d":'
    + "[" * 200
    + "]" * 200
    + "}}",
]


def hostile(template: str) -> str:
    return template % uuid.uuid4().hex


async def test_hostile_events_are_named_and_the_others_in_the_batch_stored(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    good = event("mixed")
    body = "[" + ",".join([json.dumps(good), *(hostile(t) for t in HOSTILE_EVENTS)]) + "]"
    response = await client.post("/v1/events", content=body.encode(), headers=JSON)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["accepted"] == 1
    assert result["rejected"] == list(range(1, len(HOSTILE_EVENTS) + 1))
    problems = {(e["index"], e["field"]): e["message"] for e in result["errors"]}
    assert "outside the supported range" in problems[(1, "timestamp")]
    assert "outside the supported range" in problems[(2, "timestamp")]
    assert "epoch milliseconds out of range" in problems[(3, "timestamp")]
    assert "epoch milliseconds out of range" in problems[(4, "timestamp")]
    assert "epoch milliseconds out of range" in problems[(5, "timestamp")]
    assert "64-bit integer" in problems[(6, "properties.n")]
    assert "finite number" in problems[(7, "properties.n")]
    assert "surrogate" in problems[(8, "properties.note")]
    assert "surrogate" in problems[(9, "userId")]
    assert "property names" in problems[(10, "properties.\\ud800")]
    assert problems[(11, "\\ud800x")] == "unknown field"
    assert "below 1e9" in problems[(12, "properties.revenue")]
    assert "string, number" in problems[(13, "properties.d")]
    db = mongo[database_name]
    assert [d["_id"] async for d in db["events"].find({})] == [good["eventId"]]
    assert await db["pending_commits"].count_documents({}) == 0


async def test_a_batch_of_only_hostile_events_is_a_400(client: httpx.AsyncClient) -> None:
    for template in HOSTILE_EVENTS:
        body = hostile(template)
        response = await client.post("/v1/events", content=body.encode(), headers=JSON)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["rejected"] == [0]


async def test_hostile_clients_never_fail_two_hundred_valid_ones(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    async def valid(n: int) -> tuple[httpx.Response, list[str]]:
        events = [event(f"ok-{n}") for _ in range(5)]
        return await client.post("/v1/events", json=events, headers=INGEST), [
            e["eventId"] for e in events
        ]

    async def bad(template: str) -> httpx.Response:
        body = "[" + hostile(template) + "]"
        return await client.post("/v1/events", content=body.encode(), headers=JSON)

    requests: list[Any] = [valid(n) for n in range(200)]
    for k, template in enumerate(HOSTILE_EVENTS):
        requests.insert(k * 15 + 7, bad(template))
    results = await asyncio.gather(*requests)
    acknowledged: list[str] = []
    for result in results:
        if isinstance(result, tuple):
            response, ids = result
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] == 5
            acknowledged += ids
        else:
            assert result.status_code == 400, result.text
    assert len(acknowledged) == 1000
    db = mongo[database_name]
    stored = await db["events"].count_documents({"_id": {"$in": acknowledged}})
    assert stored == 1000
    assert await db["events"].count_documents({"visitorId": "bad"}) == 0
    assert await db["profiles"].count_documents({"_id": {"$regex": "^ok-"}}) == 200
    assert await db["pending_commits"].count_documents({}) == 0


# -- the Ingestor itself: events that never went through validation -------------------


def valid_events(clock: Clock, visitor: str, n: int = 5) -> list[Event]:
    out = []
    for i in range(n):
        raw = {"type": "purchase", "eventId": f"{visitor}-{i}", "visitorId": visitor,
               "properties": {"revenue": 10.0}}  # fmt: skip
        parsed = parse_event(raw, i, now=clock.now, max_skew=timedelta(days=1))
        assert isinstance(parsed, Event)
        out.append(parsed)
    return out


def poison(clock: Clock, kind: str) -> Event:
    """An event built without validation, holding what BSON cannot store."""
    values: dict[str, Any] = {
        "int": {"n": 2**70},
        "surrogate": {"note": "\ud800"},
        "nul-key": {"a\x00b": 1},
        "dollar-key": {"$where": "1"},
    }
    return Event(
        event_id=f"poison-{kind}-{uuid.uuid4().hex[:6]}",
        type=EventType.PAGE_VIEW,
        visitor_id="poisoned",
        timestamp=clock.now,
        received_at=clock.now,
        properties=values[kind],
    )


POISONS = ("int", "surrogate", "nul-key", "dollar-key")


@pytest.fixture
async def ingestor(mongo: Mongo, database_name: str, clock: Clock) -> AsyncIterator[Ingestor]:
    db = mongo[database_name]
    await ensure_indexes(db, retention_days=90)
    started = Ingestor(db, clock=clock, submit_timeout=60, max_wait_seconds=60)
    started.reconcile_every = 3600
    await started.start()
    yield started
    await started.aclose()


async def test_unstorable_events_are_refused_alone_before_the_commit(
    ingestor: Ingestor, mongo: Mongo, database_name: str, clock: Clock
) -> None:
    valid = [ingestor.submit(valid_events(clock, f"c{n}")) for n in range(200)]
    mixed = [
        ingestor.submit([*valid_events(clock, f"m-{k}", 2), poison(clock, k)]) for k in POISONS
    ]
    outcomes = await asyncio.gather(*valid, *mixed)
    assert all(o.accepted == 5 and not o.rejected for o in outcomes[:200])
    for kind, outcome in zip(POISONS, outcomes[200:], strict=True):
        assert outcome.accepted == 2
        assert [(r.event.properties, r.field) for r in outcome.rejected] == [
            (
                poison(clock, kind).properties,
                f"properties.{next(iter(poison(clock, kind).properties))}",
            )
        ]
    db = mongo[database_name]
    assert await db["events"].count_documents({}) == 200 * 5 + 2 * len(POISONS)
    assert await db["pending_commits"].count_documents({}) == 0


class Unchecked(Ingestor):
    """An ingestor whose storability check misses everything: the commit's own defences remain."""

    def storage_problems(self, event: Event) -> list[tuple[str, str]]:
        return []


def splits() -> float:
    return REGISTRY.get_sample_value("tessera_event_commit_splits_total") or 0.0


async def test_a_poisoned_shared_commit_is_split_so_only_the_offender_fails(
    mongo: Mongo, database_name: str, clock: Clock
) -> None:
    db = mongo[database_name]
    await ensure_indexes(db, retention_days=90)
    # Splitting takes a dozen journaled commits; on a loaded machine they outlast the
    # 2 s stall bound, which would answer 503 to requests this test is not about.
    ingestor = Unchecked(db, clock=clock, submit_timeout=60, max_wait_seconds=60)
    ingestor.reconcile_every = 3600
    await ingestor.start()
    before = splits()
    try:
        valid = [ingestor.submit(valid_events(clock, f"s{n}")) for n in range(200)]
        bad = [
            ingestor.submit([*valid_events(clock, f"p-{k}", 1), poison(clock, k)])
            for k in POISONS[:2]
        ]
        requests = valid[:50] + bad[:1] + valid[50:150] + bad[1:] + valid[150:]
        outcomes = await asyncio.gather(*requests, return_exceptions=True)
    finally:
        await ingestor.aclose()
    failed = [o for o in outcomes if not isinstance(o, IngestOutcome)]
    assert len(failed) == 2
    assert all(isinstance(f, IngestRejected) for f in failed), failed
    assert "cannot be stored" in str(failed[0])
    assert all(o.accepted == 5 for o in outcomes if isinstance(o, IngestOutcome))
    assert await db["events"].count_documents({"visitorId": {"$regex": "^s"}}) == 1000
    profile = await db["profiles"].find_one({"_id": "s199"})
    assert profile is not None
    assert profile["traits"]["orders"] == 5
    assert await db["events"].count_documents({"visitorId": {"$regex": "^p-"}}) == 0
    assert await db["pending_commits"].count_documents({}) == 0
    assert splits() > before


async def test_events_the_database_refuses_are_rejected_one_by_one(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    db = mongo[database_name]
    # An operator's validator on `events`: the server refuses single documents.
    await db.command(
        {"collMod": "events", "validator": {"properties.forbidden": {"$exists": False}}}
    )
    others = [client.post("/v1/events", json=[event(f"o{n}")], headers=INGEST) for n in range(50)]
    mine = client.post(
        "/v1/events",
        json=[event("me"), event("me", properties={"forbidden": 1}), event("me")],
        headers=INGEST,
    )
    responses = await asyncio.gather(*others[:25], mine, *others[25:])
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    result = responses[25].json()
    assert result["accepted"] == 2
    assert result["rejected"] == [1]
    assert result["errors"] == [
        {
            "index": 1,
            "field": "",
            "message": "the database refused this event: Document failed validation",
        }
    ]
    assert sum(r.json()["accepted"] for r in responses) == 52
    assert await db["events"].count_documents({}) == 52
    profile = await db["profiles"].find_one({"_id": "me"})
    assert profile is not None
    assert profile["counts"] == {"page_view": 2}
    assert await db["pending_commits"].count_documents({}) == 0


async def test_events_stored_by_a_failed_attempt_count_as_accepted_on_its_retry(
    ingestor: Ingestor, clock: Clock
) -> None:
    events = valid_events(clock, "retried", 2)
    first = [IngestOutcome()]
    await ingestor._insert(ingestor.events, [(0, events[0])], first, lambda e: e.document("c-1"))
    again = [IngestOutcome()]
    new = await ingestor._insert(
        ingestor.events, [(0, e) for e in events], again, lambda e: e.document("c-2"), ("c-1",)
    )
    assert (again[0].accepted, again[0].duplicates) == (2, 0)
    assert [e.event_id for _, e in new] == [events[1].event_id]
    # A genuine retry by the client (not one of this batch's attempts) is a duplicate.
    later = [IngestOutcome()]
    await ingestor._insert(
        ingestor.events, [(0, e) for e in events], later, lambda e: e.document("c-3")
    )
    assert (later[0].accepted, later[0].duplicates) == (0, 2)


# -- a shared write that fails for a reason no check foresaw: the server's fail point ------


@pytest.fixture
def failpoint_server(tmp_path: Path) -> Iterator[str]:
    """A SecantusDB server with test commands (configureFailPoint) enabled; yields its URI."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "secantus", "--port", str(port),
         "--storage-path", str(tmp_path / "db"), "--enable-test-commands", "--log-level", "ERROR"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the fail-point server did not start"
                assert process.poll() is None, "the fail-point server exited"
                time.sleep(0.05)
        yield f"mongodb://127.0.0.1:{port}/?directConnection=true"
    finally:
        process.terminate()
        process.wait(15)


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode",
    [
        pytest.param({"times": 1}, id="marker-insert-fails"),
        pytest.param({"skip": 1, "times": 1}, id="events-insert-fails"),
        pytest.param({"skip": 1, "times": 3}, id="fails-again-in-the-halves"),
    ],
)
async def test_a_shared_write_that_fails_is_split_and_retried(
    failpoint_server: str, mode: dict[str, int]
) -> None:
    clock = Clock(FIXED_NOW)
    client: Mongo = AsyncMongoClient(failpoint_server, tz_aware=True)
    try:
        db = client["tessera"]
        await ensure_indexes(db, retention_days=90)
        ingestor = Ingestor(db, clock=clock, submit_timeout=60, max_wait_seconds=60)  # as above
        ingestor.reconcile_every = 3600
        await ingestor.start()
        before = splits()
        await client.admin.command(
            {"configureFailPoint": "failCommand", "mode": mode,
             "data": {"failCommands": ["insert"], "errorCode": 8}}
        )  # fmt: skip
        try:
            outcomes = await asyncio.gather(
                *(ingestor.submit(valid_events(clock, f"f{n}")) for n in range(64))
            )
        finally:
            await ingestor.aclose()
        assert all(o.accepted == 5 for o in outcomes)
        assert await db["events"].count_documents({}) == 64 * 5
        assert await db["profiles"].count_documents({"traits.orders": 5}) == 64
        assert await db["pending_commits"].count_documents({}) == 0
        assert splits() > before
    finally:
        await client.close()


async def test_ingestion_counters_are_on_the_metrics_endpoint(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    for name in (
        "tessera_events_refused",
        "tessera_event_commit_splits",
        "tessera_event_apply_failures",
        "tessera_event_reconcile_failures",
    ):
        assert f"# TYPE {name}_total counter" in text or f"# TYPE {name} counter" in text, name


TRACK_BATCH = """
mutation($events: [EventInput!]!) {
  trackBatch(events: $events) { accepted rejected errors { index field message } }
}
"""


async def test_graphql_track_batch_reports_events_the_database_refuses(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    db = mongo[database_name]
    await db.command(
        {"collMod": "events", "validator": {"properties.forbidden": {"$exists": False}}}
    )
    events = [
        {"type": "PAGE_VIEW", "visitorId": "gq", "price": -1},
        {"type": "PAGE_VIEW", "visitorId": "gq", "properties": {"forbidden": 1}},
        {"type": "PAGE_VIEW", "visitorId": "gq"},
    ]
    response = await graphql(client, TRACK_BATCH, {"events": events}, headers=INGEST)
    result = response.json()["data"]["trackBatch"]
    assert result["accepted"] == 1
    assert result["rejected"] == [0, 1]
    assert [(e["index"], e["field"]) for e in result["errors"]] == [(0, "price"), (1, "")]
    assert "the database refused this event" in result["errors"][1]["message"]


async def test_graphql_track_batch_names_hostile_events(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    events = [
        {"type": "PAGE_VIEW", "visitorId": "gq2", "timestamp": "0001-01-01T00:00:00+01:00"},
        {"type": "PAGE_VIEW", "visitorId": "gq2", "properties": {"n": 2**70}},
        {"type": "PAGE_VIEW", "visitorId": "gq2", "properties": {"deep": {"a": {"b": [1]}}}},
        {"type": "PAGE_VIEW", "visitorId": "gq2"},
    ]
    body = json.dumps({"query": TRACK_BATCH, "variables": {"events": events}})
    response = await client.post("/graphql", content=body, headers=JSON)
    assert response.status_code == 200, response.text
    result = response.json()["data"]["trackBatch"]
    assert result["accepted"] == 1
    assert [(e["index"], e["field"]) for e in result["errors"]] == [
        (0, "timestamp"), (1, "properties.n"), (2, "properties.deep"),
    ]  # fmt: skip
    assert await mongo[database_name]["events"].count_documents({"visitorId": "gq2"}) == 1
    # A lone surrogate anywhere in a GraphQL request is refused before execution (400,
    # naming it): /graphql bodies are strict JSON, unlike /v1/events batches.
    events.insert(2, {"type": "PAGE_VIEW", "visitorId": "gq3", "userId": "\ud800"})
    body = json.dumps({"query": TRACK_BATCH, "variables": {"events": events}})
    refused = await client.post("/graphql", content=body, headers=JSON)
    assert refused.status_code == 400
    assert "lone UTF-16 surrogate" in refused.json()["errors"][0]["message"]
    assert await mongo[database_name]["events"].count_documents({"visitorId": "gq3"}) == 0
