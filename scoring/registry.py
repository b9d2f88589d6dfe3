"""The model registry: versioned, signed model artifacts in MongoDB (GridFS).

Each artifact is a joblib dump of a fitted scikit-learn estimator, stored in
the GridFS bucket `models` with a metadata document in `models.registry`
(metrics, feature list, training window) and an HMAC-SHA256 signature over
its version, kind and bytes. `load` verifies the signature before the bytes
reach joblib, so an artifact altered in the database is refused and never
unpickled. Which version serves is recorded per kind in `models.state`, with
the history of activations that `rollback` walks back through.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
from gridfs import AsyncGridFSBucket
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from common import collections
from common.state_secret import state_secret
from scoring.errors import ModelNotFound, SignatureMismatch

BUCKET = collections.MODELS_BUCKET
REGISTRY = collections.MODEL_REGISTRY
STATE = collections.MODEL_STATE
SAMPLES = collections.MODEL_SAMPLES

#: The kind of the per-(visitor, variant) click model that ranks variants.
VARIANT_MODEL = "variant"
#: The kind of the visitor-level purchase-propensity model.
PROPENSITY_MODEL = "propensity"
#: The kind of the product recommendation models (`scoring.recommendations`).
RECOMMENDATIONS_MODEL = "recommendations"
#: The kind of the learned visitor segments (`scoring.segments`).
SEGMENTS_MODEL = "segments"
#: Every kind the registry holds.
MODEL_KINDS = (VARIANT_MODEL, PROPENSITY_MODEL, RECOMMENDATIONS_MODEL, SEGMENTS_MODEL)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the registry knows about one stored version."""

    version: str
    kind: str
    created_at: datetime
    metrics: Mapping[str, Any]
    features: tuple[str, ...]
    window: Mapping[str, Any]
    size: int
    sha256: str
    active: bool = False

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], active: str | None = None) -> ModelInfo:
        """Rebuild from a `models.registry` document."""
        return cls(
            version=doc["_id"],
            kind=doc["kind"],
            created_at=doc["createdAt"],
            metrics=doc.get("metrics") or {},
            features=tuple(doc.get("features") or ()),
            window=doc.get("window") or {},
            size=int(doc.get("size") or 0),
            sha256=doc.get("sha256", ""),
            active=doc["_id"] == active,
        )


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A verified, unpickled model and its registry entry."""

    info: ModelInfo
    estimator: Any
    sample: Mapping[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """The model's version."""
        return self.info.version


def signing_key_from(secret: str, state_dir: Path) -> bytes:
    """The HMAC key: the configured secret, else one generated once under `state_dir`."""
    return state_secret(secret, state_dir / "model-signing.key", "MODEL_SIGNING_KEY")


def _signature(key: bytes, version: str, kind: str, data: bytes) -> str:
    mac = hmac.new(key, f"{version}\n{kind}\n".encode(), hashlib.sha256)
    mac.update(data)
    return mac.hexdigest()


