"""The CLI shares the embedded server a running `serve` advertises; stale adverts are ignored."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from gateway.embedded_mongo import (
    Advert,
    EmbeddedMongo,
    StorageInUse,
    claim_storage,
    database_uri,
    free_port,
    lock_holder,
    running_server,
    storage_locked,
)
from gateway.settings import Settings


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.mark.slow
async def test_cli_uses_the_advertised_server_and_ignores_a_stale_advert(tmp_path: Path) -> None:
    storage = tmp_path / "mongo"
    server = EmbeddedMongo(storage, advertise=True)
    server.start()
    try:
        advert = json.loads((storage / "server.uri").read_text())
        assert advert["uri"] == server.uri
        assert advert["owner"] == os.getpid()
        assert advert["server"] == server.pid
        assert running_server(storage) == server.uri
        settings = Settings(state_dir=tmp_path, mongodb_uri=None)
        async with database_uri(settings) as uri:
            assert uri == server.uri
        # The storage is WiredTiger's, locked by the server process.
        assert storage_locked(storage)
        assert lock_holder(storage) == server.pid
    finally:
        server.stop()
    assert not (storage / "server.uri").exists()
    assert not storage_locked(storage)
    assert running_server(storage) is None
    # A crash leaves the file behind: nothing listens there, so it is ignored.
    stale = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    Advert(uri=stale, owner=os.getpid()).write(storage)
    assert running_server(storage) is None
    # Nor is a server whose owner is gone, even if it still answers: it is an orphan.
    (storage / "server.uri").unlink()
    with EmbeddedMongo(tmp_path / "other") as other:
        Advert(uri=other.uri, owner=dead_pid(), server=other.pid).write(storage)
        assert running_server(storage) is None
    # An older Tessera wrote the URI alone.
    (storage / "server.uri").write_text(stale)
    assert Advert.read(storage) == Advert(uri=stale)


@pytest.mark.slow
def test_a_storage_owned_by_a_live_process_is_refused(tmp_path: Path) -> None:
    storage = tmp_path / "mongo"
    # Owned by another live process (here: pid 1, which is never this one).
    with EmbeddedMongo(tmp_path / "elsewhere") as server:
        storage.mkdir()
        Advert(uri=server.uri, owner=1, server=server.pid).write(storage)
        with pytest.raises(StorageInUse, match=r"in use by another process \(pid 1"):
            claim_storage(storage)
        assert server.process is not None
        assert server.process.poll() is None  # not stopped: its owner lives
    (storage / "server.uri").unlink()
    # A storage locked by a server nobody advertises: named, not stopped.
    with EmbeddedMongo(storage) as unadvertised:
        with pytest.raises(StorageInUse, match=rf"locked by pid {unadvertised.pid} "):
            claim_storage(storage, stop_timeout=0.5)
        assert unadvertised.process is not None
        assert unadvertised.process.poll() is None


async def test_a_configured_uri_wins(tmp_path: Path) -> None:
    assert running_server(tmp_path) is None
    settings = Settings(state_dir=tmp_path, mongodb_uri="mongodb://db.example:27017")
    async with database_uri(settings) as uri:
        assert uri == "mongodb://db.example:27017"
