"""A CMS adapter over a folder of YAML or JSON files (the embedded default).

Layout (documented for editors in docs/content.md)::

    CONTENT_DIR/
      pages/<slug>.yaml       a page: slug, title, locales, blocks
      blocks/<id>.yaml        a shared block, used from pages as `- ref: <id>`
      drafts/pages/...        unpublished versions, served only in preview
      drafts/blocks/...
      catalog/<name>.yaml     products (`products: [...]`), read by `fetch_catalog`

Files may be `.yaml`, `.yml` or `.json`. A slug may contain `/` to nest pages
in folders; anything else that could escape the folder is refused.
"""

from __future__ import annotations

import asyncio
import errno
import re
from pathlib import Path
from typing import Any

import yaml

from blocks.catalog import Catalog, merge_catalogs, parse_catalog
from blocks.parse import ContentError, ParsedPage, parse_page
from cms_adapters.base import ChangedKeys, CMSAdapter, WebhookRequest
from cms_adapters.errors import (
    CatalogNotConfigured,
    CMSUnavailable,
    ContentNotFound,
    MalformedContent,
)
from cms_adapters.webhooks import require_secret
from common.json_input import JSONInputError, loads

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)*$")
_SUFFIXES = (".yaml", ".yml", ".json")


#: libyaml's safe loader when PyYAML was built with it: a 200-product catalogue loads in
#: ~15 ms instead of ~140 ms. Same documents, same safety.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(path: Path, fast: bool = False) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return loads(text, strict=False)
    if fast:
        return yaml.load(text, Loader=_SafeLoader)
    return yaml.safe_load(text)


class FilesystemAdapter(CMSAdapter):
    """Reads pages and shared blocks from `root`; every read hits the disk."""

    name = "filesystem"

    def __init__(self, root: Path | str, *, webhook_secret: str = "") -> None:
        self.root = Path(root)
        self._webhook_secret = webhook_secret

    def _find(self, folder: str, key: str, preview: bool = False) -> Path | None:
        roots = (self.root / "drafts", self.root) if preview else (self.root,)
        for root in roots:
            for suffix in _SUFFIXES:
                candidate = root / folder / f"{key}{suffix}"
                try:
                    if candidate.is_file():
                        return candidate
                except OSError as exc:
                    if exc.errno != errno.ENAMETOOLONG:
                        raise
                    # A name the file system cannot hold names no file.
        return None

    def _read(self, path: Path, entry: str, fast: bool = False) -> Any:
        try:
            return _load(path, fast)
        except (yaml.YAMLError, JSONInputError, UnicodeDecodeError) as exc:
            raise MalformedContent(self.name, f"not valid YAML/JSON: {exc}", entry=entry) from None
        except OSError as exc:
            raise CMSUnavailable(self.name, f"cannot read {path}: {exc}", entry=entry) from None

    def _resolve_refs(self, document: Any, entry: str, preview: bool) -> Any:
        if not isinstance(document, dict) or not isinstance(document.get("blocks"), list):
            return document
        blocks: list[Any] = []
        for index, item in enumerate(document["blocks"]):
            if isinstance(item, dict) and set(item) == {"ref"}:
                ref = item["ref"]
                valid = isinstance(ref, str) and _SLUG.fullmatch(ref) is not None
                path = self._find("blocks", ref, preview) if valid else None
                if path is None:
                    raise MalformedContent(
                        self.name,
                        f"shared block {ref!r} does not exist under blocks/",
                        entry=entry,
                        field=f"blocks[{index}].ref",
                    )
                blocks.append(self._read(path, f"blocks/{ref}"))
            else:
                blocks.append(item)
        return {**document, "blocks": blocks}

    def _fetch(self, slug: str, preview: bool) -> ParsedPage:
        entry = f"pages/{slug}"
        path = self._find("pages", slug, preview) if _SLUG.fullmatch(slug) else None
        if path is None:
            raise ContentNotFound(self.name, f"no page with slug {slug!r}", entry=slug)
        document = self._resolve_refs(self._read(path, entry), entry, preview)
        try:
            parsed = parse_page(document, source=entry)
        except ContentError as exc:
            raise MalformedContent(self.name, exc.message, entry=entry, field=exc.path) from None
        if parsed.page.slug != slug:
            raise MalformedContent(
                self.name,
                f"slug {parsed.page.slug!r} does not match the file name {slug!r}",
                entry=entry,
                field="slug",
            )
        return parsed

    async def fetch_page(self, slug: str, *, preview: bool = False) -> ParsedPage:
        """Read and parse `pages/<slug>.*` (drafts first in preview), inlining shared blocks."""
        return await asyncio.to_thread(self._fetch, slug, preview)

    def _list(self) -> list[str]:
        pages = self.root / "pages"
        slugs = {
            path.relative_to(pages).with_suffix("").as_posix()
            for path in pages.rglob("*")
            if path.suffix in _SUFFIXES and path.is_file()
        }
        return sorted(slug for slug in slugs if _SLUG.fullmatch(slug))

    async def list_pages(self) -> list[str]:
        """Every page slug under `pages/`."""
        if not (self.root / "pages").is_dir():
            raise CMSUnavailable(self.name, f"{self.root}/pages is not a folder")
        return await asyncio.to_thread(self._list)

    def _catalog(self) -> Catalog:
        folder = self.root / "catalog"
        if not folder.is_dir():
            raise CatalogNotConfigured(self.name, f"no catalog/ folder in {self.root}")
        parts: list[Catalog] = []
        for path in sorted(p for p in folder.iterdir() if p.suffix in _SUFFIXES and p.is_file()):
            entry = f"catalog/{path.name}"
            document = self._read(path, entry, fast=True)
            products = document.get("products") if isinstance(document, dict) else None
            if not isinstance(products, list):
                raise MalformedContent(
                    self.name, "must hold a list of products", entry=entry, field="products"
                )
            parts.append(parse_catalog(products, source=self.name, path=f"{entry}:products"))
        return merge_catalogs(parts, source=self.name)

    async def fetch_catalog(self) -> Catalog:
        """Every product under `catalog/` (each file: `products: [...]`)."""
        return await asyncio.to_thread(self._catalog)

    def parse_webhook(self, request: WebhookRequest) -> ChangedKeys:
        """A deploy hook: `Authorization: Bearer <secret>`, body `{"pages": [], "blocks": []}`.

        An empty object means "everything changed" (e.g. after a `git pull`).
        """
        require_secret(
            self.name, request.bearer_token(), self._webhook_secret, "Authorization bearer token"
        )
        payload = request.json(self.name)
        keys: dict[str, frozenset[str]] = {}
        for name in ("pages", "blocks"):
            value = payload.get(name, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise MalformedContent(
                    self.name, "must be a list of non-empty strings", entry="webhook", field=name
                )
            keys[name] = frozenset(value)
        changed = ChangedKeys(pages=keys["pages"], blocks=keys["blocks"])
        return ChangedKeys(everything=True) if changed.empty else changed
