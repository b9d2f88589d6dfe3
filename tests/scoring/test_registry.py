import asyncio
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from scoring.errors import ModelNotFound, SignatureMismatch
from scoring.registry import BUCKET, STATE, ModelRegistry, signing_key_from

KEY = b"test-signing-key"


def _fitted() -> Any:
    rows = [{"a": 1.0}, {"b": 1.0}, {"a": 1.0, "b": 1.0}, {}]
    return make_pipeline(DictVectorizer(), LogisticRegression()).fit(rows, [1, 0, 1, 0])


@pytest.fixture
def registry(mongo: AsyncMongoClient[dict[str, Any]], database_name: str) -> ModelRegistry:
    return ModelRegistry(mongo[database_name], KEY)


async def _save(registry: ModelRegistry) -> str:
    info = await registry.save(
        _fitted(), kind="variant", metrics={"auc": 0.9}, features=["a", "b"], window={}
    )
    return info.version


async def test_saved_model_loads_and_predicts_like_the_original(registry: ModelRegistry) -> None:
    version = await _save(registry)
    loaded = await registry.load(version)
    expected = _fitted().predict_proba([{"a": 1.0}])
    assert loaded.estimator.predict_proba([{"a": 1.0}]).tolist() == expected.tolist()
    assert loaded.info.metrics == {"auc": 0.9}
    assert loaded.info.features == ("a", "b")


async def test_activate_and_rollback_walk_the_history(registry: ModelRegistry) -> None:
    first, second = await _save(registry), await _save(registry)
    assert await registry.active_version() is None
    await registry.activate(first)
    await registry.activate(second)
    assert await registry.active_version() == second
    assert [m.version for m in await registry.list() if m.active] == [second]
    assert await registry.rollback() == first
    assert await registry.active_version() == first
    assert await registry.rollback() is None
    with pytest.raises(ModelNotFound):
        await registry.rollback()


async def test_tampered_bytes_are_refused(
    registry: ModelRegistry, mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    version = await _save(registry)
    chunks = mongo[database_name][f"{BUCKET}.chunks"]
    chunk = await chunks.find_one({})
    assert chunk is not None
    data = bytearray(chunk["data"])
    data[-1] ^= 0xFF
    await chunks.update_one({"_id": chunk["_id"]}, {"$set": {"data": bytes(data)}})
    with pytest.raises(SignatureMismatch, match="signature does not verify"):
        await registry.load(version)
    with pytest.raises(SignatureMismatch):
        await registry.activate(version)
    assert await registry.active_version() is None


async def test_a_different_key_is_refused(
    registry: ModelRegistry, mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    version = await _save(registry)
    other = ModelRegistry(mongo[database_name], b"another-key")
    with pytest.raises(SignatureMismatch):
        await other.load(version)


async def test_unknown_version(registry: ModelRegistry) -> None:
    with pytest.raises(ModelNotFound, match="no model version 'nope'"):
        await registry.load("nope")


async def test_reactivating_the_active_version_adds_nothing_to_history(
    registry: ModelRegistry, mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    first, second = await _save(registry), await _save(registry)
    await registry.activate(first)
    await registry.activate(second)
    await registry.activate(second)
    state = await mongo[database_name][STATE].find_one({"_id": "variant"})
    assert state is not None
    assert state["history"] == [first, second]
    # So one rollback goes back to the previous model, not to the same one.
    assert await registry.rollback() == first
    await registry.activate(first)
    assert await registry.rollback() is None


async def test_concurrent_rollbacks_each_pop_one_entry(
    registry: ModelRegistry, mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    versions = [await _save(registry) for _ in range(3)]
    for version in versions:
        await registry.activate(version)
    results = await asyncio.gather(registry.rollback(), registry.rollback())
    # Each popped its own entry; the one overtaken reports what is active after both.
    assert versions[0] in results
    assert set(results) <= {versions[0], versions[1]}
    state = await mongo[database_name][STATE].find_one({"_id": "variant"})
    assert state is not None
    assert state["history"] == [versions[0]]
    assert state["active"] == versions[0]


def test_the_generated_key_file_is_created_owner_only_and_reused(tmp_path: Path) -> None:
    key = signing_key_from("", tmp_path / "state")
    path = tmp_path / "state" / "model-signing.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 64
    assert signing_key_from("", tmp_path / "state") == key
    assert signing_key_from("configured", tmp_path / "state") == b"configured"


def test_concurrent_creators_agree_on_one_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: signing_key_from("", tmp_path), range(32)))
    assert len(keys) == 1


class SideEffect:
    """Unpickling this creates a directory: what a hostile artifact would do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


async def test_a_valid_pickle_signed_with_another_key_is_never_unpickled(
    registry: ModelRegistry,
    mongo: AsyncMongoClient[dict[str, Any]],
    database_name: str,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "unpickled"
    attacker = ModelRegistry(mongo[database_name], b"the-attackers-key")
    info = await attacker.save(
        SideEffect(marker), kind="variant", metrics={}, features=[], window={}
    )
    with pytest.raises(SignatureMismatch):
        await registry.load(info.version)
    with pytest.raises(SignatureMismatch):
        await registry.activate(info.version)
    assert not marker.exists()
    # The artifact is a working pickle: loaded with the key that signed it, it runs.
    await attacker.load(info.version)
    assert marker.is_dir()
