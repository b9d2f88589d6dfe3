"""The storefront's source: generated types up to date, TypeScript clean, JSON typed."""

from __future__ import annotations

import json
import re

from tests.storefront.conftest import APP, MANIFEST, bin_, run


def test_generated_documents_match_the_schema_and_operations(node: str) -> None:
    # `--check` exits 1 when src/gql/ differs from what schema.graphql and the
    # operations generate (someone changed one and did not run `npm run codegen`).
    run([node, bin_("graphql-codegen"), "--config", "codegen.ts", "--check"])


def test_typescript_compiles(node: str) -> None:
    run([node, bin_("tsc"), "--noEmit", "-p", "tsconfig.json"])


def test_json_fields_have_useful_types() -> None:
    generated = (APP / "src" / "gql" / "graphql.ts").read_text()
    # Codegen's default turns JSON into `unknown` (tsc then fails on first use).
    for field in ("traits", "cart", "fields"):
        assert re.search(rf"\b{field}: import\('../tessera-json'\).JsonObject", generated), field
        assert not re.search(rf"\b{field}: unknown", generated), field


def test_the_manifest_holds_every_operation_under_its_sha256() -> None:
    import hashlib

    manifest = json.loads(MANIFEST.read_text())
    names = set()
    for key, text in manifest.items():
        assert key == "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        names.update(re.findall(r"query (\w+)", text))
    assert names == {"StorefrontPage", "StorefrontVisitor"}
