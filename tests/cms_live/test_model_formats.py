"""Every shipped content model, checked by its vendor's own tooling, offline where it allows.

Contentful: `cms_adapters/contentful/migration.js` through contentful-migration's
own parser and validators against an empty space answered locally (its real
run needs a space and a token). Sanity: `sanity schema validate` in a Studio
made of `cms_adapters/sanity/schema.js`, which runs offline. Each model must
also hold the editor vocabulary the adapters read (cms_adapters/mapping.py).
The Directus snapshot and the Strapi schema are applied to live servers
elsewhere in this folder; their vocabulary is checked here too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cms_live.install import TOOLS, ensure
from tests.cms_live.servers import REPO, STRAPI_SCHEMA

pytestmark = pytest.mark.slow

CONTENTFUL_CHECK = TOOLS.source / "contentful_check.js"
MIGRATION = REPO / "cms_adapters" / "contentful" / "migration.js"
SANITY_SCHEMA = REPO / "cms_adapters" / "sanity" / "schema.js"
#: The variant fields every CMS model carries (cms_adapters/mapping.py).
VARIANT_VOCABULARY = {
    "variantId",
    "fields",
    "image",
    "audiences",
    "audienceMatch",
    "condition",
    "priority",
    "scheduleStart",
    "scheduleEnd",
    "scheduleTimezone",
    "locales",
    "tags",
    "weight",
    "isDefault",
    "experiment",
    "ruleId",
    "localized",
}
BLOCK_VOCABULARY = {"blockId", "type", "variants"}
PAGE_VOCABULARY = {"slug", "title", "description", "locales", "titles", "blocks"}


@pytest.fixture(scope="module")
def tools() -> Path:
    """The cached install of contentful-migration and sanity."""
    folder, _ = ensure(TOOLS)
    return folder / "node_modules"


def node_env(**extra: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep} | {"DO_NOT_TRACK": "1", **extra}


def contentful(tools: Path, migration: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["node", str(CONTENTFUL_CHECK), str(migration)],
        env=node_env(NODE_PATH=str(tools)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def errors(result: dict[str, Any]) -> list[str]:
    return [m for key in ("steps", "payload", "validation", "runtime") for m in result[key]]


def test_the_contentful_migration_passes_contentful_migrations_own_checks(tools: Path) -> None:
    result = contentful(tools, MIGRATION)
    assert errors(result) == []
    types = {
        r["url"].rsplit("/", 1)[1]: {f["id"] for f in r["data"]["fields"]}
        for r in result["requests"]
        if r["method"] == "PUT" and r["url"].startswith("/content_types/") and r.get("data")
    }
    assert types["variant"] >= VARIANT_VOCABULARY
    assert types["block"] >= BLOCK_VOCABULARY
    assert PAGE_VOCABULARY - {"titles"} <= types["page"]  # Contentful localizes `title` itself


def test_the_contentful_check_catches_a_broken_migration(tools: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.js"
    broken.write_text(
        MIGRATION.read_text().replace(
            "variant.createField('priority').name('Priority').type('Integer');",
            "variant.createField('priority').name('Priority').type('Integr');",
        )
    )
    assert "type('Integr')" in broken.read_text()
    found = errors(contentful(tools, broken))
    assert any("priority" in message and "must be one of" in message for message in found), found


def sanity_studio(tools: Path, folder: Path, schema: str) -> Path:
    """A minimal Studio whose schema is `schema` (a schema.js's text)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text('{"name": "studio", "private": true, "type": "module"}')
    (folder / "schema.js").write_text(schema)
    (folder / "sanity.config.js").write_text(
        "import {defineConfig} from 'sanity'\n"
        "import {schemaTypes} from './schema.js'\n\n"
        "export default defineConfig({name: 'default', projectId: 'tessera0',\n"
        "  dataset: 'production', schema: {types: schemaTypes}})\n"
    )
    (folder / "node_modules").symlink_to(tools, target_is_directory=True)
    return folder


def sanity_validate(studio: Path, tools: Path) -> tuple[int, list[Any]]:
    done = subprocess.run(
        [str(tools / ".bin" / "sanity"), "schema", "validate", "--format", "json"],
        cwd=studio,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert lines, done.stdout[-2000:] + done.stderr[-2000:]
    return done.returncode, list(json.loads(lines[-1]))


def test_the_sanity_schema_passes_sanity_schema_validate(tools: Path, tmp_path: Path) -> None:
    studio = sanity_studio(tools, tmp_path / "studio", SANITY_SCHEMA.read_text())
    status, problems = sanity_validate(studio, tools)
    assert (status, problems) == (0, [])
    script = studio / "fields.mjs"
    script.write_text(
        "import {schemaTypes} from './schema.js'\n"
        "console.log(JSON.stringify(Object.fromEntries(schemaTypes.map(\n"
        "  (t) => [t.name, t.fields.map((f) => f.name)]))))\n"
    )
    done = subprocess.run(
        ["node", str(script)], cwd=studio, env=node_env(), capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    fields = {name: set(names) for name, names in json.loads(done.stdout).items()}
    assert fields["variant"] >= VARIANT_VOCABULARY
    assert fields["tesseraBlock"] >= BLOCK_VOCABULARY
    assert fields["page"] >= PAGE_VOCABULARY


def test_sanity_schema_validate_refuses_a_document_named_block(tools: Path, tmp_path: Path) -> None:
    """The shipped schema's old name: Sanity reserves `block` for Portable Text."""
    schema = SANITY_SCHEMA.read_text().replace("'tesseraBlock'", "'block'")
    studio = sanity_studio(tools, tmp_path / "studio", schema)
    status, problems = sanity_validate(studio, tools)
    assert status != 0
    assert "reserved name" in json.dumps(problems)


def test_the_directus_and_strapi_models_hold_the_vocabulary() -> None:
    snapshot = json.loads((REPO / "cms_adapters/directus/snapshot.json").read_text())
    directus: dict[str, set[str]] = {}
    for field in snapshot["fields"]:
        directus.setdefault(field["collection"], set()).add(field["field"])
    assert directus["block_variants"] >= VARIANT_VOCABULARY
    assert directus["blocks"] >= BLOCK_VOCABULARY
    assert directus["pages"] >= PAGE_VOCABULARY
    components = STRAPI_SCHEMA / "components" / "tessera"
    variant = json.loads((components / "variant.json").read_text())["attributes"]
    block = json.loads((components / "block.json").read_text())["attributes"]
    page_type = STRAPI_SCHEMA / "api/page/content-types/page/schema.json"
    page = json.loads(page_type.read_text())["attributes"]
    assert set(variant) >= VARIANT_VOCABULARY
    assert set(block) >= BLOCK_VOCABULARY
    assert set(page) >= PAGE_VOCABULARY


def test_node_is_there() -> None:
    assert shutil.which("node"), "tests/cms_live needs Node.js 20 or later"
