"""`python -m gateway train | models ... | scores propensity` against the real database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.cli import main
from scoring.registry import BUCKET, STATE
from scoring.synthetic import make_visitors, synthetic_logs
from tests.scoring.test_propensity import _profiles


def _seed_exposures(db: Any, count: int = 2000) -> None:
    start = datetime.now(UTC) - timedelta(hours=20)
    logged, events = synthetic_logs(
        make_visitors(200), count, start=start, spacing=timedelta(seconds=30)
    )
    db.exposures.insert_many(logged)
    db.events.insert_many(events)


def _version(text: str) -> str:
    found = re.search(r"model (variant-\S+)", text)
    assert found, text
    return found.group(1)


def test_train_list_activate_drift_rollback(db: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _seed_exposures(db)
    assert main(["train", "--days", "2"]) == 0
    out = capsys.readouterr().out
    assert "2000 exposures" in out
    assert "AUC" in out
    assert "IPS" in out
    assert "reliability" in out
    first = _version(out)
    assert db[STATE].find_one({"_id": "variant"}) is None  # not activated without --activate
    assert all(
        block.get("outcome") is not None for doc in db.exposures.find({}) for block in doc["blocks"]
    )

    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert first in listing
    assert "* " + first not in listing

    assert main(["models", "activate", first]) == 0
    assert f"activated {first}" in capsys.readouterr().out
    assert main(["models", "list", "--kind", "variant"]) == 0
    assert f"* {first}" in capsys.readouterr().out

    assert main(["models", "drift", "--hours", "48"]) == 0
    drift = capsys.readouterr().out
    assert f"drift of {first}" in drift
    assert "max statistic" in drift
    assert db["models.drift"].find_one({"_id": "variant"})["model_version"] == first

    assert (
        main(
            ["train", "--since", (datetime.now(UTC) - timedelta(days=2)).isoformat(), "--activate"]
        )
        == 0
    )
    second = _version(capsys.readouterr().out)
    assert db[STATE].find_one({"_id": "variant"})["active"] == second
    assert main(["models", "rollback"]) == 0
    assert f"{first} is the active variant model" in capsys.readouterr().out
    assert db[STATE].find_one({"_id": "variant"})["active"] == first


def test_clear_errors(db: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--days", "1"]) == 1
    assert "0 usable exposures" in capsys.readouterr().err
    assert main(["models", "activate", "variant-nope"]) == 1
    assert "no model version 'variant-nope'" in capsys.readouterr().err
    assert main(["models", "rollback"]) == 1
    assert "no variant model has been activated" in capsys.readouterr().err
    assert main(["models", "drift"]) == 1
    assert "no variant model is active" in capsys.readouterr().err
    assert main(["models", "list"]) == 0
    assert "no models registered" in capsys.readouterr().out


def test_a_tampered_artifact_is_refused_by_activate(
    db: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed_exposures(db, 1000)
    assert main(["train", "--days", "2"]) == 0
    version = _version(capsys.readouterr().out)
    chunk = db[f"{BUCKET}.chunks"].find_one({})
    data = bytearray(chunk["data"])
    data[len(data) // 2] ^= 0x01
    db[f"{BUCKET}.chunks"].update_one({"_id": chunk["_id"]}, {"$set": {"data": bytes(data)}})
    assert main(["models", "activate", version]) == 1
    err = capsys.readouterr().err
    assert "refused" in err
    assert "signature does not verify" in err
    assert db[STATE].find_one({"_id": "variant"}) is None


def test_a_different_signing_key_is_refused(
    db: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed_exposures(db, 1000)
    assert main(["train", "--days", "2"]) == 0
    version = _version(capsys.readouterr().out)
    monkeypatch.setenv("MODEL_SIGNING_KEY", "another-key")
    assert main(["models", "activate", version]) == 1
    assert "signature does not verify" in capsys.readouterr().err


def test_scores_propensity(db: Any, capsys: pytest.CaptureFixture[str]) -> None:
    db.profiles.insert_many(_profiles(300))
    assert main(["scores", "propensity", "--activate"]) == 0
    out = capsys.readouterr().out
    assert "wrote scores.purchasePropensity into 300 profiles" in out
    assert "(active)" in out
    assert db.profiles.count_documents({"scores.purchasePropensity": {"$gte": 0}}) == 300
    assert db[STATE].find_one({"_id": "propensity"})["active"].startswith("propensity-")


def _rows(text: str) -> int:
    found = re.search(r"rows: (\d+) train, (\d+) validation", text)
    assert found, text
    return int(found.group(1)) + int(found.group(2))


def test_exposures_too_recent_to_be_clicked_are_left_out(
    db: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed_exposures(db)
    recent, events = synthetic_logs(
        make_visitors(50, seed=5),
        300,
        start=datetime.now(UTC) - timedelta(minutes=10),
        seed=5,
        spacing=timedelta(seconds=1),
    )
    db.exposures.insert_many(recent)
    db.events.insert_many(events)
    assert main(["train", "--days", "2"]) == 0
    out = capsys.readouterr().out
    assert "later ones may still be clicked" in out
    assert _rows(out) == 2000
    assert main(["train", "--days", "2", "--settle-minutes", "0"]) == 0
    assert _rows(capsys.readouterr().out) == 2300
