"""Every relative link of the documentation resolves: the file exists, and so does the
heading an ``#anchor`` names (as GitHub makes heading anchors).

The README once sent readers to a ``ucd-rest-api.md`` the repository did not have; a
moved or renamed file or heading fails here instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[1]
DOCUMENTS: Final = sorted(
    [ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")]
)

_CODE_BLOCK: Final = re.compile(r"^ *```.*?^ *```", re.M | re.S)
_INLINE_CODE: Final = re.compile(r"`[^`\n]*`")
#: ``[text](target)`` or ``[text](target "title")``, and ``[label]: target`` definitions.
_INLINE_LINK: Final = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_DEFINITION: Final = re.compile(
    r"^ {0,3}\[[^\]]+\]:[ \t]*<?([^\s>]+)>?(?:[ \t]+\"[^\"]*\")?[ \t]*$", re.M
)
_HEADING: Final = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """``text`` without code, where link syntax is an example rather than a link."""
    return _CODE_BLOCK.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: links reduced to their text, lower case,
    punctuation but ``-`` and ``_`` dropped, spaces made ``-``.

    >>> slug("5.5 Segments: `POST` and `GET /api/local/v1/segments`")
    '55-segments-post-and-get-apilocalv1segments'
    """
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The heading anchors of a Markdown file, repeated headings numbered as GitHub does."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in _HEADING.findall(_prose(path.read_text("utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> Iterator[str]:
    """The relative link targets of a Markdown file (not URLs, not inside code)."""
    prose = _prose(path.read_text("utf-8"))
    text = _INLINE_CODE.sub("", prose)
    for target in [*_INLINE_LINK.findall(text), *_DEFINITION.findall(prose)]:
        if not re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
            yield target


def test_the_documents_are_found() -> None:
    assert ROOT / "docs" / "ucd-rest-api.md" in DOCUMENTS
    assert any("docs/ucd-rest-api.md" in link for link in links(ROOT / "README.md"))


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(document: Path) -> None:
    broken = []
    for target in links(document):
        name, _, anchor = target.partition("#")
        linked = (document.parent / name).resolve() if name else document
        if not linked.exists():
            broken.append(f"{target}: no file {linked.relative_to(ROOT)}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    assert not broken, f"{document.relative_to(ROOT)} has broken links:\n" + "\n".join(broken)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[a](docs/x.md) [b](#c) [c](https://e.org) `[d](no.md)`", ["docs/x.md", "#c"]),
        ('[a](<docs/y.md>) [b](docs/t.md "title")', ["docs/y.md", "docs/t.md"]),
        ("```\n[a](in-code.md)\n```\n[label]: ../up.md\n", ["../up.md"]),
    ],
)
def test_links_are_read_from_prose_only(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = tmp_path / "doc.md"
    path.write_text(text, "utf-8")
    assert list(links(path)) == expected


def test_repeated_headings_get_numbered_anchors(tmp_path: Path) -> None:
    path = tmp_path / "doc.md"
    path.write_text("# Setup\n## Setup\n### `make run`, then?\n", "utf-8")
    assert anchors(path) == {"setup", "setup-1", "make-run-then"}


def test_a_heading_with_code_and_punctuation_has_githubs_anchor() -> None:
    heading = "5.5 Segments: `POST` and `GET /api/local/v1/segments`"
    assert slug(heading) == "55-segments-post-and-get-apilocalv1segments"
    assert slug("Persisted documents and batching") == "persisted-documents-and-batching"
