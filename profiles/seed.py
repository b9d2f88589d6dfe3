"""Seed demo audiences and profiles idempotently from YAML files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from profiles.audiences import AudienceRepository
from profiles.store import ProfileStore

logger = logging.getLogger(__name__)


def _documents(path: Path, key: str) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    items = data.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError(f"{path}: {key!r} must be a list of objects")
    return items


async def seed_demo(
    store: ProfileStore, repository: AudienceRepository, audiences: Path, profiles: Path
) -> None:
    """Upsert demo audiences (replacing them) and insert missing demo profiles."""
    for audience in _documents(audiences, "audiences"):
        await repository.upsert(
            audience["name"], audience.get("condition", {}), audience.get("description", "")
        )
    created = await store.seed(_documents(profiles, "profiles"))
    logger.info("demo data seeded (%d new profiles)", created)
