"""Helpers for posting GraphQL over HTTP in tests."""

from __future__ import annotations

from typing import Any

import httpx

# The keys the test settings configure (see conftest.py).
PUBLISHABLE_KEY = "pk_test_tessera"
ADMIN_KEY = "sk_test_tessera"
INGEST = {"Authorization": f"Bearer {PUBLISHABLE_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}

PAGE_QUERY = """
query Page($slug: String!, $locale: String, $context: RequestContextInput) {
  page(slug: $slug, locale: $locale, context: $context) {
    slug title locale personalized
    blocks {
      id blockId type variantId
      decision { variantId reason ruleId score experiment bucket }
      ... on HeroBlock { heading subheading cta { label url } image { url alt } }
      ... on BannerBlock { text tone link { label url } }
      ... on RichTextBlock { html }
      ... on ProductGridBlock { title products { sku name price currency } }
      ... on CallToActionBlock { heading body button { label url } }
      ... on TestimonialBlock { quote author role rating }
      ... on GenericBlock { fields }
    }
  }
}
"""


async def graphql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    visitor: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a GraphQL request, optionally as visitor `visitor`."""
    all_headers = dict(headers or {})
    if visitor is not None:
        all_headers["X-Visitor-Id"] = visitor
    return await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=all_headers
    )


def variants(page: dict[str, Any]) -> dict[str, str]:
    """Block id → chosen variant id."""
    return {block["blockId"]: block["variantId"] for block in page["blocks"]}


def reasons(page: dict[str, Any]) -> dict[str, str]:
    """Block id → decision reason."""
    return {block["blockId"]: block["decision"]["reason"] for block in page["blocks"]}
