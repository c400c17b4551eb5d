"""Every citation in the real catalogue resolves to an entry of docs/sources.md, and none names a document users lack."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

SOURCES = ROOT / "docs" / "sources.md"
CATALOGUE = sorted(
    path
    for pattern in ("matrix/**/*.yaml", "matrix/**/*.yml", "recipes/*.yaml", "recipes/*.yml", "stacks/*.yaml")
    for path in ROOT.glob(pattern)
)

ID = r"(?:S\d+|(?:DF|JC|SEED|M)-\d+(?:\.\d+)?[a-z]?)"
# "docs/sources.md S9, S34: ...", "docs/sources.md JC-4.5/JC-4.6 (...)", "docs/sources.md DF-3, S26"
CITATION = re.compile(rf"docs/sources\.md (?P<ids>{ID}(?:(?:, | and |/| / ){ID})*)(?![\w.-])")
# prefixed ids may also follow a parenthesis, e.g. "docs/sources.md JC-1.7 (...), JC-4.4 (...)"
PREFIXED = re.compile(r"(?<![\w.-])(?:DF|JC|SEED|M)-\d+(?:\.\d+)?[a-z]?(?![\w-])")
ANCHOR = re.compile(r'^<a id="(?P<id>[^"]+)"></a>\n### (?P<heading>\S+) ', re.MULTILINE)
# the project's research notes and seed documents, which are not in the repository ("facebookresearch/" is fine)
UNREACHABLE = re.compile(r"(?<![\w-])(?:research|seeds)/|\.\./sh[a]red|device-facts|jetson-containers\.md")


def _anchors() -> dict[str, str]:
    text = SOURCES.read_text(encoding="utf-8")
    found = [(m["id"], m["heading"]) for m in ANCHOR.finditer(text)]
    ids = [anchor for anchor, _ in found]
    assert len(ids) == len(set(ids)), f"duplicate anchors in docs/sources.md: {sorted(ids)}"
    assert text.count("<a id=") == len(ids), "every anchor must be followed by a '### <ID> ' heading"
    return dict(found)


def _cited(text: str) -> set[str]:
    flat = re.sub(r"\s+", " ", text)  # a folded note may wrap between "docs/sources.md" and its id
    matches = list(CITATION.finditer(flat))
    assert len(matches) == flat.count("docs/sources.md"), "every 'docs/sources.md' must be followed by an id"
    ids = {one for m in matches for one in re.findall(ID, m["ids"])}
    return ids | set(PREFIXED.findall(flat))


def test_catalogue_files_are_found() -> None:
    names = {path.relative_to(ROOT).parts[0] for path in CATALOGUE}
    assert names == {"matrix", "recipes", "stacks"}
    assert ROOT / "matrix" / "indexes.yaml" in CATALOGUE


def test_every_anchor_names_its_heading() -> None:
    anchors = _anchors()
    assert anchors, "docs/sources.md has no anchored entries"
    mismatched = {anchor: heading for anchor, heading in anchors.items() if anchor != heading}
    assert not mismatched
    assert all(re.fullmatch(ID, anchor) for anchor in anchors), sorted(anchors)


def test_numbered_sources_are_contiguous() -> None:
    numbers = sorted(int(anchor[1:]) for anchor in _anchors() if re.fullmatch(r"S\d+", anchor))
    assert numbers == list(range(1, len(numbers) + 1))


def test_sources_document_is_self_contained() -> None:
    text = SOURCES.read_text(encoding="utf-8")
    assert "../" + "shared" not in text


@pytest.mark.parametrize("path", CATALOGUE, ids=lambda p: str(p.relative_to(ROOT)))
def test_citations_resolve(path: Path) -> None:
    missing = _cited(path.read_text(encoding="utf-8")) - set(_anchors())
    assert not missing, f"{path.relative_to(ROOT)} cites ids with no entry in docs/sources.md: {sorted(missing)}"


@pytest.mark.parametrize("path", CATALOGUE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_citation_of_documents_outside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = sorted(set(UNREACHABLE.findall(text)))
    assert not found, f"{path.relative_to(ROOT)} mentions {found}; cite docs/sources.md instead"


def test_the_catalogue_cites_every_kind_of_entry() -> None:
    cited: set[str] = set()
    for path in CATALOGUE:
        cited |= _cited(path.read_text(encoding="utf-8"))
    assert {"S8", "DF-4", "JC-4.11", "SEED-003", "M-1"} <= cited
