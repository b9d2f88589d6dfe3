"""Server-side HTML for blocks (`renderedHtml`), for channels without JavaScript.

One Jinja2 template per block type, `<type>.html.j2`: the shipped defaults
live in `blocks/templates/`; a directory given to :class:`BlockRenderer`
(`BLOCK_TEMPLATES_DIR`) overrides any of them by file name. A type without a
template renders with `generic.html.j2`. Output is autoescaped; editors'
rich text passes through an allowlist sanitizer. The templates are the
operator's (trusted); the field values in them are the editors'.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    TemplateError,
    TemplateNotFound,
    select_autoescape,
)
from markupsafe import Markup

from blocks.html_sanitize import is_safe_url, sanitize_html

logger = logging.getLogger(__name__)

GENERIC = "generic"
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]+")


def dom_id(block_id: str) -> str:
    """An HTML id for the block: `block-` plus its id with unsafe characters replaced."""
    return "block-" + (_UNSAFE_ID.sub("-", block_id).strip("-") or "x")


def _label(block_type: str) -> str:
    return block_type.replace("_", " ").replace("-", " ").capitalize()


class BlockRenderer:
    """Renders blocks to HTML with per-type templates (shipped or overridden)."""

    def __init__(self, override_dir: Path | str | None = None) -> None:
        loaders: list[BaseLoader] = []
        if override_dir is not None:
            loaders.append(FileSystemLoader(str(override_dir)))
        loaders.append(PackageLoader("blocks", "templates"))
        self.environment = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.environment.filters["sanitize_html"] = lambda html: Markup(sanitize_html(str(html)))
        self.environment.filters["safe_url"] = lambda url: url if is_safe_url(str(url)) else "#"

    def _template_name(self, block_type: str) -> str:
        name = f"{block_type}.html.j2"
        if _UNSAFE_ID.search(block_type) is None:
            try:
                self.environment.get_template(name)
            except TemplateNotFound:
                pass
            else:
                return name
        return f"{GENERIC}.html.j2"

    def render(
        self, block_type: str, block_id: str, variant_id: str, fields: Mapping[str, Any]
    ) -> str:
        """The block's HTML; a broken override falls back to the generic template."""
        variables = {
            "fields": fields,
            "block_type": block_type,
            "block_id": block_id,
            "variant_id": variant_id,
            "dom_id": dom_id(block_id),
            "label": _label(block_type),
        }
        try:
            name = self._template_name(block_type)
            html = self.environment.get_template(name).render(variables)
        except TemplateError as exc:
            logger.error("block template for %r failed, generic HTML served: %s", block_type, exc)
            html = self.environment.get_template(f"{GENERIC}.html.j2").render(variables)
        return "\n".join(line for line in html.splitlines() if line.strip())
