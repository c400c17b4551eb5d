"""The main job end to end, offline: `build stack` on the sandbox for an arm64 cell (under qemu) and an
amd64 cell, with docker and with buildah, pushing to the sandbox registry. The pushed image is pulled
back by digest and run; a second build takes the C extension from the wheel cache."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from builder.lock.model import read_toml
from builder.sign.provenance import BUILD_TYPE
from tests.conftest import ROOT, run_cli
from tests.imagebytes import added_bytes, base_diff_ids
from tests.sandbox import state_dir
from tests.standins import Index

pytestmark = pytest.mark.integration

DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker") or "docker")
PROBE = """
import glob, importlib.metadata as md, json, os, shutil, standin_ext, standin_lib
print(json.dumps({
    "uid": os.getuid(),
    "versions": {name: md.version(name) for name in ("standin-lib", "standin-ext")},
    "add": standin_ext.add(2, 3),
    "max_jobs": standin_ext.max_jobs(),
    "compilers": [tool for tool in ("gcc", "cc", "c++", "g++", "clang") if shutil.which(tool)]
                 + glob.glob("/usr/bin/*-gcc*") + glob.glob("/usr/lib/gcc/*"),
    "greeting": os.environ.get("SANDBOX_GREETING"),
}))
"""


def _exports(text: str) -> dict[str, str]:
    return {
        key: shlex.split(value)[0]
        for key, _, value in (line.removeprefix("export ").partition("=") for line in text.splitlines())
    }


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    up = subprocess.run([str(ROOT / "tests/sandbox/up")], capture_output=True, text=True, check=False, timeout=3000)
    assert up.returncode == 0, up.stderr[-3000:]
    exports = _exports(up.stdout)
    work = tmp_path_factory.mktemp("e2e")
    args = ["--root", exports["BUILDER_SANDBOX_ROOT"], *shlex.split(exports["BUILDER_SANDBOX_ARGS"])]
    args += ["--index", f"default={exports['BUILDER_SANDBOX_INDEX']}", "--lock-dir", str(work / "locks")]
    locked = run_cli("lock", exports["BUILDER_SANDBOX_STACK"], *args, "--cache-dir", str(work / "lock-cache"))
    assert locked.code == 0, locked.err
    try:
        yield {"exports": exports, "args": args, "work": work}
    finally:
        subprocess.run([str(ROOT / "tests/sandbox/down")], capture_output=True, check=False, timeout=60)


def build(sandbox: dict[str, Any], engine: str, target: str, *extra: str) -> dict[str, Any]:
    work: Path = sandbox["work"]
    result = run_cli(
        "stack", sandbox["exports"]["BUILDER_SANDBOX_STACK"], *sandbox["args"], "--engine", engine,
        "--target", target, "--out", str(work / f"out-{engine}"), "--cache-dir", str(work / f"cache-{engine}"),
        "--json", *extra,
    )  # fmt: skip
    assert result.code == 0, result.err[-4000:]
    printed = json.loads(result.out)
    assert printed["skipped"] == [] and len(printed["results"]) == 1
    found: dict[str, Any] = printed["results"][0]
    on_disk = json.loads((work / f"out-{engine}" / "sandbox" / target / "result.json").read_text())
    assert on_disk == found
    for stage in found["stages"]:  # progress names each stage the engine ran, with its duration
        assert (f"{stage['name']}: done in" in result.err) is not stage["cached"], result.err[-2000:]
    return found


def probe(reference: str, platform: str) -> dict[str, Any]:
    ran = subprocess.run(
        [DOCKER, "run", "--rm", "--platform", platform, "--network", "none", reference, "python", "-c", PROBE],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    found: dict[str, Any] = json.loads(ran.stdout.strip().splitlines()[-1])
    return found


def locked_versions(sandbox: dict[str, Any], target: str) -> dict[str, str]:
    directory = sandbox["work"] / "locks" / "sandbox" / target
    pylock = read_toml((directory / "pylock.toml").read_text())
    image_lock = json.loads((directory / "image-lock.json").read_text())
    versions = {package["name"]: str(package["version"]) for package in pylock["packages"]}
    versions.update({d["package"]: d["version"] for d in image_lock["packages"]})
    return versions


@pytest.mark.parametrize("engine", ["docker", "buildah"])
@pytest.mark.parametrize("target", ["standin-arm64/debian12-cu126", "standin-amd64/debian12-cu126"])
def test_build_push_run_and_rebuild_from_the_wheel_cache(
    sandbox: dict[str, Any], engine: str, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = sandbox["exports"]["BUILDER_SANDBOX_REGISTRY"]
    repository = f"{registry}/e2e-{engine}"
    monkeypatch.setenv("COSIGN_PASSWORD", "e2e password")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert run_cli("keygen", "--out", str(tmp_path / "cosign")).code == 0
    first = build(
        sandbox, engine, target, "--registry", repository, "--push", "--sign-key", str(tmp_path / "cosign.key")
    )

    slug = target.replace("/", "-")
    checksum = first["lock-checksum"].removeprefix("sha256:")[:12]
    assert first["image"]["tags"] == [f"{repository}:{slug}", f"{repository}:{slug}-{checksum}"]
    assert first["image"]["reference"] == f"{repository}@{first['image']['digest']}"
    assert first["engine"]["name"] == engine and first["image"]["stored"] == "registry"
    assert first["wheel_cache"]["standin-ext"]["cache_hit"] is False
    stages = {stage["name"]: stage for stage in first["stages"]}
    assert stages["build-standin-ext"]["cached"] is False and stages["build-standin-ext"]["seconds"] > 0
    assert Path(stages["runtime+app"]["log"]).is_file()
    assert 0 < first["sizes"]["added_bytes"] < first["sizes"]["layers_bytes"]

    arch = target.split("/")[0].removeprefix("standin-")
    seen = probe(first["image"]["reference"], f"linux/{arch}")
    assert seen["add"] == 5 and seen["max_jobs"] == 4  # the C extension, built with the plan's MAX_JOBS
    assert seen["versions"] == {name: locked_versions(sandbox, target)[name] for name in seen["versions"]}
    assert seen["compilers"] == []  # the toolchain stayed in the builder stage
    assert seen["uid"] == 10001 and seen["greeting"] == "hello"
    app = subprocess.run(
        [DOCKER, "run", "--rm", "--platform", f"linux/{arch}", "--network", "none", first["image"]["reference"]],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert app.stdout.strip() == "hello: 2 + 3 = 5, built with MAX_JOBS=4", app.stderr[-2000:]  # the app's CMD

    # Proven: SBOMs complete against the lock, signed and attested; verify passes offline with the public key.
    digest = first["image"]["digest"]
    assert first["sbom"]["digest"] == digest and first["sbom"]["missing"] == []
    assert first["sbom"]["locked"] >= 2 and Path(first["sbom"]["paths"]["spdx"]).is_file()
    assert first["sbom"]["scanned"] == "full" and first["sbom"]["seconds"] > 0
    assert first["signature"]["where"] == f"sha256-{digest.removeprefix('sha256:')}.sig"
    assert [a["type"] for a in first["attestations"]] == ["spdxjson", "cyclonedx", "slsaprovenance1"]
    assert "e2e password" not in json.dumps(first)
    verified = run_cli(
        "verify", first["image"]["tags"][1], "--key", str(tmp_path / "cosign.pub"), "--require", "sbom,provenance",
        "--root", sandbox["exports"]["BUILDER_SANDBOX_ROOT"], "--lock-dir", str(sandbox["work"] / "locks"), "--json",
    )  # fmt: skip
    assert verified.code == 0, verified.out + verified.err
    checks = {check["name"]: check for check in json.loads(verified.out)["checks"]}
    assert {"signature", "sbom", "provenance", "sbom-covers-lock", "provenance-lock"} <= set(checks)
    assert json.loads(verified.out)["digest"] == digest
    # The job summary on GitHub Actions, and the provenance file a keyless CI attests with cosign.
    shown = summary.read_text()
    assert f"`{first['image']['reference']}`" in shown and f"{first['sizes']['layers_bytes']:,} B" in shown
    assert "verify `" in shown and "| signature | ✅ ok |" in shown
    assert json.loads(Path(first["provenance"]["path"]).read_text())["buildDefinition"]["buildType"] == BUILD_TYPE

    # The image carries its own smoke runner; here (no GPU) it still checks versions and imports: exit 3.
    smoked = smoke(sandbox, target, first["image"]["tags"][1], "--sign-key", str(tmp_path / "cosign.key"))
    assert smoked["builder"]["image"] == first["image"]["reference"] and smoked["attestation"]["added"]
    require_smoke = run_cli(
        "verify", first["image"]["reference"], "--key", str(tmp_path / "cosign.pub"), "--require", "smoke"
    )
    assert require_smoke.code == 1 and "smoke run did not pass: no gpu" in require_smoke.err

    # Again, without a registry: the wheel comes from the cache, the image goes to an OCI layout.
    second = build(sandbox, engine, target)
    assert second["wheel_cache"]["standin-ext"] == {**first["wheel_cache"]["standin-ext"], "cache_hit": True}
    assert {stage["name"]: stage["cached"] for stage in second["stages"]}["build-standin-ext"] is True
    layout = Path(second["image"]["oci-layout"])
    index = json.loads((layout / "index.json").read_text())
    assert second["image"]["digest"] in [manifest["digest"] for manifest in index["manifests"]]
    assert second["image"]["tags"][0] == f"sandbox:{slug}"
    assert second["sbom"]["digest"] == second["image"]["digest"] and "signature" not in second
    spdx = json.loads(Path(second["sbom"]["paths"]["spdx"]).read_text())
    found = {package["name"] for package in spdx["packages"]}
    assert {"standin-lib", "standin-ext"} <= found
    if engine == "docker":  # an OCI layout runs too (copied into the engine's store first)
        smoke(sandbox, target, f"oci:{layout}@{second['image']['digest']}")


def smoke(sandbox: dict[str, Any], target: str, image: str, *extra: str) -> dict[str, Any]:
    """`build smoke --image` here: no GPU, so exit 3, with the locked versions and imports checked in the image."""
    work: Path = sandbox["work"]
    done = run_cli(
        "smoke", sandbox["exports"]["BUILDER_SANDBOX_STACK"], "--target", target, "--image", image,
        "--root", sandbox["exports"]["BUILDER_SANDBOX_ROOT"], "--lock-dir", str(work / "locks"),
        "--out", str(work / "smoke" / target), "--json", *extra,
    )  # fmt: skip
    assert done.code == 3, done.err[-3000:]
    assert done.err.strip().splitlines()[-1].startswith("error: no GPU: ")
    report: dict[str, Any] = json.loads(done.out)
    checks = {check["name"]: check for check in report["checks"]}
    locked = locked_versions(sandbox, target)
    for name in ("standin-lib", "standin-ext"):
        assert checks[f"version:{name}"]["status"] == "pass" and checks[f"version:{name}"]["value"] == locked[name]
    assert checks["import:standin_ext"]["status"] == checks["import:standin_lib"]["status"] == "pass"
    assert checks["import-time"]["status"] == "not run" and report["summary"]["result"] == "no gpu"
    assert report["environment"]["machine"] == {"standin-arm64": "aarch64"}.get(target.split("/")[0], "x86_64")
    assert json.loads((work / "smoke" / target / "smoke.json").read_text())["checks"] == report["checks"]
    return report


SITE_PACKAGES = "opt/venv/lib/python3.11/site-packages"  # the sandbox cells' Python is 3.11


@pytest.mark.parametrize("engine", ["docker", "buildah"])
def test_the_image_carries_no_dead_weight(sandbox: dict[str, Any], engine: str) -> None:
    """Above its runtime base, the image's layers add at most 5% more than the installed packages
    and the app (uncompressed layer bytes on both sides: tests/imagebytes.py says how each is
    measured, and why). A wheel or requirements file copied in, installed and deleted would still
    be in its layer: the stand-in extension's wheel carries 8 MiB of random bytes, so leaving it
    behind adds about a quarter here."""
    target = "standin-amd64/debian12-cu126"
    result = build(sandbox, engine, target)
    registry = sandbox["exports"]["BUILDER_SANDBOX_REGISTRY"]
    base = base_diff_ids(registry, result["base"]["runtime"], "amd64")
    layout = Path(result["image"]["oci-layout"])
    sizes = added_bytes(layout, result["image"]["digest"], base, roots=(SITE_PACKAGES, "app"))
    assert sizes.installed > 8 * 1024 * 1024  # the payload is installed and counted
    assert sizes.added <= 1.05 * sizes.installed, (
        f"{engine}: {sizes.added} bytes added above the base for {sizes.installed} installed "
        f"({sizes.ratio:.3f}x); largest members outside site-packages and the app: {sizes.leftovers}"
    )


def test_published_wheels_let_other_runners_skip_the_source_build(sandbox: dict[str, Any], tmp_path: Path) -> None:
    """A runner publishes the wheel it built; another runner, locking against that team index, takes the wheel."""
    target = "standin-amd64/debian12-cu126"
    with Index.serve(tmp_path / "team") as team:
        result = run_cli(
            "stack", "sandbox", *sandbox["args"], "--engine", "docker", "--target", target,
            "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
            "--publish-wheels", f"http://127.0.0.1:{team.port}/", "--json",
        )  # fmt: skip
        assert result.code == 0, result.err[-3000:]
        built = json.loads(result.out)["results"][0]["wheel_cache"]["standin-ext"]
        assert built["published"] is True and built["cache_hit"] is False
        assert sorted(path.name for path in (tmp_path / "team").iterdir()) == built["wheels"]

        shutil.copy(next((state_dir() / "wheels").glob("standin_lib-*.whl")), tmp_path / "team")
        relock = [f"standin={team.url}" if arg.startswith("standin=") else arg for arg in sandbox["args"]]
        relock[relock.index("--lock-dir") + 1] = str(tmp_path / "locks")
        relock += ["--cache-dir", str(tmp_path / "lock-cache")]
        locked = run_cli("lock", "sandbox", "--target", target, *relock, "--json")
        assert locked.code == 0, locked.err
        kinds = {d["package"]: d["kind"] for d in json.loads(locked.out)[0]["image_lock"]["packages"]}
        assert kinds["standin-ext"] == "wheel"


def _stack(sandbox: dict[str, Any], *args: str) -> tuple[dict[str, Any], str]:
    result = run_cli("stack", *args, *sandbox["args"], "--json")
    assert result.code == 0, result.err[-4000:]
    found: dict[str, Any] = json.loads(result.out)["results"][0]
    return found, result.err


def test_an_unchanged_build_runs_no_engine_and_pushes_nothing(
    sandbox: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path: the same inputs again are answered from result.json once the registry is seen
    to hold the digest under both tags; the SBOMs, signature and attestations recorded for it are
    reused. --force builds; an image gone from the registry is built and pushed again."""
    target = "standin-amd64/debian12-cu126"
    registry = sandbox["exports"]["BUILDER_SANDBOX_REGISTRY"]
    monkeypatch.setenv("COSIGN_PASSWORD", "fast")
    assert run_cli("keygen", "--out", str(tmp_path / "cosign")).code == 0
    args = ["sandbox", "--engine", "docker", "--target", target, "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--registry", f"{registry}/fast", "--push",
            "--sign-key", str(tmp_path / "cosign.key")]  # fmt: skip
    first, _ = _stack(sandbox, *args)
    assert first["fast-path"] is False and first["content-key"].startswith("sha256:")
    sbom = Path(first["sbom"]["paths"]["spdx"])
    made = sbom.stat().st_mtime_ns

    again, progress = _stack(sandbox, *args)
    assert again["fast-path"] is True and again["stages"] == []
    assert "no engine call, no push (--force builds anyway)" in progress and "done in" not in progress
    assert {k: again["image"][k] for k in ("digest", "tags")} == {k: first["image"][k] for k in ("digest", "tags")}
    assert again["sbom"] == first["sbom"] and sbom.stat().st_mtime_ns == made  # not scanned again
    assert again["signature"] == {**first["signature"], "added": False}
    assert again["built"] == first["started"]
    assert json.loads((tmp_path / "out" / "sandbox" / target / "result.json").read_text()) == again

    forced, progress = _stack(sandbox, *args, "--force")
    assert forced["fast-path"] is False and "runtime+app: done in" in progress
    # The cold build's image started beside its source build; this one mounts the wheel the wheel
    # cache holds, through a stage of the same name and paths: the engine's layer cache makes the
    # same image, and its SBOMs are not made again.
    assert forced["image"]["digest"] == first["image"]["digest"]
    assert "unchanged since they were made, kept" in progress
    sbom = Path(forced["sbom"]["paths"]["spdx"])
    made = sbom.stat().st_mtime_ns
    again, progress = _stack(sandbox, *args, "--force")
    assert again["fast-path"] is False and again["image"]["digest"] == forced["image"]["digest"]
    assert "unchanged since they were made, kept" in progress and sbom.stat().st_mtime_ns == made

    request = urllib.request.Request(f"http://{registry}/v2/fast/manifests/{again['image']['digest']}", method="DELETE")
    urllib.request.urlopen(request, timeout=30).close()  # both tags go with the manifest
    rebuilt, progress = _stack(sandbox, *args)
    assert rebuilt["fast-path"] is False and "is no longer in the registry" in progress
    assert [stage["name"] for stage in rebuilt["stages"]][-1].startswith("push-")

    serve = tmp_path / "catalogue" / "app" / "serve.py"
    shutil.copytree(sandbox["exports"]["BUILDER_SANDBOX_ROOT"], tmp_path / "catalogue")
    serve.write_text(serve.read_text() + "# changed\n")
    moved = [str(tmp_path / "catalogue") if arg == sandbox["exports"]["BUILDER_SANDBOX_ROOT"] else arg
             for arg in sandbox["args"]]  # fmt: skip
    changed = run_cli("stack", *args, *moved, "--json")
    assert changed.code == 0, changed.err[-3000:]
    assert "its inputs changed since the last build" in changed.err
    assert json.loads(changed.out)["results"][0]["image"]["digest"] != first["image"]["digest"]


