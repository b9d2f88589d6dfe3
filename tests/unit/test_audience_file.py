"""Bulk audience files: deep flow nesting is refused before PyYAML recurses into it."""

from __future__ import annotations

import pytest

from profiles import audiences
from profiles.audiences import AudienceFileError, parse_audience_file


@pytest.mark.parametrize(
    "text",
    [
        "[" * 20_000,
        "{" * 20_000,
        "audiences:\n  - name: a\n    condition: " + "{a: " * 65,
        # A quote that starts no scalar (`it's`) does not hide what follows.
        "description: it's\naudiences: " + "[" * 20_000,
    ],
    ids=["brackets", "braces", "deep-condition", "stray-quote"],
)
def test_deep_flow_nesting_is_refused_without_parsing(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def recursing(_: str) -> object:  # PyYAML: about a second to its recursion limit
        raise AssertionError("the document reached the YAML parser")

    monkeypatch.setattr(audiences.yaml, "safe_load", recursing)
    with pytest.raises(AudienceFileError, match=r"^doc: nested too deeply$"):
        parse_audience_file(text, "doc")


def test_brackets_in_quoted_strings_and_moderate_nesting_are_parsed() -> None:
    text = (
        'audiences:\n  - name: a\n    description: "[[[[ \\" [[[["\n'
        "    condition: " + "{$and: [" * 10 + "{x: 1}" + "]}" * 10 + "\n"
        "  - name: b\n    description: '{{{{ it''s }}}}'\n"
    )
    documents = parse_audience_file(text, "doc")
    assert [d["_id"] for d in documents] == ["a", "b"]
    assert documents[0]["description"] == '[[[[ " [[[['
