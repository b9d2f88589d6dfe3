"""`python -m gateway audiences import FILE` against the real database server."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymongo import MongoClient

from gateway.cli import main
from gateway.embedded_mongo import EmbeddedMongo


def test_import_checks_everything_then_writes(
    mongo_server: EmbeddedMongo,
    database_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MONGODB_URI", mongo_server.uri)
    monkeypatch.setenv("MONGODB_DATABASE", database_name)
    good = tmp_path / "good.yaml"
    good.write_text(
        "audiences:\n"
        "  - {name: big, condition: {'cart.value': {'$gte': 100}}}\n"
        "  - {name: big_mobile, audiences: [big], condition: {device: mobile}}\n",
        encoding="utf-8",
    )
    cyclic = tmp_path / "cyclic.yaml"
    cyclic.write_text(
        "audiences:\n  - {name: x, audiences: [y]}\n  - {name: y, audiences: [x]}\n",
        encoding="utf-8",
    )
    client: MongoClient[dict[str, object]] = MongoClient(mongo_server.uri)
    try:
        assert main(["audiences", "import", str(good)]) == 0
        assert "imported 2 audience(s)" in capsys.readouterr().out
        names = sorted(str(d["_id"]) for d in client[database_name]["audiences"].find())
        assert names == ["big", "big_mobile"]
        assert main(["audiences", "import", str(cyclic)]) == 1
        err = capsys.readouterr().err
        assert "audiences reference each other in a cycle: x → y → x" in err
        assert client[database_name]["audiences"].count_documents({}) == 2
        assert main(["audiences", "import", str(tmp_path / "missing.yaml")]) == 2
    finally:
        client.drop_database(database_name)
        client.close()
