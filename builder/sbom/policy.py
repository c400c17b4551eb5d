"""The site's SBOM settings: `ROOT/sbom/policy.yaml` (what builder adds to and demands of an SBOM)
and `ROOT/sbom/syft.yaml` (how syft scans). Both are optional; without them builder's defaults
apply, and syft still gets an explicit configuration (never a user's `~/.syft.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field, StringConstraints

from builder.catalogue.models import Model
from builder.errors import InvalidCatalogue

SITE_DIR = "sbom"
POLICY_FILE = "policy.yaml"
SYFT_FILE = "syft.yaml"

# What builder gives syft when the site has no sbom/syft.yaml: the same settings the shipped file
# documents, so that no configuration file of the user's home is read.
DEFAULT_SYFT_CONFIG = """\
check-for-app-update: false
parallelism: 1
scope: squashed
enrich: []
golang: {search-local-mod-cache-licenses: false, search-remote-licenses: false}
java: {use-network: false, use-maven-local-repository: false}
javascript: {search-remote-licenses: false}
python: {guess-unpinned-requirements: false}
"""

Uri = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9+.-]*://[^\s#]+$")]


class SbomPolicy(Model):
    """`sbom/policy.yaml`."""

    spdx_namespace: Uri | None = Field(
        None,
        alias="spdx-namespace",
        description="Base URI of the SPDX documentNamespace; the document's name and a content-derived UUID are appended. Default: syft's.",
    )
    organization: Annotated[str, StringConstraints(min_length=1, pattern=r"^[^\n\r]+$")] | None = Field(
        None,
        description="Named as a creator of the SBOMs (SPDX 'Organization: ...', CycloneDX metadata.supplier).",
    )
    allow_missing: dict[str, Annotated[str, StringConstraints(min_length=1)]] = Field(
        default_factory=dict,
        alias="allow-missing",
        description="Locked packages that may be absent from the image, each with the reason (the completeness check skips them).",
    )


@dataclass(frozen=True)
class Site:
    """The policy and the syft configuration file (None: builder's default)."""

    policy: SbomPolicy
    syft_config: Path | None

    @classmethod
    def default(cls) -> Site:
        return cls(SbomPolicy(), None)


def load_site(root: Path) -> Site:
    """`root/sbom/`'s policy and syft configuration; a malformed policy is a catalogue problem
    (exit 2, with file, line and column)."""
    from builder.catalogue.load import validate_document
    from builder.catalogue.yamlio import load_yaml_file

    directory = root / SITE_DIR
    policy = SbomPolicy()
    path = directory / POLICY_FILE
    if path.is_file():
        data, problems = load_yaml_file(path)
        if data is not None:
            document, problems = validate_document(path, data, SbomPolicy)
            if document is not None:
                policy = document.model
        if problems:
            raise InvalidCatalogue(problems)
    syft = directory / SYFT_FILE
    return Site(policy, syft if syft.is_file() else None)
