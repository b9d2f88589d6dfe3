"""10,000 mixed requests from many visitors through varnishd: no one gets another's answer.

Each answer of the contract origin names what it may depend on (the visitor
for private answers, the audience group for audience answers, nothing for
public ones), so every single response is checked against the visitor who
asked: exactly, not by sampling. The clients are http.client connections in
threads, a fifth of the CPU httpx would need per request.
"""

from __future__ import annotations

import http.client
import json
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.edge.conftest import OriginProcess, page_url, unique
from tests.edge.origin import edge_key, group_of
from tests.edge.varnish import Varnish

pytestmark = pytest.mark.slow

REQUESTS = 10_000
VISITORS = 400
WORKERS = 24


@dataclass
class Visitor:
    """What one browser holds: its cookies, learned from Set-Cookie like a browser."""

    private: bool
    id: str | None = None
    key: str | None = None
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    def cookie(self) -> dict[str, str]:
        pairs = [f"tsr_vid={self.id}"] if self.id else []
        pairs += [f"tsr_ek={self.key}"] if self.key else []
        return {"cookie": "; ".join(pairs)} if pairs else {}


def check(
    visitor: Visitor,
    kind: str,
    presented: str | None,
    status: int,
    set_cookies: list[str],
    body: dict[str, Any],
) -> None:
    """Record every way this answer could belong to someone else."""
    problems = visitor.problems
    cookies = {}
    for header in set_cookies:
        name, _, rest = header.partition("=")
        cookies[name] = rest.split(";", 1)[0]
    if status != 200:
        problems.append(f"status {status}: {body}")
        return
    page = body["data"]["page"]
    if "tsr_vid" in cookies:
        if visitor.id is not None:
            problems.append(f"{visitor.id} was given the id {cookies['tsr_vid']}")
        visitor.id = cookies["tsr_vid"]
    assert visitor.id is not None or page["scope"] != "private"
    own_key = edge_key(group_of(visitor.id)) if visitor.id else None
    if "tsr_ek" in cookies:
        if cookies["tsr_ek"] != own_key:
            problems.append(f"{visitor.id} was given another group's key")
        visitor.key = cookies["tsr_ek"]
    if page["visitor"] is not None and page["visitor"] != visitor.id:
        problems.append(f"{visitor.id} got {page['visitor']}'s private page")
    if page["group"] is not None and (
        presented is None or presented != own_key or page["group"] != group_of(visitor.id or "")
    ):
        problems.append(f"{visitor.id} got group {page['group']}'s page")
    expected = {
        "public": {"public"},
        "audience": {"audience", "private"},
        "private": {"private"},
        "mixed": {"audience", "private"},
    }[kind]
    if page["scope"] not in expected:
        problems.append(f"{kind} page answered {page['scope']}")
    if page["scope"] == "private" and page["visitor"] != visitor.id:
        problems.append(f"private answer for {page['visitor']} to {visitor.id}")
    if page["scope"] != "private" and cookies:
        problems.append(f"shared answer with Set-Cookie {sorted(cookies)}")
    visitor.checked += 1


def test_ten_thousand_mixed_requests_never_cross_visitors(
    varnish: Varnish, origin: OriginProcess
) -> None:
    rng = random.Random(20261201)
    run = unique("mix")
    pages = (
        [("public", page_url(f"{run}-pub{i}", apq=i % 2 == 0)) for i in range(4)]
        + [("audience", page_url(f"{run}-aud{i}", "audience")) for i in range(3)]
        + [("private", page_url(f"{run}-acct", "private"))]
        + [("mixed", page_url(f"{run}-mixed", "mixed"))]
    )
    weights = [12, 12, 10, 10, 12, 12, 10, 8, 14]
    # 30% private visitors (ids p-…); a quarter start as new browsers without cookies.
    visitors = [Visitor(private=index % 10 < 3) for index in range(VISITORS)]
    for index, visitor in enumerate(visitors):
        if index % 4:
            visitor.id = f"{'p' if visitor.private else 'v'}-{run}-{index}"
    plan = [(rng.randrange(VISITORS), rng.choices(pages, weights)[0]) for _ in range(REQUESTS)]
    queues: list[list[tuple[int, tuple[str, str]]]] = [[] for _ in range(WORKERS)]
    for visitor_index, page in plan:
        # One worker per visitor: a browser's requests are sequential, its cookies evolve.
        queues[visitor_index % WORKERS].append((visitor_index, page))

    def work(queue: list[tuple[int, tuple[str, str]]]) -> int:
        hits = 0
        connection = http.client.HTTPConnection("127.0.0.1", varnish.port, timeout=30)
        try:
            for visitor_index, (kind, url) in queue:
                visitor = visitors[visitor_index]
                presented = visitor.key
                connection.request("GET", url, headers=visitor.cookie())
                response = connection.getresponse()
                raw = response.read()
                body = json.loads(raw) if response.status == 200 else {"raw": raw[:200]}
                hits += response.getheader("x-cache") == "HIT"
                cookies = response.msg.get_all("set-cookie") or []
                check(visitor, kind, presented, response.status, cookies, body)
        finally:
            connection.close()
        return hits

    with ThreadPoolExecutor(WORKERS) as pool:
        hits = sum(pool.map(work, queues))
    problems = [problem for visitor in visitors for problem in visitor.problems]
    assert problems == []
    assert sum(visitor.checked for visitor in visitors) == REQUESTS
    # Most of the traffic is shareable: the edge answers it.
    ratio = hits / REQUESTS
    print(f"\n10,000 mixed requests: hit ratio {ratio:.1%}")
    assert ratio > 0.5
