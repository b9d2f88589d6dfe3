"""deploy/varnish/default.vcl in a real varnishd, before an origin keeping the header contract.

Every test uses its own page slugs, so the session's varnishd carries over no
state that matters; the origin counts the requests that reached it per URL.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.edge.conftest import OriginProcess, cookie_header, edge_client, page_url, unique
from tests.edge.origin import edge_key, group_of
from tests.edge.varnish import DEFAULT_VCL, Varnish, find_binary, free_port

pytestmark = pytest.mark.slow


def page_of(response: httpx.Response) -> dict[str, Any]:
    page: dict[str, Any] = response.json()["data"]["page"]
    return page


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """The cookies a response sets, by name."""
    found: dict[str, str] = {}
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        found[name.strip()] = rest.split(";", 1)[0]
    return found


def visitors_by_group(prefix: str, count: int) -> dict[str, list[str]]:
    """`count` visitor ids, grouped by the audience group the origin puts them in."""
    groups: dict[str, list[str]] = {}
    for index in range(count):
        visitor = f"{prefix}-{index}"
        groups.setdefault(group_of(visitor), []).append(visitor)
    return groups


def test_the_shipped_vcl_compiles(tmp_path: Path) -> None:
    # default.vcl as shipped (backend 127.0.0.1:8000), not the test wrapper.
    result = subprocess.run(
        [find_binary("varnishd"), "-C", "-n", str(tmp_path / "n"), "-f", str(DEFAULT_VCL)],
        capture_output=True,
        cwd=DEFAULT_VCL.parent,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]


async def test_an_anonymous_page_is_a_hit_after_its_first_miss(
    edge: httpx.AsyncClient, origin: OriginProcess
) -> None:
    url = page_url(unique("home"))
    first = await edge.get(url)
    assert first.status_code == 200
    assert first.headers["x-cache"] == "MISS"
    assert page_of(first)["scope"] == "public"
    # Whoever asks next, with whatever cookies, gets the same stored answer.
    for cookies in ({}, {"tsr_vid": "someone"}, {"tsr_vid": "p-1", "tsr_ek": edge_key("g1")}):
        again = await edge.get(url, headers=cookie_header(**cookies))
        assert again.headers["x-cache"] == "HIT"
        assert again.content == first.content
        assert "set-cookie" not in again.headers
    head = await edge.head(url)
    assert head.status_code == 200
    assert head.headers["x-cache"] == "HIT"
    assert head.content == b""
    assert origin.hits()[url] == 1


async def test_hashed_and_query_gets_are_cached_whatever_the_parameter_order(
    edge: httpx.AsyncClient, origin: OriginProcess
) -> None:
    slug = unique("apq")
    hashed = page_url(slug)
    assert (await edge.get(hashed)).headers["x-cache"] == "MISS"
    # The same parameters in another order are the same page.
    path, _, query = hashed.partition("?")
    reordered = path + "?" + "&".join(reversed(query.split("&")))
    assert reordered != hashed
    assert (await edge.get(reordered)).headers["x-cache"] == "HIT"
    queried = page_url(slug, apq=False)
    assert (await edge.get(queried)).headers["x-cache"] == "MISS"
    assert (await edge.get(queried)).headers["x-cache"] == "HIT"
    hits = origin.hits()
    assert (hits[hashed], hits[queried]) == (1, 1)


async def test_clients_never_see_surrogate_keys_but_get_etags_and_304s(
    edge: httpx.AsyncClient,
) -> None:
    url = page_url(unique("tags"))
    for _ in range(2):
        response = await edge.get(url)
        assert "surrogate-key" not in response.headers
        assert "xkey" not in response.headers
        assert "x-tessera-swr" not in response.headers
        assert response.headers["cache-control"].startswith("public, max-age=0, s-maxage=60")
    etag = response.headers["etag"]
    assert etag.startswith('"')
    revalidated = await edge.get(url, headers={"if-none-match": etag})
    assert revalidated.status_code == 304
    assert revalidated.headers["x-cache"] == "HIT"


async def test_audience_pages_are_hits_per_edge_key_and_never_cross_keys(
    edge: httpx.AsyncClient, origin: OriginProcess
) -> None:
    slug = unique("members")
    url = page_url(slug, "audience")
    groups = visitors_by_group(slug, 24)
    assert len(groups) >= 3
    for group, visitors in groups.items():
        for index, visitor in enumerate(visitors):
            # Without a key: a private answer that hands out the visitor's key.
            bare = await edge.get(url, headers=cookie_header(tsr_vid=visitor))
            assert page_of(bare) | {"version": 0} == {
                "slug": slug,
                "scope": "private",
                "visitor": visitor,
                "group": None,
                "version": 0,
            }
            assert bare.headers["x-cache"] == "MISS"
            key = set_cookies(bare)["tsr_ek"]
            assert key == edge_key(group)
            keyed = await edge.get(url, headers=cookie_header(tsr_vid=visitor, tsr_ek=key))
            assert page_of(keyed)["scope"] == "audience"
            assert page_of(keyed)["group"] == group
            assert keyed.headers["x-cache"] == ("MISS" if index == 0 else "HIT")
            assert keyed.headers["x-tessera-edge-key"] == key
            assert "set-cookie" not in keyed.headers
    # One miss per visitor without a key, one per group with one.
    assert origin.hits()[url] == 24 + len(groups)


async def test_a_client_cannot_pick_an_edge_key_by_header_or_forge_one(
    edge: httpx.AsyncClient,
) -> None:
    slug = unique("vip")
    url = page_url(slug, "audience")
    member = next(iter(visitors_by_group(slug, 8).values()))[0]
    key = edge_key(group_of(member))
    stored = await edge.get(url, headers=cookie_header(tsr_vid=member, tsr_ek=key))
    assert page_of(stored)["scope"] == "audience"
    outsider = "outsider-" + slug
    # The header is the edge's own: a client sending it is ignored...
    by_header = await edge.get(
        url, headers={"x-tessera-edge-key": key} | cookie_header(tsr_vid=outsider)
    )
    assert page_of(by_header)["visitor"] == outsider
    assert by_header.headers["x-cache"] == "MISS"
    # ...and a forged or malformed cookie reaches the origin, which refuses it.
    for forged in ("forged-key", "a" * 300, "bad key"):
        response = await edge.get(url, headers=cookie_header(tsr_vid=outsider, tsr_ek=forged))
        assert page_of(response)["visitor"] == outsider
        assert response.headers["x-cache"] == "MISS"


async def test_two_tsr_ek_cookies_cannot_file_one_groups_page_under_another_key(
    edge: httpx.AsyncClient,
) -> None:
    slug = unique("dup")
    url = page_url(slug, "audience")
    groups = visitors_by_group(slug, 16)
    (group_a, (visitor_a, *_)), (group_b, (visitor_b, *_)) = list(groups.items())[:2]
    key_a, key_b = edge_key(group_a), edge_key(group_b)
    # Visitor b presents a's key first and its own last (the origin reads the last).
    stale = await edge.get(url, headers=cookie_header(tsr_vid=visitor_b, tsr_ek=key_a))
    assert page_of(stale)["visitor"] == visitor_b
    both = f"tsr_ek={key_a}; tsr_vid={visitor_b}; tsr_ek={key_b}"
    answer = await edge.get(url, headers={"cookie": both})
    assert page_of(answer)["group"] in (None, group_b)
    own = await edge.get(url, headers=cookie_header(tsr_vid=visitor_a, tsr_ek=key_a))
    assert page_of(own)["group"] == group_a
    again = await edge.get(url, headers=cookie_header(tsr_vid=visitor_a, tsr_ek=key_a))
    assert page_of(again)["group"] == group_a


async def test_private_answers_are_never_stored_nor_shared_among_many_clients(
    edge: httpx.AsyncClient, origin: OriginProcess
) -> None:
    url = page_url(unique("account"), "private")
    visitors = [f"acct-{index}" for index in range(40)]

    async def visit(visitor: str | None) -> tuple[str | None, httpx.Response]:
        headers = cookie_header(tsr_vid=visitor) if visitor else {}
        return visitor, await edge.get(url, headers=headers)

    # All at once: requests for one URL that Varnish would otherwise coalesce.
    results = await asyncio.gather(*(visit(v) for v in visitors * 3 + [None] * 40))
    minted: set[str] = set()
    for visitor, response in results:
        assert response.headers["cache-control"] == "private, no-store"
        assert response.headers["x-cache"] == "MISS"
        if visitor is None:
            visitor = set_cookies(response)["tsr_vid"]
            assert visitor not in minted
            minted.add(visitor)
        else:
            assert "tsr_vid" not in set_cookies(response)
        assert page_of(response)["visitor"] == visitor
    assert origin.hits()[url] == len(results)


@pytest.mark.parametrize(
    ("scope", "status", "key"),
    [
        ("private", 200, False),
        ("private", 200, True),
        ("public", 503, False),
        ("public", 503, True),
        ("audience", 200, False),
    ],
)
async def test_requests_for_a_page_that_is_not_stored_go_to_the_origin_side_by_side(
    edge: httpx.AsyncClient, origin: OriginProcess, scope: str, status: int, key: bool
) -> None:
    # Coalescing waits for one fetch to share it; an answer that cannot be shared
    # must not leave the others queued one behind another.
    url = page_url(unique("slow"), scope, delay=0.3, status=status)
    cookies = {"tsr_ek": edge_key("g1")} if key else {}

    async def visit(index: int) -> httpx.Response:
        return await edge.get(url, headers=cookie_header(tsr_vid=f"slow-{index}", **cookies))

    await visit(0)
    answers = await asyncio.gather(*(visit(index) for index in range(1, 9)))
    assert [answer.status_code for answer in answers] == [status] * 8
    assert origin.hits()[url] == 9
    assert origin.peak()[url] > 1


@pytest.mark.parametrize(
    "scope", ["public-cookie", "public-nostore", "public-unlabeled", "audience-wrongkey"]
)
async def test_responses_the_contract_forbids_to_share_are_not_stored(
    edge: httpx.AsyncClient, origin: OriginProcess, scope: str
) -> None:
    slug = unique(scope)
    url = page_url(slug, scope)
    member = next(iter(visitors_by_group(slug, 4).values()))[0]
    key = edge_key(group_of(member))
    for index in range(3):
        visitor = f"{member}-{index}" if scope.startswith("public") else member
        response = await edge.get(url, headers=cookie_header(tsr_vid=visitor, tsr_ek=key))
        assert response.headers["x-cache"] == "MISS"
        if scope == "public-cookie":
            assert set_cookies(response)["tsr_vid"] == visitor
    assert origin.hits()[url] == 3


async def test_an_audience_answer_without_vary_is_still_keyed_by_the_edge_key(
    edge: httpx.AsyncClient,
) -> None:
    slug = unique("novary")
    url = page_url(slug, "audience-novary")
    groups = visitors_by_group(slug, 16)
    for group, visitors in groups.items():
        for visitor in visitors:
            response = await edge.get(
                url, headers=cookie_header(tsr_vid=visitor, tsr_ek=edge_key(group))
            )
            assert page_of(response)["group"] == group
            assert "X-Tessera-Edge-Key" in response.headers["vary"]


async def test_private_visitors_do_not_turn_other_keys_hits_into_misses(
    edge: httpx.AsyncClient, origin: OriginProcess
) -> None:
    # One URL: private for visitors whose id starts with p-, audience for the rest.
    slug = unique("mixed")
    url = page_url(slug, "mixed")
    members = {group: visitors[0] for group, visitors in visitors_by_group(slug, 24).items()}
    last = sorted(members)[-1]
    for group, visitor in members.items():
        if group != last:
            response = await edge.get(
                url, headers=cookie_header(tsr_vid=visitor, tsr_ek=edge_key(group))
            )
            assert page_of(response)["group"] == group
    # Private visitors reach the origin: one holding the key of the group not cached
    # yet, one without a key. Each leaves a hit-for-miss marker behind.
    private = next(f"p-{slug}-{i}" for i in range(100) if group_of(f"p-{slug}-{i}") == last)
    for cookies in ({"tsr_ek": edge_key(last)}, {}):
        response = await edge.get(url, headers=cookie_header(tsr_vid=private, **cookies))
        assert page_of(response)["visitor"] == private
        assert response.headers["x-cache"] == "MISS"
    # Neither marker stands in front of another key's copy.
    for group, visitor in members.items():
        if group != last:
            response = await edge.get(
                url, headers=cookie_header(tsr_vid=visitor, tsr_ek=edge_key(group))
            )
            assert (page_of(response)["group"], response.headers["x-cache"]) == (group, "HIT")
    # The marker's own key: fetched once, then stored like any other.
    for expected in ("MISS", "HIT"):
        response = await edge.get(
            url, headers=cookie_header(tsr_vid=members[last], tsr_ek=edge_key(last))
        )
        assert (page_of(response)["group"], response.headers["x-cache"]) == (last, expected)


async def test_forged_edge_keys_do_not_pile_up_objects(
    edge: httpx.AsyncClient, varnish: Varnish
) -> None:
    url = page_url(unique("flood"), "audience")
    before = varnish.stat("MAIN.n_objectcore")["MAIN.n_objectcore"]
    for index in range(150):
        # Half as known visitors, half as new ones (whose answer sets tsr_vid first).
        cookies = {"tsr_ek": f"forged{index}"} | ({"tsr_vid": "x"} if index % 2 else {})
        response = await edge.get(url, headers=cookie_header(**cookies))
        assert page_of(response)["scope"] == "private"
        assert "tsr_ek" in set_cookies(response)
    await asyncio.sleep(1.1)  # varnishstat's counters lag by up to a second
    after = varnish.stat("MAIN.n_objectcore")["MAIN.n_objectcore"]
    assert after - before < 10


async def test_posts_pass_even_for_a_cacheable_page(
    edge: httpx.AsyncClient, origin: OriginProcess
) -> None:
    slug = unique("post")
    body = {"query": "{ page { slug } }", "variables": {"slug": slug, "scope": "public"}}
    for _ in range(3):
        response = await edge.post("/graphql", json=body)
        assert response.status_code == 200
        assert response.headers["x-cache"] == "MISS"
    assert origin.hits()["/graphql"] >= 3


@pytest.mark.parametrize("path", ["/v1/events", "/webhooks/contentful", "/metrics", "/healthz"])
async def test_other_routes_pass_whatever_their_headers_say(
    edge: httpx.AsyncClient, origin: OriginProcess, path: str
) -> None:
    before = origin.hits().get(path, 0)
    for _ in range(2):
        response = await edge.get(path)
        assert response.status_code == 200
        assert response.headers["x-cache"] == "MISS"
    if path != "/healthz":  # the origin does not count its health checks
        assert origin.hits()[path] == before + 2


async def test_each_media_type_is_stored_apart(edge: httpx.AsyncClient) -> None:
    url = page_url(unique("accept"))
    graphql_response = {"accept": "application/graphql-response+json, application/json;q=0.9"}
    for headers, media_type in (
        ({"accept": "application/json"}, "application/json"),
        (graphql_response, "application/graphql-response+json"),
        ({}, "application/json"),
    ):
        for expected in ("MISS", "HIT") if headers != {} else ("HIT",):
            response = await edge.get(url, headers=headers)
            assert response.headers["content-type"].startswith(media_type)
            assert response.headers["x-cache"] == expected


async def test_cors_origins_are_stored_apart_and_unlisted_origins_share_the_plain_copy(
    edge: httpx.AsyncClient,
) -> None:
    url = page_url(unique("cors"))
    plain = await edge.get(url)
    assert "access-control-allow-origin" not in plain.headers
    listed = "http://localhost:3000"
    for expected in ("MISS", "HIT"):
        response = await edge.get(url, headers={"origin": listed})
        assert response.headers["access-control-allow-origin"] == listed
        assert response.headers["x-cache"] == expected
    unlisted = await edge.get(url, headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in unlisted.headers
    assert unlisted.headers["x-cache"] == "HIT"


async def purge(client: httpx.AsyncClient, keys: str) -> httpx.Response:
    return await client.request("PURGE", "/", headers={"xkey-purge": keys})


async def test_a_purge_by_surrogate_key_removes_exactly_the_tagged_objects(
    edge: httpx.AsyncClient,
) -> None:
    one, two = unique("purge-one"), unique("purge-two")
    group_visitors = visitors_by_group(one, 16)
    audience = page_url(one, "audience")
    for group, visitors in list(group_visitors.items())[:2]:
        await edge.get(audience, headers=cookie_header(tsr_vid=visitors[0], tsr_ek=edge_key(group)))
    cached = [page_url(one), page_url(two)]
    for url in cached:
        await edge.get(url)
    await edge.get(cached[0], headers={"accept": "application/graphql-response+json"})
    # page:one tags its public copy in two media types and two audience copies.
    response = await purge(edge, f"page:{one}")
    assert response.status_code == 200
    assert response.json() == {"purged": 4}
    assert response.headers["x-purged"] == "4"
    assert (await edge.get(cached[0])).headers["x-cache"] == "MISS"
    assert (await edge.get(cached[1])).headers["x-cache"] == "HIT"
    # Several keys in one purge; a block key reaches every page showing that block.
    response = await purge(edge, f"block:hero-{two} page:nothing-{two}")
    assert response.json() == {"purged": 1}
    assert (await edge.get(cached[1])).headers["x-cache"] == "MISS"
    assert (await purge(edge, f"page:{one}")).json() == {"purged": 1}
    assert (await purge(edge, f"page:{one}")).json() == {"purged": 0}


async def test_a_purge_needs_keys_and_a_purger_address(
    edge: httpx.AsyncClient, varnish: Varnish
) -> None:
    url = page_url(unique("acl"))
    await edge.get(url)
    missing = await edge.request("PURGE", "/")
    assert missing.status_code == 400
    assert missing.json() == {"error": "xkey-purge header required"}
    # 127.0.0.2 is loopback too, but not in the shipped ACL (127.0.0.1 and ::1 only).
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with edge_client(varnish.url, transport=transport) as outsider:
        refused = await purge(outsider, "page:" + url)
        assert refused.status_code == 403
        assert refused.json() == {"error": "Forbidden"}
        everything = await outsider.request("PURGE", url)
        assert everything.status_code == 403
    assert (await edge.get(url)).headers["x-cache"] == "HIT"


async def test_stale_while_revalidate_serves_the_old_copy_and_refreshes_it(
    edge: httpx.AsyncClient, origin: OriginProcess
) -> None:
    slug = unique("swr")
    url = page_url(slug, smaxage=1, swr=30)
    assert page_of(await edge.get(url))["version"] == 0
    origin.publish(slug)
    await asyncio.sleep(1.3)
    stale = await edge.get(url)
    assert stale.headers["x-cache"] == "HIT"
    assert page_of(stale)["version"] == 0
    # The background fetch replaced it.
    async with asyncio.timeout(5):
        while page_of(await edge.get(url))["version"] != 1:  # noqa: ASYNC110 - polling
            await asyncio.sleep(0.05)
    # (More than 2 only if this machine is so slow that the new copy expired too.)
    assert origin.hits()[url] >= 2


async def test_past_stale_while_revalidate_a_healthy_origin_is_asked_first(
    edge: httpx.AsyncClient, origin: OriginProcess
) -> None:
    slug = unique("fresh")
    url = page_url(slug, smaxage=1, swr=1, sie=3600)
    await edge.get(url)
    origin.publish(slug)
    await asyncio.sleep(2.3)
    response = await edge.get(url)
    assert response.headers["x-cache"] == "MISS"
    assert page_of(response)["version"] == 1


async def test_a_copy_past_stale_if_error_is_revalidated_with_if_none_match(
    edge: httpx.AsyncClient, origin: OriginProcess
) -> None:
    url = page_url(unique("keep"), smaxage=1, swr=0, sie=1)
    first = await edge.get(url)
    await asyncio.sleep(2.3)
    again = await edge.get(url)
    # The origin answered 304 to Varnish's conditional fetch; the client gets the page.
    assert (again.status_code, again.headers["x-cache"]) == (200, "MISS")
    assert again.content == first.content
    assert origin.not_modified()[url] == 1
    assert origin.hits()[url] == 2


async def test_an_origin_error_past_stale_while_revalidate_serves_the_stale_copy(
    edge: httpx.AsyncClient, origin: OriginProcess
) -> None:
    slug = unique("sie")
    url = page_url(slug, smaxage=1, swr=1, sie=3600)
    await edge.get(url)
    origin.fail(slug, 503)
    await asyncio.sleep(2.3)
    before = origin.hits()[url]
    response = await edge.get(url)
    assert response.status_code == 200
    assert response.headers["x-cache"] == "HIT"
    assert page_of(response)["version"] == 0
    # Asked once in the foreground; serving the stale copy asks once more in the background.
    async with asyncio.timeout(5):
        while origin.hits()[url] < before + 2:  # noqa: ASYNC110 - polling the origin
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert origin.hits()[url] == before + 2
    # A page never cached has no stale copy: the origin's own error goes through, once.
    never = unique("sie-none")
    origin.fail(never, 503)
    failing = await edge.get(page_url(never))
    assert failing.status_code == 503
    assert page_of(failing)["scope"] == "private"
    assert origin.hits()[page_url(never)] == 1


@pytest.fixture
def lone_origin() -> Iterator[OriginProcess]:
    process = OriginProcess(free_port()).start()
    yield process
    process.stop()


@pytest.fixture
def lone_varnish(lone_origin: OriginProcess, tmp_path: Path) -> Iterator[Varnish]:
    """A varnishd of its own: this test takes its origin down."""
    with Varnish(lone_origin.port, tmp_path) as instance:
        yield instance


async def test_with_the_origin_down_pages_are_served_stale_up_to_stale_if_error(
    lone_origin: OriginProcess, lone_varnish: Varnish
) -> None:
    async with edge_client(lone_varnish.url) as client:
        urls = [page_url(unique("down"), smaxage=1, swr=1, sie=3600) for _ in range(2)]
        for url in urls:
            assert (await client.get(url)).status_code == 200
        lone_origin.stop()
        await asyncio.sleep(2.3)
        # Whether or not the probe has noticed yet, the stale copy is served.
        first = await client.get(urls[0])
        assert (first.status_code, first.headers["x-cache"]) == (200, "HIT")
        async with asyncio.timeout(10):
            while lone_varnish.backend_healthy():  # noqa: ASYNC110 - polling the probe
                await asyncio.sleep(0.1)
        second = await client.get(urls[1])
        assert (second.status_code, second.headers["x-cache"]) == (200, "HIT")
        never_cached = await client.get(page_url(unique("down-none")))
        assert never_cached.status_code == 503
