"""Validation: the catalogue as read (`builder.catalogue`) checked against the cross-file rules
(`checks`), every problem reported at once. `load_catalogue` is what every command reads."""

from __future__ import annotations

from pathlib import Path

from builder.catalogue.documents import Catalogue
from builder.catalogue.load import read_catalogue
from builder.errors import InvalidCatalogue
from builder.validate.checks import check_catalogue


def load_catalogue(root: Path) -> Catalogue:
    """Read and check every file under `root`; raise InvalidCatalogue listing every problem found."""
    catalogue, problems = read_catalogue(root)
    problems += check_catalogue(catalogue)
    if problems:
        raise InvalidCatalogue(problems)
    return catalogue
