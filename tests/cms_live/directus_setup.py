"""Set a live Directus up as docs/cms/directus.md says, through its REST API.

Each step is the API form of a step in the guide: import the snapshot (twice),
a read-only policy for Tessera's token (Directus 11 attaches permissions to
policies, not roles), the Public policy's read access to files (so browsers
load image URLs), the second language, the content, and the Flow that calls
Tessera's webhook.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.cms_live.servers import DirectusServer
from tests.cms_live.site import SECOND_LOCALE, png, site

#: The collections Tessera reads (docs/cms/directus.md, "Permissions").
READ_COLLECTIONS = (
    "pages",
    "pages_blocks",
    "blocks",
    "block_variants",
    "languages",
    "pages_translations",
    "block_variants_translations",
    "directus_files",
    "products",  # the catalogue recommendations draw from
)
#: The collections whose changes the Flow reports.
FLOW_COLLECTIONS = (
    "pages",
    "pages_blocks",
    "blocks",
    "block_variants",
    "pages_translations",
    "block_variants_translations",
)
PUBLIC_POLICY = "abf8a154-5b1c-4a46-ac9c-7300570f4f17"  # Directus 11's built-in Public policy


def ok(response: httpx.Response) -> Any:
    """The `data` of a successful Directus response; AssertionError with the body otherwise."""
    assert response.status_code < 300, f"{response.request.url}: {response.text[:2000]}"
    return response.json()["data"] if response.content else None


@dataclass
class DirectusSite:
    """A set-up Directus: its admin client, Tessera's token and the ids of what it holds."""

    server: DirectusServer
    admin: httpx.Client
    token: str
    applies: list[str]
    page_ids: dict[str, int] = field(default_factory=dict)
    block_ids: dict[str, int] = field(default_factory=dict)
    variant_ids: dict[tuple[str, str], int] = field(default_factory=dict)
    junction_ids: dict[str, list[int]] = field(default_factory=dict)
    file_id: str = ""
    flow_id: str = ""

    @property
    def url(self) -> str:
        """Where Directus serves."""
        return self.server.url

    def page(self, slug: str) -> dict[str, Any]:
        """The stored page item (admin view)."""
        data = ok(self.admin.get(f"/items/pages/{self.page_ids[slug]}", params={"fields": "*"}))
        return dict(data)

    def update(self, collection: str, key: int | str, fields: dict[str, Any]) -> None:
        """PATCH one item as the admin (an editor's save)."""
        ok(self.admin.patch(f"/items/{collection}/{key}", json=fields))

    def create_flow(self, webhook_url: str, secret: str) -> None:
        """The guide's Flow: Event Hook (action) on Tessera's collections -> Webhook request."""
        flow = ok(
            self.admin.post(
                "/flows",
                json={
                    "name": "Tessera: invalidate",
                    "icon": "bolt",
                    "status": "active",
                    "trigger": "event",
                    "accountability": "all",
                    "options": {
                        "type": "action",
                        "scope": ["items.create", "items.update", "items.delete"],
                        "collections": list(FLOW_COLLECTIONS),
                    },
                },
            )
        )
        operation = ok(
            self.admin.post(
                "/operations",
                json={
                    "flow": flow["id"],
                    "key": "tessera_webhook",
                    "name": "Tessera webhook",
                    "type": "request",
                    "position_x": 19,
                    "position_y": 1,
                    "options": {
                        "method": "POST",
                        "url": webhook_url,
                        "headers": [{"header": "Authorization", "value": f"Bearer {secret}"}],
                        "body": "{{$trigger}}",
                    },
                },
            )
        )
        ok(self.admin.patch(f"/flows/{flow['id']}", json={"operation": operation["id"]}))
        self.flow_id = str(flow["id"])

    def flow_runs(self) -> list[dict[str, Any]]:
        """The Flow's logged runs (Directus keeps them as activity revisions)."""
        rows = ok(
            self.admin.get(
                "/activity",
                params={
                    "filter[collection][_eq]": "directus_flows",
                    "filter[item][_eq]": self.flow_id,
                    "fields": "revisions.data",
                    "sort": "-id",
                    "limit": 50,
                },
            )
        )
        data = [rev["data"] for row in rows for rev in row.get("revisions") or []]
        # The Flow's own create/update revisions are there too; runs have `steps`.
        return [run for run in data if isinstance(run, dict) and "steps" in run]


def set_up(folder: Path) -> DirectusSite:
    """Start Directus, import the model twice, and enter permissions, language and content."""
    server = DirectusServer(folder)
    server.bootstrap()
    applies = [server.apply_snapshot(), server.apply_snapshot()]
    server.start()
    admin = httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.admin_token}"},
        timeout=30,
    )
    token = secrets.token_hex(16)
    live = DirectusSite(server, admin, token, applies)
    try:
        _policies(live)
        _language(live)
        _upload(live)
        for slug, page in site().items():
            _create_page(live, slug, page, status="published")
    except BaseException:
        admin.close()
        server.stop()  # a failed setup must not leave the server running
        raise
    return live


