"""The CLI shares the embedded server a running `serve` advertises."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.embedded_mongo import EmbeddedMongo, database_uri, free_port, running_server
from gateway.settings import Settings


@pytest.mark.slow
async def test_cli_uses_the_advertised_server_and_ignores_a_stale_advert(tmp_path: Path) -> None:
    storage = tmp_path / "mongo"
    server = EmbeddedMongo(storage, advertise=True)
    server.start()
    try:
        assert (storage / "server.uri").read_text() == server.uri
        assert running_server(storage) == server.uri
        settings = Settings(state_dir=tmp_path, mongodb_uri=None)
        async with database_uri(settings) as uri:
            assert uri == server.uri
    finally:
        server.stop()
    assert not (storage / "server.uri").exists()
    assert running_server(storage) is None
    # A crash leaves the file behind: nothing listens there, so it is ignored.
    (storage / "server.uri").write_text(f"mongodb://127.0.0.1:{free_port()}/?directConnection=true")
    assert running_server(storage) is None


async def test_a_configured_uri_wins(tmp_path: Path) -> None:
    assert running_server(tmp_path) is None
    settings = Settings(state_dir=tmp_path, mongodb_uri="mongodb://db.example:27017")
    async with database_uri(settings) as uri:
        assert uri == "mongodb://db.example:27017"