@pytest.mark.parametrize("engine", ["docker", "buildah"])
def test_an_app_only_change_reuses_the_scan_of_the_layers_below(
    sandbox: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """An app change gives a new digest over the same lower layers: its SBOMs come from the recorded
    scan of those layers, bound to the new image, byte for byte what a full scan of it gives. App
    files in which syft finds a package are scanned in full, and the package is in the SBOMs."""
    monkeypatch.setenv("BUILDER_CACHE_DIR", str(tmp_path / "builder-cache"))
    root = sandbox["exports"]["BUILDER_SANDBOX_ROOT"]
    shutil.copytree(root, tmp_path / "catalogue")
    shutil.copytree(sandbox["work"] / "locks", tmp_path / "locks")
    moved = {root: str(tmp_path / "catalogue"), str(sandbox["work"] / "locks"): str(tmp_path / "locks")}
    target = "standin-amd64/debian12-cu126"
    registry = sandbox["exports"]["BUILDER_SANDBOX_REGISTRY"]
    argv = ["stack", "sandbox", *(moved.get(arg, arg) for arg in sandbox["args"]), "--engine", engine,
            "--target", target, "--out", str(tmp_path / "out"), "--cache-dir", str(sandbox["work"] / f"cache-{engine}"),
            "--registry", f"{registry}/layered-{engine}", "--push", "--json"]  # fmt: skip

    def stack(*extra: str) -> tuple[dict[str, Any], str]:
        result = run_cli(*argv, *extra)
        assert result.code == 0, result.err[-4000:]
        return json.loads(result.out)["results"][0], result.err

    def sboms(result: dict[str, Any]) -> dict[str, bytes]:
        return {kind: Path(path).read_bytes() for kind, path in result["sbom"]["paths"].items()}

    first, progress = stack()
    assert "a full scan (no earlier scan of the layers below the app stage)" in progress
    assert first["sbom"]["scanned"] == "full"
    serve = tmp_path / "catalogue" / "app" / "serve.py"
    serve.write_text(serve.read_text() + "# changed\n")
    second, progress = stack()
    assert second["image"]["digest"] != first["image"]["digest"]
    assert "that scan is used, no rescan" in progress and "with syft" not in progress.split("runtime+app")[-1]
    assert second["sbom"]["scanned"] == first["image"]["digest"]
    reused = sboms(second)
    assert (
        second["image"]["digest"].encode() in reused["spdx"] and first["image"]["digest"].encode() not in reused["spdx"]
    )

    # The same image scanned in full (no record, no SBOM files: the fast path scans it again).
    shutil.rmtree(tmp_path / "builder-cache" / "sbom-scans")
    for path in second["sbom"]["paths"].values():
        Path(path).unlink()
    third, progress = stack()
    assert third["fast-path"] is True and "a full scan (no earlier scan" in progress
    assert third["image"]["digest"] == second["image"]["digest"] and sboms(third) == reused

    # App files that carry a package: syft's finding is not assumed away.
    stack_file = tmp_path / "catalogue" / "stacks" / "sandbox.yaml"
    thing = tmp_path / "catalogue" / "app" / "thing-1.0.dist-info"
    thing.mkdir()
    (thing / "METADATA").write_text("Metadata-Version: 2.1\nName: thing\nVersion: 1.0\n")
    stack_file.write_text(stack_file.read_text().replace(
        "files: [{src: app/serve.py, dest: /app/serve.py}]",
        "files: [{src: app/serve.py, dest: /app/serve.py}, {src: app/thing-1.0.dist-info, dest: /app/thing-1.0.dist-info}]",
    ))  # fmt: skip
    fourth, progress = stack("--update-lock")
    assert "syft finds 1 package(s) in the app files" in progress and fourth["sbom"]["scanned"] == "full"
    assert b"pkg:pypi/thing@1.0" in sboms(fourth)["spdx"]


@pytest.mark.parametrize("engine", ["docker", "buildah"])
def test_an_unchanged_oci_layout_is_not_written_again(sandbox: dict[str, Any], tmp_path: Path, engine: str) -> None:
    """Without --push: the layout still holding the digest under its tag (and every blob) is the fast
    path. (The wheel cache of the first test in this module: only the image is built.)"""
    target = "standin-amd64/debian12-cu126"
    args = ["sandbox", "--engine", engine, "--target", target, "--out", str(tmp_path / "out"),
            "--cache-dir", str(sandbox["work"] / f"cache-{engine}")]  # fmt: skip
    first, _ = _stack(sandbox, *args)
    again, progress = _stack(sandbox, *args)
    assert again["fast-path"] is True and "is still in oci:" in progress
    assert again["image"]["digest"] == first["image"]["digest"]
    layout = Path(first["image"]["oci-layout"])
    manifest = json.loads((layout / "blobs" / "sha256" / first["image"]["digest"].removeprefix("sha256:")).read_text())
    (layout / "blobs" / "sha256" / manifest["layers"][-1]["digest"].removeprefix("sha256:")).unlink()
    rebuilt, progress = _stack(sandbox, *args)
    assert rebuilt["fast-path"] is False and "lost the blob" in progress


def _overlap(stages: list[dict[str, Any]], names: set[str]) -> bool:
    """Whether the named engine steps all ran at one moment."""
    chosen = [stage for stage in stages if stage["name"] in names]
    assert {stage["name"] for stage in chosen} == names
    return float(max(stage["started"] for stage in chosen)) < float(min(stage["finished"] for stage in chosen))


@pytest.mark.parametrize("engine", ["docker", "buildah"])
def test_the_source_builds_of_a_wave_run_at_once(sandbox: dict[str, Any], tmp_path: Path, engine: str) -> None:
    """sandbox-pair has two source builds in one wave (4 + 0.25 GB of 5 GB): they run as concurrent
    engine calls. BuildKit shares the steps concurrent builds have in common, so with docker the
    image build starts with them (0.5 GB left for the runtime stage's preparation); buildah pulls
    the devel base once first and the runtime base meanwhile."""
    target = "standin-amd64/debian12-cu126"
    args = list(sandbox["args"])
    args[args.index("--lock-dir") + 1] = str(tmp_path / "locks")
    locked = run_cli("lock", "sandbox-pair", "--target", target, *args, "--cache-dir", str(tmp_path / "cache"))
    assert locked.code == 0, locked.err
    built = run_cli(
        "stack", "sandbox-pair", "--engine", engine, "--target", target, "--out", str(tmp_path / "out"),
        "--cache-dir", str(tmp_path / "cache"), *args, "--json",
    )  # fmt: skip
    assert built.code == 0, built.err[-4000:]
    result = json.loads(built.out)["results"][0]
    stages = result["stages"]
    pair = {"build-standin-ext", "build-standin-tool"}
    assert {stage["name"]: stage.get("wave") for stage in stages if stage["name"] in pair} == dict.fromkeys(pair, 0)
    assert {name: w["cache_hit"] for name, w in result["wheel_cache"].items()} == {
        "standin-ext": False, "standin-tool": False
    }  # fmt: skip
    if engine == "docker":
        assert _overlap(stages, {*pair, "runtime+app"})
        assert "wave 1 of 1: build-standin-ext, build-standin-tool, runtime+app at once" in built.err
    else:
        assert stages[0]["name"] == "pull-devel"
        assert _overlap(stages, {*pair, "pull-runtime"})
        assert "wave 1 of 1: build-standin-ext, build-standin-tool, pull-runtime at once" in built.err
    assert _overlap(stages, pair)


def _layout_bytes(layout: Path) -> list[bytes]:
    """Every blob of an OCI layout, gzip layers opened and their files read: what an image holds."""
    import gzip
    import io
    import tarfile

    found = []
    for blob in (layout / "blobs" / "sha256").iterdir():
        data = blob.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        found.append(data)
        if tarfile.is_tarfile(io.BytesIO(data)):
            with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                for member in layer.getmembers():
                    handle = layer.extractfile(member) if member.isfile() else None
                    if handle is not None:
                        found.append(handle.read())
    return found


def test_private_index_credentials_reach_the_build_only_as_a_secret(sandbox: dict[str, Any], tmp_path: Path) -> None:
    """Lock and build against an index that needs credentials: the build gets them as its netrc
    secret (the install succeeds), and they appear in no file, log, result, output or image layer."""
    secret = "sandbox-s3cret-never-shown"
    target = "standin-amd64/debian12-cu126"
    shutil.copytree(state_dir() / "wheels", tmp_path / "private")
    with Index.serve(tmp_path / "private", auth=("builder", secret)) as private:
        url = f"http://builder:{secret}@127.0.0.1:{private.port}/simple/"
        args = [
            f"{a.partition('=')[0]}={url}" if a.startswith(("standin=", "default=")) else a for a in sandbox["args"]
        ]
        args[args.index("--lock-dir") + 1] = str(tmp_path / "locks")
        common = [*args, "--cache-dir", str(tmp_path / "cache")]
        locked = run_cli("lock", "sandbox", "--target", target, *common)
        built = run_cli(
            "stack", "sandbox", "--target", target, *common, "--engine", "docker", "--out", str(tmp_path / "out")
        )
    for result in (locked, built):
        assert result.code == 0, result.err[-3000:]
        assert secret not in result.out and secret not in result.err
    on_disk = [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert on_disk == []
    layout = tmp_path / "out" / "sandbox" / target / "oci"
    assert not any(secret.encode() in blob for blob in _layout_bytes(layout))


def test_the_readmes_offline_block_word_for_word(sandbox: dict[str, Any], tmp_path: Path) -> None:
    """Last in this module: the block ends with `tests/sandbox/down`."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- offline -->\s*```sh\n(.*?)```", readme, re.DOTALL)
    assert block, "README.md has no offline block"
    for leftover in ("/tmp/sandbox-out", "/tmp/sandbox-locks"):  # the paths the block names
        shutil.rmtree(leftover, ignore_errors=True)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "BUILDER_CACHE_DIR": str(tmp_path / "cache"),  # a cold wheel cache, as for a first-time user
    }
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.group(1)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=2400,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-4000:]
    registry = sandbox["exports"]["BUILDER_SANDBOX_REGISTRY"]
    for target in sandbox["exports"]["BUILDER_SANDBOX_TARGETS"].split():
        result = json.loads(Path("/tmp/sandbox-out/sandbox", target, "result.json").read_text())
        assert result["image"]["stored"] == "registry"
        assert result["image"]["reference"] == f"{registry}/sandbox@{result['image']['digest']}"
        assert result["wheel_cache"]["standin-ext"]["cache_hit"] is False
    host, port = registry.split(":")
    with socket.socket() as probe_socket:
        assert probe_socket.connect_ex((host, int(port))) != 0  # and `down` stopped the servers