def _policies(live: DirectusSite) -> None:
    """A read-only policy for Tessera's user, and files readable by the Public policy."""
    admin = live.admin
    policy = ok(
        admin.post(
            "/policies",
            json={"name": "Tessera (read)", "icon": "visibility", "app_access": False},
        )
    )
    for collection in READ_COLLECTIONS:
        ok(
            admin.post(
                "/permissions",
                json={
                    "policy": policy["id"],
                    "collection": collection,
                    "action": "read",
                    "fields": ["*"],
                    "permissions": {},
                },
            )
        )
    # Revisions of Tessera's collections only: how a webhook learns a renamed page's old slug.
    ok(
        admin.post(
            "/permissions",
            json={
                "policy": policy["id"],
                "collection": "directus_revisions",
                "action": "read",
                "fields": ["*"],
                "permissions": {"collection": {"_in": list(FLOW_COLLECTIONS)}},
            },
        )
    )
    role = ok(admin.post("/roles", json={"name": "Tessera", "icon": "hub"}))
    ok(admin.post("/access", json={"role": role["id"], "policy": policy["id"]}))
    ok(
        admin.post(
            "/users",
            json={
                "email": "tessera@example.com",
                "first_name": "Tessera",
                "role": role["id"],
                "token": live.token,
            },
        )
    )
    ok(
        admin.post(
            "/permissions",
            json={
                "policy": PUBLIC_POLICY,
                "collection": "directus_files",
                "action": "read",
                "fields": ["*"],
                "permissions": {},
            },
        )
    )


def _language(live: DirectusSite) -> None:
    for code, name in (("en-US", "English"), (SECOND_LOCALE, "Deutsch")):
        ok(live.admin.post("/items/languages", json={"code": code, "name": name}))


def _upload(live: DirectusSite) -> None:
    data = ok(
        live.admin.post(
            "/files",
            data={"title": "Hero", "description": "Trail at dawn"},
            files={"file": ("hero.png", png(16, 9), "image/png")},
        )
    )
    live.file_id = str(data["id"])


def variant_item(variant: dict[str, Any], file_id: str | None) -> dict[str, Any]:
    """A `block_variants` item for an editor-vocabulary variant (translations nested)."""
    item = {k: v for k, v in variant.items() if k != "localized"}
    if file_id is not None:
        item["image"] = file_id
    translations = [
        {"languages_code": code, "fields": fields}
        for code, fields in (variant.get("localized") or {}).items()
    ]
    if translations:
        item["translations"] = translations
    return item


def _create_page(live: DirectusSite, slug: str, page: dict[str, Any], status: str) -> None:
    """Create a page with nested blocks and variants, as the API creates them (no `sort`)."""
    blocks = []
    for block in page["blocks"]:
        variants = []
        for variant in block["variants"]:
            hero_image = block["blockId"] == "hero" and variant["variantId"] == "default"
            variants.append(variant_item(variant, live.file_id if hero_image else None))
        item = {"blockId": block["blockId"], "type": block["type"], "variants": variants}
        blocks.append({"collection": "blocks", "item": item})
    body: dict[str, Any] = {
        "slug": slug,
        "title": page["title"],
        "status": status,
        "blocks": blocks,
    }
    if page.get("locales"):
        body["locales"] = page["locales"]
    titles = page.get("titles") or {}
    if titles:
        body["translations"] = [{"languages_code": c, "title": t} for c, t in titles.items()]
    created = ok(
        live.admin.post(
            "/items/pages",
            json=body,
            params={"fields": "id,blocks.id,blocks.item:blocks.id,blocks.item:blocks.blockId"},
        )
    )
    live.page_ids[slug] = int(created["id"])
    live.junction_ids[slug] = [int(row["id"]) for row in created["blocks"]]
    for row in created["blocks"]:
        live.block_ids[row["item"]["blockId"]] = int(row["item"]["id"])
    variants = ok(
        live.admin.get(
            "/items/block_variants",
            params={
                "filter[block][_in]": ",".join(str(r["item"]["id"]) for r in created["blocks"]),
                "fields": "id,variantId,block.blockId",
                "limit": -1,
            },
        )
    )
    for row in variants:
        live.variant_ids[(row["block"]["blockId"], row["variantId"])] = int(row["id"])


def create_page(live: DirectusSite, slug: str, page: dict[str, Any], status: str) -> None:
    """Create one more page (a test's own), with its blocks and variants."""
    _create_page(live, slug, page, status)


def delete_page(live: DirectusSite, slug: str) -> None:
    """Delete a test's page (its junction rows go with it)."""
    ok(live.admin.delete(f"/items/pages/{live.page_ids.pop(slug)}"))
