"""Templates see the documented visitor and request fields, and nothing else of the profile.

Before, `visitor` was the profile's attributes as plain dicts: `{{ visitor.items() }}`
printed the whole profile (e-mail, cart lines, user id...), and the documented
`visitor.cart.items` printed a dict method instead of the number of items.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from asgi_lifespan import LifespanManager
from pymongo import AsyncMongoClient

from blocks.audiences import AudienceSet
from blocks.context import RequestFacts, build_context
from blocks.templating import render_fields, template_variables
from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import Clock
from tests.editors.keys import PREVIEW
from tests.editors.test_template_bombs import BOMBS, DEEP_TEMPLATES
from tests.graphql_helpers import PAGE_QUERY, graphql

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PROFILE: dict[str, Any] = {
    "_id": "tpl-ada",
    "userId": "user-secret-42",
    "traits": {
        "firstName": "Ada",
        "pageViews": 4,
        "email": "ada@secret.example",
        "lastOrderAt": NOW - timedelta(days=3),
        "lastSeen": NOW - timedelta(minutes=5),
    },
    "cart": {
        "items": 2,
        "value": 50.0,
        "lines": [{"sku": "SKU-SECRET", "quantity": 2}],
        "updatedAt": NOW - timedelta(minutes=30),
    },
    "counts": {"page_view": 4},
    "interests": {"tents": 3.0},
    "tags": {"tag-secret": 1.0},
    "recentlyViewed": [{"productId": "PRODUCT-SECRET", "category": "tents"}],
}
#: Text of the profile or request that no template may print.
SECRETS = (
    "secret",  # the e-mail, user id, cart line, tag and recently viewed product
    "SECRET",
    "lastOrderAt",
    "updatedAt",
    "rfm",
    "Mozilla",
)
PROBES = [
    "{{ visitor.items() }}",
    "{{ visitor.values() }}",
    "{{ visitor.keys() }}",
    "{{ visitor.get('userId') }}",
    "{{ visitor }}",
    "{{ visitor | string }}",
    "{{ visitor ~ '' }}",
    "{{ visitor.traits }}",
    "{{ visitor.traits.items() }}",
    "{{ visitor.traits.email }}",
    "{{ visitor.traits['email'] }}",
    "{{ visitor.traits.lastOrderAt }}",
    "{{ visitor.userId }}",
    "{{ visitor['userId'] }}",
    "{{ visitor.tags }}",
    "{{ visitor.rfm }}",
    "{{ visitor.recentlyViewed }}",
    "{{ visitor.cart }}",
    "{{ visitor.cart.lines }}",
    "{{ visitor.cart.updatedAt }}",
    "{{ visitor.__dict__ }}",
    "{{ visitor._values }}",
    "{{ visitor['_values'] }}",
    "{{ visitor.__class__ }}",
    "{{ visitor.__slots__ }}",
    "{{ visitor.traits.__getattr__('email') }}",
    "{{ visitor | list }}",
    "{{ visitor | tojson }}",
    "{{ visitor | pprint }}",
    "{{ visitor | dictsort }}",
    "{{ visitor | join }}",
    "{{ visitor.traits | join }}",
    "{% for key in visitor %}{{ key }}{% endfor %}",
    "{% for key in visitor.traits %}{{ key }}{% endfor %}",
    "{{ visitor.interests.items() }}",
    "{{ request }}",
    "{{ request.userAgent }}",
    "{{ request.items() }}",
]


def _variables() -> dict[str, Any]:
    context = build_context(
        request=RequestFacts(visitor_id="tpl-ada", country="DE", user_agent="Mozilla/5.0 x"),
        profile=PROFILE,
        audiences=AudienceSet(),
        now=NOW,
        locale="en-US",
    )
    return template_variables(context)


@pytest.mark.parametrize("source", PROBES)
def test_no_template_reaches_undocumented_profile_data(source: str) -> None:
    variables = _variables()
    result = render_fields("hero", {"heading": source}, {}, variables)
    shown = str(result.fields["heading"])
    assert not any(secret in shown for secret in SECRETS), shown


DOCUMENTED = {
    "{{ visitor.id }}": "tpl-ada",
    "{{ visitor.known }}": "True",
    "{{ visitor.traits.firstName }}, {{ visitor.traits.pageViews + 1 }}": "Ada, 5",
    "{{ visitor.traits.lastSeen.strftime('%Y') }}": "2026",
    "{{ visitor.traits.minutesSinceLastSeen }}": "5.0",
    "{{ visitor.traits.nickname | default('friend') }}": "friend",
    "{{ visitor.cart.items }} items, {{ visitor.cart['value'] }}": "2 items, 50.0",
    "{{ visitor.cart.idleMinutes }}": "30.0",
    "{% if visitor.cart %}cart{% endif %}{% if 'firstName' in visitor.traits %}!{% endif %}": (
        "cart!"
    ),
    "{{ visitor.counts.page_view }}": "4",
    "{% for name, score in visitor.interests.items() %}{{ name }}={{ score }}{% endfor %}": (
        "tents=3.0"
    ),
    "{{ visitor.interests.tents }}": "3.0",
    "{{ request.country }} {{ request.device }} {{ request.utm.source | default('-') }}": (
        "DE desktop -"
    ),
    "{{ visitor.audiences | join(', ') | default('none', true) }}": "none",
}


@pytest.mark.parametrize(("source", "expected"), DOCUMENTED.items())
def test_the_documented_fields_still_render(source: str, expected: str) -> None:
    result = render_fields("hero", {"heading": source}, {}, _variables())
    assert result.failures == ()
    assert result.fields["heading"] == expected


def test_the_profile_itself_is_never_handed_to_templates() -> None:
    variables = _variables()
    traits = variables["visitor"]["traits"]
    assert "email" not in traits
    assert "firstName" in traits
    assert variables["visitor"]["interests"] is not PROFILE["interests"]


# ---------------------------------------------------------------- over HTTP


def _banner(block_id: str, text: str, fallback: str) -> dict[str, Any]:
    variant = {"id": "default", "fields": {"text": text, "tone": "info"}}
    if fallback:
        variant["fallback"] = {"text": fallback}
    return {"id": block_id, "type": "banner", "variants": [variant]}


HOSTILE_PAGE = {
    "slug": "hostile",
    "title": "Hostile",
    "blocks": [
        _banner("dump", "{{ visitor.items() }}", "Hello"),
        _banner("deep", DEEP_TEMPLATES["unary-minus"], "Deep"),
        _banner("bomb", BOMBS["concat-doubling"][0] + "{{ a }}", "Bomb"),
        _banner("fine", "Hi {{ visitor.traits.firstName }}, {{ visitor.cart.items }} items", ""),
    ],
}


async def test_hostile_templates_never_break_the_page_nor_content_health(
    settings: Settings,
    clock: Clock,
    tmp_path: Path,
    mongo: AsyncMongoClient[dict[str, Any]],
    database_name: str,
) -> None:
    (tmp_path / "pages").mkdir()
    page = yaml.safe_dump(HOSTILE_PAGE, allow_unicode=True, width=10**6)
    (tmp_path / "pages" / "hostile.yaml").write_text(page, encoding="utf-8")
    await mongo[database_name]["profiles"].insert_one(dict(PROFILE))
    app = create_app(settings.model_copy(update={"content_dir": tmp_path}), clock=clock)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            shown: dict[str, dict[str, str]] = {}
            for visitor in ("tpl-ada", "tpl-stranger"):
                response = await graphql(client, PAGE_QUERY, {"slug": "hostile"}, visitor=visitor)
                assert response.status_code == 200
                body = response.json()
                assert "errors" not in body, body
                blocks = body["data"]["page"]["blocks"]
                shown[visitor] = {block["blockId"]: block["text"] for block in blocks}
            query = '{ contentHealth(slug: "hostile") { findings { code path message } } }'
            health = (await graphql(client, query, headers=PREVIEW)).json()
    assert shown["tpl-ada"] == {
        "dump": "Hello",
        "deep": "Deep",
        "bomb": "Bomb",
        "fine": "Hi Ada, 2 items",
    }
    assert shown["tpl-stranger"]["deep"] == "Deep"
    findings = {f["path"]: f for f in health["data"]["contentHealth"]["findings"]}
    assert set(findings) == {
        "blocks[0].variants[0].fields.text",
        "blocks[1].variants[0].fields.text",
        "blocks[2].variants[0].fields.text",
    }
    dump, deep, bomb = (findings[f"blocks[{i}].variants[0].fields.text"] for i in range(3))
    assert (dump["code"], deep["code"], bomb["code"]) == (
        "template.unknown-field",
        "template.syntax",
        "template.limit",
    )
    assert "'visitor.items'" in dump["message"]
    assert "more than 32 levels deep" in deep["message"]
    assert "`~` would build more than 8,192 characters" in bomb["message"]
