from typing import Any

import pytest
from pymongo import AsyncMongoClient
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from scoring.errors import ModelNotFound, SignatureMismatch
from scoring.registry import BUCKET, ModelRegistry

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
