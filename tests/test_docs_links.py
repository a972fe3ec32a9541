"""Every link in README.md and docs/*.md resolves in the repository; PyPI's page has none relative.

The README is read on GitHub and in the unpacked sdist, where a relative link
resolves to a file of the repository: each one must name a file that exists,
and each ``#anchor`` into a Markdown file must name one of its headings (as
GitHub spells heading ids). Links between docs pages must stay inside
``docs/``: the strict MkDocs build refuses targets it does not build.

PyPI renders the long description (pyproject.toml ``readme``) without the
repository around it, so a relative link or image there can only break: it
may hold absolute ``https://`` links only.

No Django needed: these tests read files.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.DOTALL | re.MULTILINE)
HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.DOTALL)
# [text](target "title") and ![alt](target); text may hold one level of brackets.
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
# [label]: target
DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", re.MULTILINE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose(text: str) -> str:
    """The Markdown without code blocks, code spans and HTML comments."""
    text = FENCE.sub("", text)
    text = HTML_COMMENT.sub("", text)
    return CODE_SPAN.sub("", text)


def targets(path: Path) -> list[str]:
    text = prose(path.read_text(encoding="utf-8"))
    return INLINE.findall(text) + DEFINITION.findall(text)


def github_slug(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The heading ids of a Markdown file, duplicates numbered as GitHub does."""
    seen: dict[str, int] = {}
    ids = set()
    for _, title in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = github_slug(title)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        ids.add(slug if count == 0 else f"{slug}-{count}")
    return ids


def docs_pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def long_description() -> Path:
    """The file pyproject.toml names as ``readme`` (PyPI's project page)."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^readme\s*=\s*"([^"]+)"', pyproject, re.MULTILINE)
    assert match, 'pyproject.toml has no readme = "..." line'
    return ROOT / match.group(1)


def broken_links(path: Path, *, check_anchors: bool, stay_inside: Path | None) -> list[str]:
    problems = []
    for target in targets(path):
        if not target or SCHEME.match(target):
            continue  # http(s), mailto: not ours to check here
        file_part, _, fragment = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        if stay_inside is not None and not resolved.is_relative_to(stay_inside):
            problems.append(f"{target}: outside {stay_inside.relative_to(ROOT)}/")
            continue
        if not resolved.exists():
            problems.append(f"{target}: no such file")
            continue
        if (
            check_anchors
            and fragment
            and resolved.suffix == ".md"
            and unquote(fragment).lower() not in anchors(resolved)
        ):
            problems.append(f"{target}: no heading with this id")
    return problems


def test_the_parser_finds_links():
    """A guard for the checks below: links, images and definitions are seen, code is not."""
    sample = (
        "See [a](docs/a.md#b), ![c](bench/c.png) and [d][d].\n\n"
        "[d]: https://example.org/\n\n"
        "`[not](a-link.md)`\n\n```md\n[nor](this.md)\n```\n"
    )
    text = prose(sample)
    assert INLINE.findall(text) + DEFINITION.findall(text) == [
        "docs/a.md#b",
        "bench/c.png",
        "https://example.org/",
    ]
    assert github_slug("Calling the API from Python: `token_lifecycle.client`") == (
        "calling-the-api-from-python-token_lifecycleclient"
    )


def test_readme_links_resolve():
    """Each relative link and image of the README names a file (and heading) that exists."""
    assert targets(README), "no links found in README.md: is the parser broken?"
    assert broken_links(README, check_anchors=True, stay_inside=ROOT) == []


@pytest.mark.parametrize("page", docs_pages(), ids=lambda page: page.name)
def test_docs_links_resolve(page: Path):
    """Each relative link of a docs page names a file inside docs/, and an existing heading."""
    if page == long_description():
        return  # PyPI's page: test_pypi_description_has_no_relative_links
    assert broken_links(page, check_anchors=True, stay_inside=DOCS) == []


def test_pypi_description_has_no_relative_links():
    """PyPI shows the long description alone: every link and image there is absolute."""
    description = long_description()
    assert description.is_file(), f"pyproject.toml's readme {description} does not exist"
    relative = [
        target
        for target in targets(description)
        if not target.startswith(("https://", "http://", "mailto:"))
    ]
    assert relative == []
    # Relative images would break as well; none is written any other way.
    assert "<img" not in prose(description.read_text(encoding="utf-8"))
