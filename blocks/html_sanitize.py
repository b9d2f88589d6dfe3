"""An allowlist HTML sanitizer for editors' rich text (well-formed output, no scripts).

Keeps a small set of formatting tags and safe link attributes, escapes all
text, drops everything else (the content of `script`, `style` and similar
elements entirely) and closes what the editor left open, so the output nests
correctly inside a block's HTML.
"""

from __future__ import annotations

from html import escape
from html.parser import HTMLParser
from typing import Final

ALLOWED_TAGS: Final = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "em", "h2", "h3", "h4", "h5", "h6",
        "i", "li", "ol", "p", "pre", "small", "strong", "sub", "sup", "ul",
    }
)  # fmt: skip
#: h1 belongs to the page, not a block: it becomes h2.
RENAMED: Final = {"h1": "h2"}
VOID_TAGS: Final = frozenset({"br"})
DROP_CONTENT: Final = frozenset({"script", "style", "iframe", "object", "template", "noscript"})
ALLOWED_ATTRIBUTES: Final = {
    "a": frozenset({"href", "title", "lang"}),
    "abbr": frozenset({"title"}),
}
SAFE_SCHEMES: Final = ("http:", "https:", "mailto:", "tel:")
BLOCK_TAGS: Final = frozenset({"p", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "blockquote", "pre"})
LISTS: Final = frozenset({"ul", "ol"})


def is_safe_url(url: str) -> bool:
    """Whether a link or image URL is relative or uses a harmless scheme (no `javascript:`)."""
    value = "".join(url.split()).lower()
    return ":" not in value.split("/", 1)[0] or value.startswith(SAFE_SCHEMES)


class _Sanitizer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []
        self.dropping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROP_CONTENT:
            self.dropping += 1
            return
        tag = RENAMED.get(tag, tag)
        if self.dropping or tag not in ALLOWED_TAGS:
            return
        if not self._make_room(tag):
            return
        allowed = ALLOWED_ATTRIBUTES.get(tag, frozenset())
        rendered = ""
        for name, value in attrs:
            if name not in allowed or value is None:
                continue
            if name == "href" and not is_safe_url(value):
                continue
            rendered += f' {name}="{escape(value, quote=True)}"'
        self.out.append(f"<{tag}{rendered}>")
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def _pop(self) -> None:
        self.out.append(f"</{self.open.pop()}>")

    def _make_room(self, tag: str) -> bool:
        """Close what HTML closes implicitly before `tag`; False if `tag` cannot go here."""
        if tag in BLOCK_TAGS:
            # Block content may only sit at the top, in a list item or in a quote.
            while self.open and self.open[-1] not in ("li", "blockquote"):
                self._pop()
        elif tag == "li":
            if not LISTS & set(self.open):
                return False
            while self.open[-1] not in LISTS:
                self._pop()
        elif tag == "a" and "a" in self.open:
            while self.open[-1] != "a":
                self._pop()
            self._pop()
        return True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID_TAGS and self.open and self.open[-1] == RENAMED.get(tag, tag):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in DROP_CONTENT:
            self.dropping = max(0, self.dropping - 1)
            return
        tag = RENAMED.get(tag, tag)
        if self.dropping or tag not in self.open:
            return
        while self.open:
            closing = self.open.pop()
            self.out.append(f"</{closing}>")
            if closing == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.dropping:
            self.out.append(escape(data, quote=False))

    def result(self) -> str:
        self.close()
        return "".join(self.out) + "".join(f"</{tag}>" for tag in reversed(self.open))


def sanitize_html(html: str) -> str:
    """Editors' HTML reduced to the allowlist, well-formed and safe to embed."""
    parser = _Sanitizer()
    parser.feed(html)
    return parser.result()
