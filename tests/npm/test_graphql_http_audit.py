"""The GraphQL-over-HTTP audit of the `graphql-http` npm package against a live gateway."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.npm.conftest import run_script

#: graphql-http 1.23.1 has 13 MUST audits; all must pass.
MUST_AUDITS = 13


@pytest.fixture(scope="module")
def audit(node: str, gateway_url: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = run_script(node, "graphql_http_audit.mjs", gateway_url)[
        "results"
    ]
    return results


def test_every_must_audit_passes(
    audit: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    passed = Counter(r["level"] for r in audit if r["status"] == "ok")
    total = Counter(r["level"] for r in audit)
    with capsys.disabled():
        tally = ", ".join(f"{lvl} {passed[lvl]}/{total[lvl]}" for lvl in ("MUST", "SHOULD", "MAY"))
        print(f"\ngraphql-http audit: {tally}")
        for r in audit:
            if r["status"] != "ok":
                print(f"  {r['status']} {r['id']} {r['name']}: {r['reason']}")
    musts = [r for r in audit if r["level"] == "MUST"]
    assert len(musts) == MUST_AUDITS
    failed = [r for r in musts if r["status"] != "ok"]
    assert not failed, "\n".join(f"{r['id']} {r['name']}: {r['response']}" for r in failed)


def test_every_recommendation_is_met_too(audit: list[dict[str, Any]]) -> None:
    # SHOULD and MAY as well: a request error leaves `data` out, as the spec asks.
    failing = [r for r in audit if r["status"] != "ok"]
    assert not failing, [f"{r['id']} {r['name']}: {r['reason']}" for r in failing]
