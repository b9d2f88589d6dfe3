"""Set a live Strapi 5 up as docs/cms/strapi.md says, through its admin and REST APIs.

The project gets Tessera's schema copied into `src/` (the guide's import
step); then the first admin, the second locale, a read-only API token with
`find` and `findOne` on Page (what Tessera is given), a full-access token the
tests write content with (an editor's saves), the content, and the webhook.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.cms_live.servers import ADMIN_EMAIL, ADMIN_PASSWORD, StrapiServer
from tests.cms_live.site import SECOND_LOCALE, png, site

#: The guide's webhook events.
WEBHOOK_EVENTS = (
    "entry.create",
    "entry.update",
    "entry.delete",
    "entry.publish",
    "entry.unpublish",
    "media.update",
    "media.delete",
)


def ok(response: httpx.Response) -> Any:
    """The body's `data` of a successful Strapi response; AssertionError with the body otherwise."""
    assert response.status_code < 300, f"{response.request.url}: {response.text[:2000]}"
    return response.json().get("data") if response.content else None


@dataclass
class StrapiSite:
    """A set-up Strapi: admin and editor clients, Tessera's token and the documents."""

    server: StrapiServer
    admin: httpx.Client
    editor: httpx.Client
    token: str
    documents: dict[str, str] = field(default_factory=dict)
    image_id: int = 0
    webhook_id: str = ""

    @property
    def url(self) -> str:
        """Where Strapi serves."""
        return self.server.url

    def update(
        self,
        slug: str,
        data: dict[str, Any],
        *,
        locale: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """PUT a page document (published unless `status=draft`), as an editor's save."""
        params = {k: v for k, v in (("locale", locale), ("status", status)) if v}
        body = ok(
            self.editor.put(
                f"/api/pages/{self.documents[slug]}", json={"data": data}, params=params
            )
        )
        return dict(body)

    def create_webhook(self, url: str, secret: str) -> None:
        """Settings -> Webhooks: Tessera's URL, the guide's events, the bearer header."""
        data = ok(
            self.admin.post(
                "/admin/webhooks",
                json={
                    "name": "Tessera",
                    "url": url,
                    "headers": {"Authorization": f"Bearer {secret}"},
                    "events": list(WEBHOOK_EVENTS),
                },
            )
        )
        self.webhook_id = str(data["id"])


def set_up(folder: Path, node_env: str = "development") -> StrapiSite:
    """Start Strapi with Tessera's schema, then enter tokens, locale and content."""
    server = StrapiServer(folder, node_env)
    server.create_project()
    server.start()
    try:
        registered = ok(
            httpx.post(
                f"{server.url}/admin/register-admin",
                json={
                    "firstname": "Tessera",
                    "lastname": "Tests",
                    "email": ADMIN_EMAIL,
                    "password": ADMIN_PASSWORD,
                },
                timeout=30,
            )
        )
        admin = httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {registered['token']}"},
            timeout=30,
        )
        ok(
            admin.post(
                "/i18n/locales",
                json={
                    "name": "German (Germany) (de-DE)",
                    "code": SECOND_LOCALE,
                    "isDefault": False,
                },
            )
        )
        read = _token(
            admin,
            "Tessera",
            "custom",
            ["api::page.page.find", "api::page.page.findOne", "api::product.product.find"],
        )
        write = _token(admin, "Tests (editor)", "full-access", [])
        editor = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {write}"}, timeout=30
        )
        live = StrapiSite(server, admin, editor, read)
        upload = editor.post(
            "/api/upload",
            files={"files": ("hero.png", png(16, 9), "image/png")},
            data={"fileInfo": '{"alternativeText": "Trail at dawn"}'},
        )
        assert upload.status_code < 300, upload.text[:2000]
        live.image_id = int(upload.json()[0]["id"])  # the upload API answers a bare list
        for slug, page in site().items():
            create_page(live, slug, page)
        # A draft edit of a published page: preview shows it, the published page does not.
        live.update("home", {"title": "Home (draft)"}, status="draft")
    except BaseException:
        server.stop()  # a failed setup must not leave the server running
        raise
    return live


def _token(admin: httpx.Client, name: str, kind: str, permissions: list[str]) -> str:
    body: dict[str, Any] = {"name": name, "type": kind, "lifespan": None, "description": ""}
    if kind == "custom":
        body["permissions"] = permissions
    return str(ok(admin.post("/admin/api-tokens", json=body))["accessKey"])


def blocks_of(page: dict[str, Any], image_id: int | None, locale: str | None) -> list[Any]:
    """The page's dynamic zone, with `locale`'s field overrides applied."""
    blocks = []
    for block in page["blocks"]:
        variants = []
        for variant in block["variants"]:
            item = copy.deepcopy({k: v for k, v in variant.items() if k != "localized"})
            if locale is not None:
                item["fields"] = {**item["fields"], **variant.get("localized", {}).get(locale, {})}
            if image_id and block["blockId"] == "hero" and variant["variantId"] == "default":
                item["image"] = image_id
            variants.append(item)
        blocks.append(
            {
                "__component": "tessera.block",
                "blockId": block["blockId"],
                "type": block["type"],
                "variants": variants,
            }
        )
    return blocks


def create_page(live: StrapiSite, slug: str, page: dict[str, Any]) -> None:
    """Create and publish a page, then its translations (same block and variant ids)."""
    data: dict[str, Any] = {
        "slug": slug,
        "title": page["title"],
        "blocks": blocks_of(page, live.image_id, None),
    }
    if page.get("locales"):
        data["locales"] = page["locales"]
    created = ok(live.editor.post("/api/pages", json={"data": data}))
    live.documents[slug] = str(created["documentId"])
    for code, title in (page.get("titles") or {}).items():
        live.update(
            slug,
            # The slug is not localized, yet a new locale's version must repeat it.
            {"slug": slug, "title": title, "blocks": blocks_of(page, live.image_id, code)},
            locale=code,
        )


def delete_page(live: StrapiSite, slug: str) -> None:
    """Delete a test's page in every locale."""
    ok(live.editor.delete(f"/api/pages/{live.documents.pop(slug)}", params={"locale": "*"}))