class ModelRegistry:
    """Save, list, activate, roll back and load signed model artifacts."""

    def __init__(self, database: AsyncDatabase[dict[str, Any]], signing_key: bytes) -> None:
        if not signing_key:
            raise ValueError("MODEL_SIGNING_KEY: an empty key cannot sign models")
        self._db = database
        self._key = signing_key
        self._bucket = AsyncGridFSBucket(database, bucket_name=BUCKET)

    async def save(
        self,
        estimator: Any,
        *,
        kind: str,
        metrics: Mapping[str, Any],
        features: Sequence[str],
        window: Mapping[str, Any],
        sample: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> ModelInfo:
        """Store `estimator` as a new signed version of `kind` (not yet active)."""
        buffer = io.BytesIO()
        joblib.dump(estimator, buffer, compress=3)
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        created = now or datetime.now(UTC)
        # A random suffix: two versions trained in the same second stay distinct.
        version = f"{kind}-{created:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        signature = _signature(self._key, version, kind, data)
        file_id = await self._bucket.upload_from_stream(
            version, data, metadata={"kind": kind, "version": version}
        )
        doc = {
            "_id": version,
            "kind": kind,
            "createdAt": created,
            "metrics": dict(metrics),
            "features": list(features),
            "window": dict(window),
            "size": len(data),
            "sha256": digest,
            "signature": signature,
            "fileId": file_id,
        }
        await self._db[REGISTRY].insert_one(doc)
        if sample:
            await self._db[SAMPLES].replace_one(
                {"_id": version}, {"_id": version, **sample}, upsert=True
            )
        return ModelInfo.from_document(doc)

    async def list(self, kind: str | None = None) -> list[ModelInfo]:
        """Every stored version (of `kind`), newest first, marking the active ones."""
        query = {} if kind is None else {"kind": kind}
        active = {doc["_id"]: doc.get("active") async for doc in self._db[STATE].find({})}
        return [
            ModelInfo.from_document(doc, active.get(doc["kind"]))
            async for doc in self._db[REGISTRY].find(query).sort("createdAt", -1)
        ]

    async def info(self, version: str) -> ModelInfo:
        """The registry entry of `version`."""
        doc = await self._db[REGISTRY].find_one({"_id": version})
        if doc is None:
            raise ModelNotFound(f"no model version {version!r}")
        return ModelInfo.from_document(doc, await self.active_version(doc["kind"]))

    async def active_version(self, kind: str = VARIANT_MODEL) -> str | None:
        """The version of `kind` currently serving, if any."""
        state = await self._db[STATE].find_one({"_id": kind})
        active = (state or {}).get("active")
        return active if isinstance(active, str) else None

    async def activate(self, version: str) -> ModelInfo:
        """Make `version` the active model of its kind; the previous one stays in history.

        Activating the version already active changes nothing (no duplicate in history).
        Remaining race: an activation of another version landing between the two
        writes below (only reached when this version is already active or the kind
        has no state yet) wins.
        """
        info = await self.info(version)
        # Refuse to activate what could not be loaded.
        await self.load(version)
        now = datetime.now(UTC)
        state = self._db[STATE]
        changed = await state.update_one(
            {"_id": info.kind, "active": {"$ne": version}},
            {"$set": {"active": version, "updatedAt": now}, "$push": {"history": version}},
        )
        if changed.matched_count == 0:
            # Either already active (nothing to do) or the kind's first activation.
            await state.update_one(
                {"_id": info.kind},
                {"$setOnInsert": {"active": version, "history": [version], "updatedAt": now}},
                upsert=True,
            )
        return await self.info(version)

    async def rollback(self, kind: str = VARIANT_MODEL) -> str | None:
        """Re-activate the version active before the current one; returns it (None: none left).

        The history is popped atomically, so two concurrent rollbacks pop two
        entries, never the same one twice. `active` is then set only if the history
        is still what the pop left: a concurrent activation or rollback in between
        wins, this one leaves `active` to it and returns the version that one makes active.
        Remaining race: if this process dies between the two writes, `active`
        still names the popped version until the next activation or rollback.
        """
        state = self._db[STATE]
        after = await state.find_one_and_update(
            {"_id": kind, "history.0": {"$exists": True}},
            {"$pop": {"history": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if after is None:
            raise ModelNotFound(f"no {kind} model has been activated (or none left to roll back)")
        history: list[str] = list(after.get("history") or [])
        previous = history[-1] if history else None
        done = await state.update_one(
            {"_id": kind, "history": history},
            {"$set": {"active": previous, "updatedAt": datetime.now(UTC)}},
        )
        if done.matched_count == 0:
            # Overtaken by a concurrent activation or rollback. Either makes the history's
            # last entry active, but a rollback's second write may not have landed yet:
            # `active` itself could still name the version both popped.
            current = await state.find_one({"_id": kind})
            remaining = list((current or {}).get("history") or [])
            return remaining[-1] if remaining else None
        return previous

    async def load(self, version: str) -> LoadedModel:
        """Fetch, verify and unpickle `version`; raises SignatureMismatch if tampered with."""
        doc = await self._db[REGISTRY].find_one({"_id": version})
        if doc is None:
            raise ModelNotFound(f"no model version {version!r}")
        stream = await self._bucket.open_download_stream(doc["fileId"])
        data = await stream.read()
        expected = _signature(self._key, version, doc["kind"], data)
        if not hmac.compare_digest(expected, str(doc.get("signature", ""))):
            raise SignatureMismatch(
                f"model {version!r}: signature does not verify; the artifact was not loaded"
            )
        # Unpickling a large model takes a while: keep it off the event loop.
        estimator = await asyncio.to_thread(joblib.load, io.BytesIO(data))
        sample = await self._db[SAMPLES].find_one({"_id": version}) or {}
        sample.pop("_id", None)
        return LoadedModel(
            info=ModelInfo.from_document(doc, await self.active_version(doc["kind"])),
            estimator=estimator,
            sample=sample,
        )

    async def load_active(self, kind: str = VARIANT_MODEL) -> LoadedModel | None:
        """The active model of `kind`, verified and loaded, or None when none is active."""
        version = await self.active_version(kind)
        return None if version is None else await self.load(version)
