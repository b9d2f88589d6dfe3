"""Audience definitions stored in MongoDB, with an in-memory catalog for requests.

Audiences are data: created, replaced, deleted and bulk-imported through the
repository, which refuses a change that would leave an invalid condition, a
reference to an unknown audience or a reference cycle (naming it). The bulk
file format (YAML or JSON) is the one of `gateway/demo/audiences.yaml`::

    audiences:
      - name: high_value
        description: Lifetime value of 500 or more.
        condition: {"traits.ltv": {"$gte": 500}}
      - name: loyal_vip
        audiences: [high_value, returning]
        audienceMatch: all
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pymongo.asynchronous.database import AsyncDatabase

from blocks.audiences import Audience, AudienceSet, find_cycle
from blocks.lint import lint_audiences
from common import collections
from common.service import Service, cancel

logger = logging.getLogger(__name__)

AUDIENCES = collections.AUDIENCES
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_KEYS = frozenset({"name", "description", "condition", "audiences", "audienceMatch"})


class AudienceError(ValueError):
    """An audience change that is refused; the message says why, precisely."""


class AudienceNotFound(AudienceError):
    """No audience has that name."""


class AudienceFileError(ValueError):
    """A bulk audience file that cannot be read."""


def audience_document(data: Any, where: str = "audience") -> dict[str, Any]:
    """A checked stored form `{_id, condition, description, audiences, audienceMatch}`."""
    if not isinstance(data, Mapping):
        raise AudienceError(f"{where}: must be an object")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise AudienceError(f"{where}: unknown field(s) {unknown}; known: {sorted(_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise AudienceError(
            f"{where}.name: {name!r} is not a valid name (a letter, then up to 63 letters, "
            "digits, '_', '.' or '-')"
        )
    condition = data.get("condition")
    if condition is None:
        condition = {}
    if not isinstance(condition, Mapping):
        raise AudienceError(f"{where}.condition: must be an object")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise AudienceError(f"{where}.description: must be a string")
    document = {
        "_id": name,
        "condition": dict(condition),
        "description": description,
        "audiences": list(data.get("audiences") or []),
        "audienceMatch": data.get("audienceMatch", "any"),
    }
    try:
        Audience.from_document(document)
    except ValueError as exc:
        raise AudienceError(f"{where}: {exc}") from None
    return document


#: Deeper flow nesting (`[[[…`) is refused before parsing: PyYAML recurses to the
#: interpreter's limit first, about a second on the event loop.
MAX_FLOW_DEPTH = 64


def _flow_depth(text: str) -> int:
    """The deepest nesting of `[` and `{` outside quoted scalars (a bound, not a parse)."""
    depth = deepest = 0
    quote = ""
    escaped = False
    before = "\n"  # the last character outside quotes that is not a space
    for char in text:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\" and quote == '"':
                escaped = True
            elif char == quote:
                quote = ""
            continue
        if char in "\"'" and before in "\n[{,:-?":
            # Only where a scalar can start: in `it's` the quote is just a letter.
            quote = char
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
        if char == "\n" or not char.isspace():
            before = char
    return deepest


def parse_audience_file(text: str, source: str = "audiences") -> list[dict[str, Any]]:
    """The checked documents of a bulk file (YAML or JSON: `audiences: [...]` or a list)."""
    if _flow_depth(text) > MAX_FLOW_DEPTH:
        raise AudienceFileError(f"{source}: nested too deeply")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AudienceFileError(f"{source}: not valid YAML/JSON: {exc}") from None
    except RecursionError:
        raise AudienceFileError(f"{source}: nested too deeply") from None
    items = data.get("audiences") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise AudienceFileError(f"{source}: expected `audiences:` with a list of audiences")
    documents = []
    names: set[str] = set()
    for index, item in enumerate(items):
        try:
            document = audience_document(item, f"audiences[{index}]")
        except AudienceError as exc:
            raise AudienceFileError(f"{source}: {exc}") from None
        if document["_id"] in names:
            raise AudienceFileError(
                f"{source}: audiences[{index}].name: {document['_id']!r} is defined twice"
            )
        names.add(document["_id"])
        documents.append(document)
    return documents


def audiences_from_file(path: Path) -> dict[str, Audience]:
    """The audiences of a bulk file, by name."""
    documents = parse_audience_file(path.read_text(encoding="utf-8"), str(path))
    return {d["_id"]: Audience.from_document(d) for d in documents}


def _check(documents: Mapping[str, Mapping[str, Any]], before: Mapping[str, Any]) -> None:
    """Refuse the new set of definitions if it adds a problem the old one did not have."""

    def problems(docs: Mapping[str, Any]) -> set[str]:
        audiences = {name: Audience.from_document(doc) for name, doc in docs.items()}
        return {f"{f.path}: {f.message}" for f in lint_audiences(audiences)}

    added = sorted(problems(documents) - problems(before))
    if added:
        raise AudienceError("; ".join(added))


class AudienceRepository:
    """CRUD over the `audiences` collection (`_id` is the audience name)."""

    def __init__(self, database: AsyncDatabase[dict[str, Any]]) -> None:
        self.collection = database[AUDIENCES]

    async def load(self) -> AudienceSet:
        """Every stored audience; invalid ones are logged and left out."""
        audiences: list[Audience] = []
        async for document in self.collection.find({}):
            try:
                audience = Audience.from_document(document)
            except ValueError as exc:
                logger.warning("audience %r left out: %s", document.get("_id"), exc)
                continue
            if not audience.condition.valid:
                problems = "; ".join(str(p) for p in audience.condition.problems)
                logger.warning("audience %r has a malformed condition: %s", audience.name, problems)
            audiences.append(audience)
        cycle = find_cycle({a.name: a.audiences for a in audiences})
        if cycle is not None:
            logger.warning(
                "audiences reference each other in a cycle (never matched): %s", " → ".join(cycle)
            )
        return AudienceSet(audiences)

    async def upsert(self, name: str, condition: Mapping[str, Any], description: str = "") -> None:
        """Create or replace the audience `name`."""
        await self.collection.replace_one(
            {"_id": name},
            {"_id": name, "condition": dict(condition), "description": description},
            upsert=True,
        )

    async def documents(self) -> dict[str, dict[str, Any]]:
        """Every stored definition, by name."""
        return {str(d["_id"]): d async for d in self.collection.find({}).sort("_id", 1)}

    async def create(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Add a new audience; refuses an existing name or an invalid definition."""
        document = audience_document(data)
        current = await self.documents()
        if document["_id"] in current:
            raise AudienceError(f"name: an audience {document['_id']!r} already exists")
        _check({**current, document["_id"]: document}, current)
        await self.collection.insert_one(document)
        return document

    async def update(self, name: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the audience `name` (which may be renamed by `data['name']`)."""
        document = audience_document(data)
        current = await self.documents()
        if name not in current:
            raise AudienceNotFound(f"name: no audience {name!r}")
        new_name = document["_id"]
        if new_name != name and new_name in current:
            raise AudienceError(f"name: an audience {new_name!r} already exists")
        proposed = {k: v for k, v in current.items() if k != name}
        proposed[new_name] = document
        _check(proposed, current)
        if new_name != name:
            await self.collection.delete_one({"_id": name})
        await self.collection.replace_one({"_id": new_name}, document, upsert=True)
        return document

    async def delete(self, name: str) -> None:
        """Delete the audience `name`; refused while other audiences reference it."""
        current = await self.documents()
        if name not in current:
            raise AudienceNotFound(f"name: no audience {name!r}")
        users = sorted(n for n, d in current.items() if name in (d.get("audiences") or []))
        if users:
            raise AudienceError(f"name: {name!r} is referenced by {', '.join(users)}")
        await self.collection.delete_one({"_id": name})

    async def import_documents(
        self, documents: Sequence[Mapping[str, Any]], *, replace_all: bool = False
    ) -> int:
        """Upsert checked documents in bulk (`replace_all` deletes the others); the count."""
        current = await self.documents()
        incoming = {str(d["_id"]): dict(d) for d in documents}
        proposed = incoming if replace_all else {**current, **incoming}
        _check(proposed, {} if replace_all else current)
        for name, document in incoming.items():
            await self.collection.replace_one({"_id": name}, document, upsert=True)
        if replace_all:
            await self.collection.delete_many({"_id": {"$nin": sorted(incoming)}})
        return len(incoming)


class AudienceCatalog(Service):
    """The current audience set, refreshed from MongoDB in the background.

    Requests read `current` without I/O; a failed refresh keeps the last set.
    """

    def __init__(self, repository: AudienceRepository, *, refresh_seconds: float = 30.0) -> None:
        self.repository = repository
        self.refresh_seconds = refresh_seconds
        self.current = AudienceSet()
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Reload the audiences now; keep the previous set if MongoDB fails."""
        try:
            self.current = await self.repository.load()
        except Exception as exc:
            logger.warning(
                "audience refresh failed, keeping %d audiences: %s", len(self.current), exc
            )

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            await self.refresh()

    async def start(self) -> None:
        """Load the audiences now, then refresh them in the background."""
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="audience-refresh")

    async def aclose(self) -> None:
        """Stop the background refresh."""
        task, self._task = self._task, None
        await cancel(task)
