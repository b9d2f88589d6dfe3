"""Apollo Client, unchanged, against a live gateway (tests/npm/apollo_apq.mjs).

One Node run drives four Apollo clients with `createPersistedQueryLink`
(hashed GET, then POST) and a normalized cache across two locales; these
tests check every exchange that went over the wire and what Apollo returned.
On the main before the edge rewrite, Apollo's first hashed GET got
`400 No GraphQL query found` and gave up, and the cache showed German text
for an English query.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.npm.conftest import run_script

NOT_FOUND = {"message": "PersistedQueryNotFound", "code": "PERSISTED_QUERY_NOT_FOUND"}


@pytest.fixture(scope="module")
def apollo(node: str, gateway_url: str) -> dict[str, Any]:
    return run_script(node, "apollo_apq.mjs", gateway_url)


def ok(run: dict[str, Any]) -> dict[str, Any]:
    """A scenario that Apollo completed; else fail with its error and exchanges."""
    assert "error" not in run, f"{run['error']}\nexchanges: {run['log']}"
    return run


def headings(page: dict[str, Any]) -> list[str]:
    return [block["heading"] for block in page["blocks"] if "heading" in block]


def test_hashed_get_misses_once_then_apollo_retries_with_the_query(
    apollo: dict[str, Any],
) -> None:
    miss, retry = ok(apollo["get"]["first"])["log"]
    assert (miss["method"], miss["hasQuery"], miss["hasData"]) == ("GET", False, False)
    assert miss["errors"] == [NOT_FOUND]
    assert miss["cacheControl"] == "private, no-store"  # an edge never keeps the miss
    # Apollo resends the same hash with its query (as a POST: it may be large).
    assert (retry["method"], retry["hasQuery"], retry["status"]) == ("POST", True, 200)
    assert retry["sha256Hash"] == miss["sha256Hash"] == retry["queryDigest"]
    assert retry["errors"] == []
    page = apollo["get"]["first"]["data"]["page"]
    assert (page["slug"], page["locale"], page["cacheScope"]) == ("about", "en-US", "PUBLIC")
    assert {block["__typename"] for block in page["blocks"]} >= {"RichTextBlock"}


def test_a_second_client_gets_the_answer_from_the_hash_alone_in_one_cacheable_get(
    apollo: dict[str, Any],
) -> None:
    (only,) = ok(apollo["get"]["second"])["log"]
    assert (only["method"], only["hasQuery"], only["status"]) == ("GET", False, 200)
    assert only["sha256Hash"] == apollo["get"]["first"]["log"][0]["sha256Hash"]
    assert only["errors"] == []
    assert apollo["get"]["second"]["data"] == apollo["get"]["first"]["data"]
    # A public page over a hashed GET is what an edge cache can store.
    assert only["scope"] == "public"
    assert only["cacheControl"].startswith("public, max-age=0, s-maxage=")
    assert only["etag"]


def test_the_post_link_misses_once_then_needs_only_the_hash(apollo: dict[str, Any]) -> None:
    miss, retry = ok(apollo["post"]["first"])["log"]
    assert (miss["method"], miss["hasQuery"]) == ("POST", False)
    assert miss["errors"] == [NOT_FOUND]
    assert (retry["method"], retry["hasQuery"], retry["status"]) == ("POST", True, 200)
    assert retry["sha256Hash"] == miss["sha256Hash"] == retry["queryDigest"]
    # Another document than the GET run's, so this miss was the POST path's own.
    assert miss["sha256Hash"] != apollo["get"]["first"]["log"][0]["sha256Hash"]
    (only,) = ok(apollo["post"]["second"])["log"]
    assert (only["method"], only["hasQuery"], only["status"]) == ("POST", False, 200)
    assert only["errors"] == []
    page = apollo["post"]["second"]["data"]["page"]
    assert page == apollo["post"]["first"]["data"]["page"]
    assert page["slug"] == "outdoor"
    assert headings(page) == ["Outdoor gear"]


def test_the_documented_cache_keeps_locales_apart(apollo: dict[str, Any]) -> None:
    cache = ok(apollo["cache"])
    outdoor = cache["outdoor"]
    assert headings(outdoor["en"]["page"]) == ["Outdoor gear"]
    assert headings(outdoor["de"]["page"]) == ["Outdoor-Ausrüstung"]
    for slug in ("outdoor", "home"):
        english, german = cache[slug]["en"]["page"], cache[slug]["de"]["page"]
        assert german["locale"] == "de-DE"
        assert {b["blockId"] for b in english["blocks"]} == {b["blockId"] for b in german["blocks"]}
        assert not {b["id"] for b in english["blocks"]} & {b["id"] for b in german["blocks"]}
        # English again, from the cache alone: still English.
        assert cache[slug]["enFromCache"] == cache[slug]["en"], slug
    # Four network queries; the cache-only reads sent nothing.
    assert cache["requestsForCacheReads"] == 0
    assert [(e["status"], e["errors"]) for e in cache["log"]] == [(200, [])] * 4


def test_the_check_above_can_fail_blocks_keyed_by_the_cms_id_mix_languages(
    apollo: dict[str, Any],
) -> None:
    control = ok(apollo["control"])["outdoor"]
    assert control["enFromCache"] != control["en"]
    assert control["enFromCache"]["page"]["title"] == control["en"]["page"]["title"]
    assert headings(control["enFromCache"]["page"]) == ["Outdoor-Ausrüstung"]
