"""The report end to end: traffic through the gateway, then GraphQL and the CLI."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from delivery.services import Services
from gateway.cli import main
from gateway.settings import DEMO_CONTENT_DIR, Settings
from tests.conftest import Clock
from tests.graphql_helpers import ADMIN, INGEST, graphql

KEY = "sale-hero-headline"
PAGE = '{ page(slug: "sale") { blocks { id blockId decision { experiment variation reason } } } }'
REPORT = """query($key: String!, $sequential: Boolean) {
  experimentReport(key: $key, sequential: $sequential) {
    key name status source users
    variations { key users expectedShare }
    srm { chi2 p flagged }
    exposures { dailyExposures beaconOnly multipleVariations }
    metrics { metric kind primary rows { key users total rate lift liftLow liftHigh pValue test
      chanceToBeatControl significant sequential { pValue low high } } }
    power { metric plannedUsers mde usersNeeded }
    warnings chartHtml } }"""


async def _traffic(client: httpx.AsyncClient, app: Starlette, clock: Clock) -> dict[int, list[str]]:
    """Thirty visitors see the sale page; the first two of each arm buy; an edge beacon."""
    arms: dict[int, list[str]] = {0: [], 1: []}
    for i in range(30):
        visitor = f"report-{i}"
        body = (await graphql(client, PAGE, visitor=visitor)).json()
        hero = next(b for b in body["data"]["page"]["blocks"] if b["blockId"] == "sale-hero")
        assert hero["decision"]["reason"] == "experiment"
        arms[hero["decision"]["variation"]].append(visitor)
    clock.now += timedelta(minutes=5)
    events: list[dict[str, Any]] = []
    for variation, visitors in arms.items():
        for visitor in visitors[:2]:
            events.append(
                {
                    "type": "purchase",
                    "eventId": uuid.uuid4().hex,
                    "visitorId": visitor,
                    "properties": {"revenue": 100.0 * (variation + 1)},
                }
            )
        events.append(
            {
                "type": "click",
                "eventId": uuid.uuid4().hex,
                "visitorId": visitors[-1],
                "blockId": "sale-hero",
                "variantId": ("default", "deadline")[variation],
            }
        )
    # A page an edge cache served: only the client's beacon tells of the exposure.
    events.append(
        {
            "type": "block_view",
            "eventId": uuid.uuid4().hex,
            "visitorId": "report-edge",
            "blockId": "sale-hero",
            "variantId": "deadline",
            "properties": {"experiment": KEY, "variation": 1},
        }
    )
    response = await client.post("/v1/events", json=events, headers=INGEST)
    assert response.json()["accepted"] == len(events), response.json()
    services: Services = app.state.services
    assert services.exposures is not None
    await services.exposures.flush()
    return arms


async def test_the_admin_report_counts_what_the_gateway_served(
    client: httpx.AsyncClient, app: Starlette, clock: Clock
) -> None:
    arms = await _traffic(client, app, clock)
    body = (await graphql(client, REPORT, {"key": KEY, "sequential": True}, headers=ADMIN)).json()
    assert "errors" not in body, body
    report = body["data"]["experimentReport"]
    assert (report["key"], report["status"], report["source"]) == (KEY, "running", "content")
    assert report["users"] == 31
    assert [(v["key"], v["users"]) for v in report["variations"]] == [
        ("default", len(arms[0])),
        ("deadline", len(arms[1]) + 1),
    ]
    assert report["exposures"] == {"dailyExposures": 31, "beaconOnly": 1, "multipleVariations": 0}
    conversion, click, revenue = report["metrics"]
    assert (conversion["metric"], conversion["primary"], conversion["kind"]) == (
        "conversion",
        True,
        "proportion",
    )
    assert [row["total"] for row in conversion["rows"]] == [2, 2]
    assert conversion["rows"][1]["test"] == "z"
    assert conversion["rows"][1]["pValue"] is not None
    assert conversion["rows"][1]["sequential"]["pValue"] is not None
    assert [row["total"] for row in click["rows"]] == [1, 1]
    assert [row["total"] for row in revenue["rows"]] == [200.0, 400.0]
    assert revenue["rows"][1]["test"] == "welch"
    assert report["power"]["plannedUsers"] == 4000
    assert report["srm"]["flagged"] is False
    assert report["chartHtml"].startswith("<!doctype html>")


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        pytest.param({}, "UNAUTHENTICATED", id="anonymous"),
        pytest.param(INGEST, "FORBIDDEN", id="pk"),
    ],
)
async def test_the_report_needs_an_admin_key(
    client: httpx.AsyncClient, headers: dict[str, str], code: str
) -> None:
    body = (await graphql(client, REPORT, {"key": KEY}, headers=headers)).json()
    assert body["errors"][0]["extensions"]["code"] == code


@pytest.mark.parametrize(
    ("key", "code", "message"),
    [
        pytest.param("nope", "EXPERIMENT_NOT_FOUND", "no experiment 'nope'", id="unknown"),
        pytest.param("no spaces", "BAD_USER_INPUT", "is not an experiment key", id="bad-key"),
        pytest.param("x" * 5000, "BAD_USER_INPUT", "is not an experiment key", id="huge-key"),
    ],
)
async def test_bad_keys_are_refused_precisely(
    client: httpx.AsyncClient, key: str, code: str, message: str
) -> None:
    body = (await graphql(client, REPORT, {"key": key}, headers=ADMIN)).json()
    (error,) = body["errors"]
    assert error["extensions"]["code"] == code
    assert message in error["message"]
    assert len(error["message"]) < 300


@pytest.mark.parametrize("alpha", [1e-320, 0.0, 0.5, -1.0], ids=["denormal", "0", "0.5", "neg"])
async def test_an_unusable_alpha_is_refused_precisely(
    client: httpx.AsyncClient, alpha: float
) -> None:
    query = "query($key: String!, $a: Float) { experimentReport(key: $key, alpha: $a) { key } }"
    body = (await graphql(client, query, {"key": KEY, "a": alpha}, headers=ADMIN)).json()
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == "alpha: must be at least 1e-06 and below 0.5."


async def test_the_cli_prints_the_table_writes_the_chart_and_speaks_json(
    client: httpx.AsyncClient,
    app: Starlette,
    clock: Clock,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    await _traffic(client, app, clock)
    assert settings.mongodb_uri is not None
    monkeypatch.setenv("MONGODB_URI", settings.mongodb_uri.get_secret_value())
    monkeypatch.setenv("MONGODB_DATABASE", settings.mongodb_database)
    monkeypatch.setenv("CONTENT_DIR", str(DEMO_CONTENT_DIR))
    chart = tmp_path / "chart.html"
    # The CLI runs its own event loop: off this test's loop, in a thread.
    assert await asyncio.to_thread(main, ["experiments", "report", KEY, "--chart", str(chart)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"Experiment {KEY} — Sale hero headline")
    assert "conversion (primary, two-proportion z-test)" in text
    assert "SRM: chi-square" in text
    assert f"chart: {chart}" in text
    assert "<svg" in chart.read_text(encoding="utf-8")
    argv = ["experiments", "report", KEY, "--format", "json", "--sequential"]
    assert await asyncio.to_thread(main, argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["users"] == 31
    assert data["sequential"] is True
    assert await asyncio.to_thread(main, ["experiments", "report", "nope"]) == 1
    assert "no experiment 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["experiments", "report", "no spaces"])
    assert exit_info.value.code == 2
