"""The GraphQL-over-HTTP audit of the `graphql-http` npm package against a live gateway."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.npm.conftest import run_script

#: graphql-http 1.23.1 has 13 MUST audits; all must pass.
MUST_AUDITS = 13
#: Recommendations the gateway does not meet yet; anything else failing is a regression.
#: D586/5E5B: a request error (syntax, validation) answers `"data": null`
#: (Strawberry's result) where the spec would leave `data` out.
KNOWN_WARNINGS = {"D586", "5E5B"}


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


def test_no_recommendation_regresses(audit: list[dict[str, Any]]) -> None:
    failing = {r["id"]: r for r in audit if r["status"] != "ok"}
    assert set(failing) <= KNOWN_WARNINGS, [failing[i] for i in set(failing) - KNOWN_WARNINGS]
