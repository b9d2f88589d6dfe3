"""Settings from the environment: choices in any case, invalid values named without a traceback."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from gateway.cli import main, settings_problems
from gateway.settings import Settings


def test_choices_are_case_insensitive_as_the_names_are(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"LOG_LEVEL": "debug", "LOG_FORMAT": "JSON", "CMS": " Filesystem "}.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.log_level, settings.log_format, settings.cms) == (
        "DEBUG",
        "json",
        "filesystem",
    )


def test_invalid_settings_are_listed_by_variable_and_secrets_are_not_echoed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "verbose")
    monkeypatch.setenv("PORT", "eighty")
    monkeypatch.setenv("MAX_QUERY_DEPTH", "1")
    monkeypatch.setenv("MODEL_POLL_SECONDS", "-1")
    monkeypatch.setenv("RESPONSE_CACHE_SIZE", "lots")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m gateway serve: invalid settings:\n")
    assert "Traceback" not in err
    assert (
        "  LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR' (got 'VERBOSE')" in err
    )
    assert "  PORT: Input should be a valid integer" in err
    assert "(got 'eighty')" in err
    assert "  MAX_QUERY_DEPTH: Input should be greater than or equal to 2 (got '1')" in err
    assert "  RESPONSE_CACHE_SIZE:" in err


class _Credentials(BaseModel):
    cache_url: int
    api_key: int
    port: int


def test_values_of_settings_that_may_hold_credentials_are_never_echoed() -> None:
    with pytest.raises(ValidationError) as caught:
        _Credentials(cache_url="redis://:hunter2@cache/0", api_key="sk-live-1", port="x")  # type: ignore[arg-type]
    text = settings_problems("python -m gateway serve", caught.value)
    assert "  CACHE_URL: Input should be a valid integer" in text
    assert "  API_KEY: Input should be a valid integer" in text
    assert "hunter2" not in text
    assert "sk-live-1" not in text
    assert (
        "  PORT: Input should be a valid integer, unable to parse string as an integer (got 'x')"
        in text
    )
