"""The filesystem CMS adapter over temporary folders, and the bundled demo content."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from blocks.parse import ParsedPage
from cms_adapters.errors import CMSUnavailable, ContentNotFound, MalformedContent
from cms_adapters.filesystem import FilesystemAdapter
from gateway.settings import DEMO_CONTENT_DIR


def hero_block(block_id: str, heading: str = "Hello") -> dict[str, Any]:
    return {
        "id": block_id,
        "type": "hero",
        "variants": [{"id": "default", "fields": {"heading": heading}}],
    }


def page(slug: str, *blocks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "slug": slug,
        "title": slug.title(),
        "blocks": list(blocks or [hero_block("hero")]),
        **extra,
    }


def write(root: Path, relative: str, document: Any) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(document, str):
        path.write_text(document, encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(document), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    content = tmp_path / "content"
    (content / "pages").mkdir(parents=True)
    (content / "blocks").mkdir()
    return content


@pytest.fixture
def cms(root: Path) -> FilesystemAdapter:
    return FilesystemAdapter(root)


# -- reading pages -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
async def test_fetch_page_in_each_format(root: Path, cms: FilesystemAdapter, suffix: str) -> None:
    write(root, f"pages/home{suffix}", page("home", hero_block("hero", "From " + suffix)))
    parsed = await cms.fetch_page("home")
    assert isinstance(parsed, ParsedPage)
    assert parsed.problems == ()
    assert parsed.page.slug == "home"
    assert parsed.page.blocks[0].variants[0].fields["heading"] == "From " + suffix


async def test_yaml_is_preferred_when_several_formats_exist(
    root: Path, cms: FilesystemAdapter
) -> None:
    write(root, "pages/home.yaml", page("home", hero_block("hero", "yaml")))
    write(root, "pages/home.json", page("home", hero_block("hero", "json")))
    parsed = await cms.fetch_page("home")
    assert parsed.page.blocks[0].variants[0].fields["heading"] == "yaml"


async def test_shared_blocks_are_inlined_in_page_order(root: Path, cms: FilesystemAdapter) -> None:
    write(
        root,
        "blocks/site-banner.yaml",
        {
            "id": "site-banner",
            "type": "banner",
            "variants": [{"id": "default", "fields": {"text": "Free shipping"}}],
        },
    )
    write(root, "blocks/footer.json", hero_block("footer", "Shared footer"))
    write(
        root,
        "pages/home.yaml",
        page("home", {"ref": "site-banner"}, hero_block("inline"), {"ref": "footer"}),
    )
    parsed = await cms.fetch_page("home")
    assert parsed.problems == ()
    assert [(b.id, b.type) for b in parsed.page.blocks] == [
        ("site-banner", "banner"),
        ("inline", "hero"),
        ("footer", "hero"),
    ]
    assert dict(parsed.page.blocks[0].variants[0].fields) == {
        "text": "Free shipping",
        "tone": "info",
    }


async def test_page_with_a_bad_variant_still_loads_with_problems(
    root: Path, cms: FilesystemAdapter
) -> None:
    block = hero_block("hero")
    block["variants"].append({"id": "broken", "fields": {}})
    write(root, "pages/home.yaml", page("home", block))
    parsed = await cms.fetch_page("home")
    assert [p.path for p in parsed.problems] == ["blocks[0].variants[1].fields.heading"]
    assert [v.id for v in parsed.page.blocks[0].variants] == ["default"]


async def test_nested_slug(root: Path, cms: FilesystemAdapter) -> None:
    write(root, "pages/shop/boots.yaml", page("shop/boots"))
    write(root, "pages/shop/tents/winter.json", page("shop/tents/winter"))
    assert (await cms.fetch_page("shop/boots")).page.slug == "shop/boots"
    assert (await cms.fetch_page("shop/tents/winter")).page.slug == "shop/tents/winter"
    with pytest.raises(ContentNotFound):
        await cms.fetch_page("shop")


async def test_every_read_hits_the_disk(root: Path, cms: FilesystemAdapter) -> None:
    write(root, "pages/home.yaml", page("home", hero_block("hero", "before")))
    assert (await cms.fetch_page("home")).page.blocks[0].variants[0].fields["heading"] == "before"
    write(root, "pages/home.yaml", page("home", hero_block("hero", "after")))
    assert (await cms.fetch_page("home")).page.blocks[0].variants[0].fields["heading"] == "after"


# -- not found and path traversal --------------------------------------------------------------


async def test_unknown_slug_is_not_found(cms: FilesystemAdapter) -> None:
    with pytest.raises(ContentNotFound) as info:
        await cms.fetch_page("nope")
    assert info.value.entry == "nope"
    assert info.value.cms == "filesystem"


@pytest.mark.parametrize(
    "slug",
    [
        pytest.param("../secret", id="parent"),
        pytest.param("../../secret", id="grandparent"),
        pytest.param("/etc/passwd", id="absolute"),
        pytest.param("a/../../b", id="dot-dot-inside"),
        pytest.param("pages/../../secret", id="dot-dot-after-folder"),
        pytest.param("./home", id="dot-slash"),
        pytest.param("A", id="upper-case"),
        pytest.param("", id="empty"),
        pytest.param("home/", id="trailing-slash"),
        pytest.param("home.yaml", id="with-suffix"),
        pytest.param("-home", id="leading-dash"),
        pytest.param("a\\..\\..\\b", id="backslashes"),
        pytest.param("home\x00", id="nul"),
    ],
)
async def test_unsafe_slugs_are_not_found(tmp_path: Path, root: Path, slug: str) -> None:
    # Decoys: if a slug escaped the pages folder, these valid pages would be served.
    decoy = page(slug or "decoy")
    for relative in ("secret.yaml", "content/secret.yaml", "b.yaml", "content/b.yaml"):
        write(tmp_path, relative, decoy)
    write(root, "pages/A.yaml", page("A"))
    write(root, "pages/home.yaml.yaml", page("home.yaml"))
    write(root, "pages/-home.yaml", page("-home"))
    write(root, "pages/home.yaml", page("home"))
    with pytest.raises(ContentNotFound):
        await FilesystemAdapter(root).fetch_page(slug)


async def test_absolute_slug_does_not_escape(tmp_path: Path, cms: FilesystemAdapter) -> None:
    outside = tmp_path / "outside" / "page"
    write(tmp_path, "outside/page.yaml", page(str(outside)))  # what an escape would serve
    with pytest.raises(ContentNotFound):
        await cms.fetch_page(str(outside))


# -- malformed content -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "text"),
    [
        pytest.param("broken.yaml", "slug: broken\ntitle: [unclosed\nblocks: []\n", id="yaml"),
        pytest.param("broken.yaml", "slug: broken\n\ttitle: tab\n", id="yaml-tab"),
        pytest.param("broken.json", '{"slug": "broken", "title": ', id="json"),
        pytest.param("broken.json", "[" * 100_000 + "]" * 100_000, id="json-nested-100000"),
    ],
)
async def test_broken_file_is_malformed_and_names_the_entry(
    root: Path, cms: FilesystemAdapter, file_name: str, text: str
) -> None:
    write(root, f"pages/{file_name}", text)
    with pytest.raises(MalformedContent) as info:
        await cms.fetch_page("broken")
    assert info.value.entry == "pages/broken"
    assert "pages/broken" in str(info.value)


async def test_non_utf8_file_is_malformed(root: Path, cms: FilesystemAdapter) -> None:
    (root / "pages" / "latin.yaml").write_bytes(b"slug: latin\ntitle: caf\xe9\nblocks: []\n")
    with pytest.raises(MalformedContent):
        await cms.fetch_page("latin")


async def test_broken_shared_block_names_the_block_entry(
    root: Path, cms: FilesystemAdapter
) -> None:
    write(root, "blocks/banner.yaml", "id: banner\nvariants: [unclosed\n")
    write(root, "pages/home.yaml", page("home", {"ref": "banner"}))
    with pytest.raises(MalformedContent) as info:
        await cms.fetch_page("home")
    assert info.value.entry == "blocks/banner"
    assert "blocks/banner" in str(info.value)


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param("missing", id="missing"),
        pytest.param("../pages/home", id="traversal"),
        pytest.param("Banner", id="upper-case"),
        pytest.param(5, id="not-a-string"),
        pytest.param(None, id="null"),
    ],
)
async def test_unresolvable_shared_block_ref(root: Path, cms: FilesystemAdapter, ref: Any) -> None:
    write(root, "blocks/Banner.yaml", hero_block("Banner"))
    write(root, "pages/home.yaml", page("home", hero_block("first"), {"ref": ref}))
    with pytest.raises(MalformedContent) as info:
        await cms.fetch_page("home")
    assert info.value.field == "blocks[1].ref"
    assert info.value.entry == "pages/home"


async def test_slug_must_match_the_file_name(root: Path, cms: FilesystemAdapter) -> None:
    write(root, "pages/home.yaml", page("landing"))
    with pytest.raises(MalformedContent) as info:
        await cms.fetch_page("home")
    assert info.value.field == "slug"
    assert info.value.entry == "pages/home"


@pytest.mark.parametrize(
    ("document", "field"),
    [
        pytest.param({"slug": "home", "blocks": []}, "title", id="no-title"),
        pytest.param({"title": "Home", "blocks": []}, "slug", id="no-slug"),
        pytest.param({"slug": "home", "title": "Home"}, "blocks", id="no-blocks"),
        pytest.param(
            {"slug": "home", "title": "Home", "blocks": [], "locales": []}, "locales", id="locales"
        ),
    ],
)
async def test_structural_errors_are_malformed_with_the_field(
    root: Path, cms: FilesystemAdapter, document: dict[str, Any], field: str
) -> None:
    write(root, "pages/home.yaml", document)
    with pytest.raises(MalformedContent) as info:
        await cms.fetch_page("home")
    assert info.value.field == field
    assert info.value.entry == "pages/home"
    assert field in str(info.value)


async def test_empty_file_is_malformed(root: Path, cms: FilesystemAdapter) -> None:
    write(root, "pages/home.yaml", "")
    with pytest.raises(MalformedContent):
        await cms.fetch_page("home")


# -- listing and lifecycle ---------------------------------------------------------------------


async def test_list_pages(root: Path, cms: FilesystemAdapter) -> None:
    write(root, "pages/home.yaml", page("home"))
    write(root, "pages/home.json", page("home"))
    write(root, "pages/about.yml", page("about"))
    write(root, "pages/shop/boots.json", page("shop/boots"))
    write(root, "pages/README.md", "# not a page")
    write(root, "pages/Upper.yaml", page("Upper"))
    write(root, "pages/notes.txt", "text")
    (root / "pages" / "folder.yaml").mkdir()
    write(root, "blocks/banner.yaml", hero_block("banner"))
    assert await cms.list_pages() == ["about", "home", "shop/boots"]


async def test_list_pages_without_a_pages_folder(tmp_path: Path) -> None:
    with pytest.raises(CMSUnavailable):
        await FilesystemAdapter(tmp_path / "nowhere").list_pages()


async def test_async_context_manager(root: Path) -> None:
    write(root, "pages/home.yaml", page("home"))
    adapter = FilesystemAdapter(str(root))
    async with adapter as cms:
        assert cms is adapter
        assert (await cms.fetch_page("home")).page.slug == "home"
    assert adapter.name == "filesystem"


# -- the bundled demo --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> FilesystemAdapter:
    return FilesystemAdapter(DEMO_CONTENT_DIR)


async def demo_pages(demo: FilesystemAdapter) -> list[ParsedPage]:
    return [await demo.fetch_page(slug) for slug in await demo.list_pages()]


async def test_demo_pages_parse_without_problems(demo: FilesystemAdapter) -> None:
    slugs = await demo.list_pages()
    assert len(slugs) >= 3
    for parsed in await demo_pages(demo):
        assert parsed.problems == (), parsed.page.slug
        assert parsed.page.blocks, parsed.page.slug
        assert parsed.page.slug in slugs


async def test_demo_covers_many_block_types_and_variants(demo: FilesystemAdapter) -> None:
    blocks = {block.id: block for parsed in await demo_pages(demo) for block in parsed.page.blocks}
    assert len({block.type for block in blocks.values()}) >= 6
    assert len([block for block in blocks.values() if len(block.variants) >= 3]) >= 3


async def test_demo_shared_banner_is_inlined(demo: FilesystemAdapter) -> None:
    home = (await demo.fetch_page("home")).page
    assert home.blocks[0].id == "site-banner"
    assert home.blocks[0].type == "banner"


async def test_preview_serves_drafts_and_published_ignores_them(tmp_path: Path) -> None:
    published = {"slug": "home", "title": "Live", "blocks": []}
    draft = {"slug": "home", "title": "Draft", "blocks": [{"ref": "promo"}]}
    promo = {"id": "promo", "type": "banner", "variants": [{"id": "d", "fields": {"text": "Soon"}}]}
    (tmp_path / "pages").mkdir()
    (tmp_path / "drafts" / "pages").mkdir(parents=True)
    (tmp_path / "drafts" / "blocks").mkdir(parents=True)
    (tmp_path / "pages" / "home.json").write_text(json.dumps(published))
    (tmp_path / "drafts" / "pages" / "home.json").write_text(json.dumps(draft))
    (tmp_path / "drafts" / "blocks" / "promo.json").write_text(json.dumps(promo))
    adapter = FilesystemAdapter(tmp_path)
    assert (await adapter.fetch_page("home")).page.title == "Live"
    previewed = await adapter.fetch_page("home", preview=True)
    assert previewed.page.title == "Draft"
    assert [block.id for block in previewed.page.blocks] == ["promo"]
