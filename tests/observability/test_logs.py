"""LOG_FORMAT=json|text: one record per line, the request id on each, credentials masked."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from gateway.embedded_mongo import EmbeddedMongo, free_port
from gateway.logs import REQUEST_ID, configure_logging, redact
from gateway.settings import Settings
from tests.graphql_helpers import ADMIN_KEY


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def emit(fmt: str, message: str, *args: object, exc: bool = False) -> str:
    stream = io.StringIO()
    handler = configure_logging("INFO", fmt, stream)  # type: ignore[arg-type]
    try:
        logger = logging.getLogger("gateway.test")
        if exc:
            try:
                raise ValueError("boom")
            except ValueError:
                logger.exception(message, *args)
        else:
            logger.warning(message, *args)
    finally:
        logging.getLogger().removeHandler(handler)
    return stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_json_records_are_one_object_per_line_with_the_request_id() -> None:
    token = REQUEST_ID.set("req-42")
    try:
        line = emit("json", "served %s in %d ms", "home", 7)
    finally:
        REQUEST_ID.reset(token)
    assert line.endswith("\n")
    assert line.count("\n") == 1
    record = json.loads(line)
    assert record["message"] == "served home in 7 ms"
    assert record["level"] == "WARNING"
    assert record["logger"] == "gateway.test"
    assert record["request_id"] == "req-42"
    assert record["time"][:2] == "20"


@pytest.mark.usefixtures("restore_logging")
def test_json_exceptions_stay_on_one_line() -> None:
    line = emit("json", "failed", exc=True)
    assert line.count("\n") == 1
    record = json.loads(line)
    assert record["request_id"] == "-"
    assert "ValueError: boom" in record["exc_info"]


@pytest.mark.usefixtures("restore_logging")
def test_text_records_carry_the_request_id() -> None:
    token = REQUEST_ID.set("req-7")
    try:
        line = emit("text", "hello")
    finally:
        REQUEST_ID.reset(token)
    assert " WARNING gateway.test [req-7]: hello" in line


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.usefixtures("restore_logging")
def test_credentials_are_masked_in_both_formats(fmt: str) -> None:
    out = emit(
        fmt,
        "cannot reach %s (auth: %s)",
        "mongodb+srv://tessera:hunter2@cluster0.example.net/db?retryWrites=true",
        "Bearer sk_live_abcdef",
    )
    assert "hunter2" not in out
    assert "sk_live_abcdef" not in out
    assert "mongodb+srv://tessera:***@cluster0.example.net/db" in out


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "GET /graphql?query=%7B%7D 200; http://host:8080/path; user@example.com"
    assert redact(text) == text
    assert redact("redis://:pw@redis:6379/0") == "redis://:***@redis:6379/0"
    assert (
        redact('"POST /v1/events?key=sk_1&x=1 HTTP/1.1"')
        == '"POST /v1/events?key=***&x=1 HTTP/1.1"'
    )
    assert redact("/cb?access_token=abc") == "/cb?access_token=***"
    assert redact("/p?monkey=1&keys=2") == "/p?monkey=1&keys=2"


def test_redact_takes_linear_time_on_a_long_run_of_letters() -> None:
    # A client's 60,000-letter slug in a traceback took 4 s to mask, on the event
    # loop; 200,000 took about 45 s. Linear, it is a few milliseconds.
    text = "a" * 200_000
    started = time.perf_counter()
    assert redact(text) == text
    assert time.perf_counter() - started < 1.0
    glued = "a" * 100 + "mongodb://u:secret@host"
    assert redact(glued) == "a" * 100 + "mongodb://u:***@host"


@pytest.mark.usefixtures("restore_logging")
def test_a_client_cannot_forge_a_text_log_line() -> None:
    forged = "B\n2026-12-02 11:31:00,000 CRITICAL gateway.auth [-]: FORGED\r"
    out = emit("text", "unknown operation %s", forged)
    assert out.count("\n") == 1
    assert "B\\n2026-12-02 11:31:00,000 CRITICAL gateway.auth [-]: FORGED\\r" in out
    # A traceback keeps its lines: only the message is one line.
    assert emit("text", "failed", exc=True).count("\n") > 2


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValidationError, match="log_format"):
        Settings(log_format="xml")  # type: ignore[arg-type]


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    # Every line is a JSON object: nothing (uvicorn included) writes plain text.
    return [json.loads(line) for line in lines]


@pytest.mark.slow
def test_serve_logs_json_with_the_request_id_of_each_request(
    mongo_server: EmbeddedMongo, database_name: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOG_"))}
    env |= {
        "MONGODB_URI": mongo_server.uri,
        "MONGODB_DATABASE": database_name,
        "STATE_DIR": str(tmp_path / "state"),
        "PORT": str(port),
        "LOG_FORMAT": "json",
        "ADMIN_KEYS": ADMIN_KEY,
    }
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--access-log"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        with httpx.Client(base_url=url, timeout=10) as client:
            ok = client.get("/healthz", headers={"X-Request-Id": "probe-1"})
            assert ok.headers["x-request-id"] == "probe-1"
            forged = client.post(
                "/webhooks/filesystem",
                content=b"{}",
                headers={"X-Request-Id": "forged-2", "Authorization": f"Bearer {ADMIN_KEY}"},
            )
            assert forged.status_code == 401
            # A beacon may carry its key in the URL, which the access log writes.
            beacon = client.post(
                f"/v1/events?key={ADMIN_KEY}",
                content=b'[{"type":"page_view","eventId":"log-e1","visitorId":"log-v"}]',
            )
            assert beacon.status_code == 200, beacon.text
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) in (0, -signal.SIGTERM)
    text = log.read_text()
    records = _json_lines(text)
    assert ADMIN_KEY not in text
    assert any("/v1/events?key=***" in r["message"] for r in records)
    # uvicorn's terminal-coloured duplicate of its messages is left out.
    assert not any("color_message" in r for r in records)
    started = [r for r in records if "Application startup complete" in r["message"]]
    assert started
    assert started[0]["request_id"] == "-"
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert any(r["request_id"] == "probe-1" and "/healthz" in r["message"] for r in access)
    refused = [r for r in records if r["logger"] == "gateway.webhooks"]
    assert refused
    assert all(r["request_id"] == "forged-2" for r in refused)
    assert all(r["level"] == "WARNING" for r in refused)
