"""Engine argv builders as data, engine detection over recorded tool answers, qemu detection."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from packaging.version import Version

from builder.build.engines import (
    Buildah,
    BuildRequest,
    Docker,
    bake_entitlements,
    bake_overrides,
    buildx_version,
    detect_buildah,
    detect_docker,
    emulation_problem,
    select_engine,
)
from builder.errors import UpstreamUnavailable, UsageError
from builder.process import Completed

REQUEST = BuildRequest(
    context=Path("/ctx"),
    target="runtime",
    platform="linux/arm64",
    tags=("maie-jetson:orin", "maie-jetson:orin-abc"),
    secrets={"netrc": Path("/s/netrc"), "ca-bundle": Path("/s/ca.pem")},
    build_args={"SOURCE_URL": "file:///git/x"},
    iidfile=Path("/tmp/iid"),
)
FLAGS = [
    "--file", "/ctx/Dockerfile", "--target", "runtime", "--platform", "linux/arm64", "--network", "host",
    "--secret", "id=ca-bundle,src=/s/ca.pem", "--secret", "id=netrc,src=/s/netrc",
    "--build-arg", "SOURCE_URL=file:///git/x",
    "--tag", "maie-jetson:orin", "--tag", "maie-jetson:orin-abc", "--iidfile", "/tmp/iid",
]  # fmt: skip


def test_docker_buildx_argv() -> None:
    docker = Docker("/usr/local/bin/docker", Version("28.2"), "buildx")
    assert docker.build_argv(REQUEST) == [
        "/usr/local/bin/docker",
        "buildx",
        "build",
        "--load",
        "--progress",
        "plain",
        *FLAGS,
        "/ctx",
    ]


def test_docker_builtin_buildkit_argv_and_env() -> None:
    docker = Docker("/usr/bin/docker", Version("20.10.24"), "builtin")
    assert docker.build_argv(REQUEST) == ["/usr/bin/docker", "build", "--progress", "plain", *FLAGS, "/ctx"]
    assert docker.build_env()["DOCKER_BUILDKIT"] == "1"
    assert docker.push_argv("img", "127.0.0.1:5000/img:t", Path("/d")) == [
        "/usr/bin/docker",
        "push",
        "127.0.0.1:5000/img:t",
    ]


def test_buildah_argv() -> None:
    buildah = Buildah("/usr/bin/buildah", Version("1.28.2"))
    assert buildah.build_argv(REQUEST) == [
        "/usr/bin/buildah", "--storage-driver", "vfs", "bud", "--isolation", "chroot", "--layers", *FLAGS, "/ctx"
    ]  # fmt: skip
    assert buildah.push_argv("img", "127.0.0.1:5000/img:t", Path("/d")) == [
        "/usr/bin/buildah", "--storage-driver", "vfs", "push", "--digestfile", "/d", "img", "docker://127.0.0.1:5000/img:t"
    ]  # fmt: skip


def test_exporting_a_stage_writes_files_instead_of_an_image() -> None:
    request = BuildRequest(Path("/ctx"), "wheels-vllm", "linux/arm64", output=Path("/out/w"), network_host=False)
    flags = ["--file", "/ctx/Dockerfile", "--target", "wheels-vllm", "--platform", "linux/arm64",
             "--output", "type=local,dest=/out/w"]  # fmt: skip
    buildx = Docker("/usr/local/bin/docker", Version("28.2"), "buildx")
    no_load = ["/usr/local/bin/docker", "buildx", "build", "--progress", "plain", *flags, "/ctx"]
    assert buildx.build_argv(request) == no_load  # the files come out; nothing is loaded into the store
    buildah = Buildah("/usr/bin/buildah", Version("1.28.2"))
    assert buildah.build_argv(request)[-len(flags) - 1 :] == [*flags, "/ctx"]


def test_tagging_pushing_insecurely_and_oci_layouts() -> None:
    docker = Docker("/usr/bin/docker", Version("20.10.24"), "builtin")
    buildah = Buildah("/usr/bin/buildah", Version("1.28.2"))
    assert docker.tag_argv("sha256:1", "r/i:t") == ["/usr/bin/docker", "tag", "sha256:1", "r/i:t"]
    assert buildah.tag_argv("sha256:1", "r/i:t") == [
        "/usr/bin/buildah",
        "--storage-driver",
        "vfs",
        "tag",
        "sha256:1",
        "r/i:t",
    ]
    assert docker.push_argv("img", "127.0.0.1:5000/img:t", Path("/d"), insecure=True) == [
        "/usr/bin/docker", "push", "127.0.0.1:5000/img:t"
    ]  # fmt: skip
    assert buildah.push_argv("img", "127.0.0.1:5000/img:t", Path("/d"), insecure=True)[3:6] == [
        "push", "--tls-verify=false", "--digestfile"
    ]  # fmt: skip
    assert docker.oci_layout_argv("i:t", Path("/o"), "t", Path("/d")) == [
        "skopeo", "copy", "--quiet", "--digestfile", "/d", "docker-daemon:i:t", "oci:/o:t"
    ]  # fmt: skip
    assert buildah.oci_layout_argv("i:t", Path("/o"), "t", Path("/d")) == [
        "/usr/bin/buildah", "--storage-driver", "vfs", "push", "--quiet", "--digestfile", "/d", "i:t", "oci:/o:t"
    ]  # fmt: skip


Table = dict[tuple[str, ...], tuple[int, str]]


VERSIONS = "{{.Server.Version}} {{.Client.Version}}"  # one call for both


def answers(table: Table) -> Callable[[Sequence[str]], Completed]:
    def run(argv: Sequence[str]) -> Completed:
        code, out = table.get(tuple(argv), (127, ""))
        return Completed(tuple(argv), code, out, "" if code == 0 else "not found")

    return run


def test_docker_detection_copes_with_a_client_that_needs_buildx() -> None:
    new, old = "/usr/local/bin/docker", "/usr/bin/docker"
    table: Table = {
        (new, "version", "--format", VERSIONS): (0, "20.10.24 28.2.2\n"),
        (old, "version", "--format", VERSIONS): (0, "20.10.24+dfsg1 20.10.24+dfsg1\n"),
    }
    chosen = detect_docker([new, old], answers(table))
    assert chosen == Docker(old, Version("20.10.24"), "builtin")
    assert (
        detect_docker([new], answers(table))
        == f"{new}: client 28.2.2 needs the buildx plugin for BuildKit and has none"
    )
    table[(new, "buildx", "version")] = (0, "github.com/docker/buildx v0.20.0 ab12cd3\n")
    found = detect_docker([new, old], answers(table))
    assert found == Docker(new, Version("20.10.24"), "buildx", buildx_version=Version("0.20.0"))
    assert isinstance(found, Docker) and found.bakes


def test_docker_without_a_daemon_and_too_old() -> None:
    assert str(detect_docker(["/d"], answers({}))).startswith("/d: no daemon answers")
    old: Table = {("/d", "version", "--format", VERSIONS): (0, "19.03.1 19.03.1")}
    assert detect_docker(["/d"], answers(old)) == "/d: daemon 19.03.1 is older than 20.10"


def test_buildah_detection() -> None:
    ok: Table = {("/b", "version", "--json"): (0, '{"version": "1.28.2", "goVersion": "go1.19"}')}
    assert detect_buildah(answers(ok), "/b") == Buildah("/b", Version("1.28.2"))
    old: Table = {("/b", "version", "--json"): (0, '{"version": "1.19.0"}')}
    assert detect_buildah(answers(old), "/b") == "/b: version 1.19.0 is older than 1.24"


def test_no_engine_is_exit_3_with_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("builder.build.engines.docker_clients", lambda: [])
    monkeypatch.setattr("builder.build.engines.shutil.which", lambda name: None)
    with pytest.raises(UpstreamUnavailable) as caught:
        select_engine("auto", answers({}))
    assert caught.value.exit_code == 3
    assert caught.value.lines() == [
        "error: no usable container engine (docker: no docker client found; buildah: buildah is not installed) "
        "(hint: install docker.io and start dockerd, or install buildah (apt-get install docker.io buildah))"
    ]


def test_emulation_detection(tmp_path: Path) -> None:
    assert emulation_problem("amd64", "amd64", tmp_path) is None
    problem = emulation_problem("arm64", "amd64", tmp_path)
    assert problem is not None and "apt-get install qemu-user-static binfmt-support" in problem
    (tmp_path / "qemu-aarch64").write_text("disabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n")
    assert emulation_problem("arm64", "amd64", tmp_path) is not None
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n")
    assert emulation_problem("arm64", "amd64", tmp_path) is None


# ---------------------------------------------------------------- buildx builders and bake


def test_a_buildx_builder_is_named_on_every_buildx_command() -> None:
    fleet = Docker(
        "/usr/local/bin/docker", Version("27.3"), "buildx", buildx_version=Version("0.17.1"), builder="fleet"
    )
    assert fleet.build_argv(REQUEST)[:6] == ["/usr/local/bin/docker", "buildx", "--builder", "fleet", "build", "--load"]
    assert fleet.inspect_builder_argv() == ["/usr/local/bin/docker", "buildx", "--builder", "fleet", "inspect"]
    bake = fleet.bake_argv(
        [Path("/ctx/docker-bake.json"), Path("/out/o.json")], ["build-a", "build-b"], ["network.host"]
    )
    assert bake == [
        "/usr/local/bin/docker", "buildx", "--builder", "fleet", "bake", "--progress", "plain",
        "--file", "/ctx/docker-bake.json", "--file", "/out/o.json", "--allow", "network.host", "build-a", "build-b",
    ]  # fmt: skip
    default = Docker("/usr/local/bin/docker", Version("27.3"), "buildx", buildx_version=Version("0.17.1"))
    assert default.bake_argv([Path("/b.json")], ["x"], [])[:4] == [
        "/usr/local/bin/docker",
        "buildx",
        "bake",
        "--progress",
    ]


def test_bake_needs_buildx_0_17_for_its_entitlements() -> None:
    assert buildx_version("github.com/docker/buildx v0.17.1 cdaf1a3\n") == Version("0.17.1")
    assert buildx_version("github.com/docker/buildx 0.12.1+ds1 0.12.1+ds1-0ubuntu1\n") == Version("0.12.1")
    assert buildx_version("") is None
    assert not Docker("d", Version("25.0"), "buildx", buildx_version=Version("0.16.2")).bakes
    assert Docker("d", Version("25.0"), "buildx", buildx_version=Version("0.17.0")).bakes
    assert not Docker("d", Version("20.10"), "builtin").bakes


def _wheel_requests() -> dict[str, BuildRequest]:
    secrets = {"ca-bundle": Path("/etc/ssl/certs/ca-certificates.crt"), "netrc": Path("/out/ctx/.netrc")}
    args = {"PIP_INDEX_URL": "http://127.0.0.1:5556/simple/"}
    return {
        f"build-{recipe}": BuildRequest(Path("/out/ctx"), f"wheels-{recipe}", "linux/arm64", secrets=secrets,
                                        build_args=args, output=Path(f"/out/.wheels-{recipe}"))
        for recipe in ("vllm", "ctranslate2")
    }  # fmt: skip


def test_bake_overrides_make_builder_targets_export_their_wheels() -> None:
    overrides = bake_overrides(_wheel_requests())
    assert overrides == {
        "target": {
            "build-ctranslate2": {
                "context": "/out/ctx",
                "dockerfile": "/out/ctx/Dockerfile",
                "target": "wheels-ctranslate2",
                "platforms": ["linux/arm64"],
                "cache-to": [],  # an empty list replaces the rendered file's (bake merges cache-to by replacing)
                "output": ["type=local,dest=/out/.wheels-ctranslate2"],
                "args": {"PIP_INDEX_URL": "http://127.0.0.1:5556/simple/"},
                "secret": ["id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt", "id=netrc,src=/out/ctx/.netrc"],
                "network": "host",
            },
            "build-vllm": {**overrides["target"]["build-ctranslate2"], "target": "wheels-vllm",
                           "output": ["type=local,dest=/out/.wheels-vllm"]},
        }
    }  # fmt: skip
    bake_schema().validate(overrides)


def test_bake_is_granted_exactly_what_it_asks_for() -> None:
    allow = bake_entitlements(_wheel_requests(), Path("/out/ctx"))
    assert allow == [
        "fs.read=/etc/ssl/certs/ca-certificates.crt",  # a secret outside the bake file's directory (not the netrc in it)
        "fs.write=/out/.wheels-ctranslate2",
        "fs.write=/out/.wheels-vllm",
        "network.host",
    ]
    inside = {"x": BuildRequest(Path("/c"), "wheels-x", "linux/amd64", output=Path("/c/w"), network_host=False)}
    assert bake_entitlements(inside, Path("/c")) == []


@pytest.mark.parametrize("golden", sorted((Path(__file__).parent / "golden").glob("*/*/docker-bake.json")))
def test_rendered_bake_files_use_only_fields_bake_knows(golden: Path) -> None:
    bake_schema().validate(json.loads(golden.read_text()))


def bake_schema() -> Any:
    schema = json.loads((Path(__file__).parent / "fixtures" / "schemas" / "docker-bake.schema.json").read_text())
    return jsonschema.Draft7Validator(schema)


def test_builder_needs_docker_with_buildx_and_the_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    new = "/usr/local/bin/docker"
    monkeypatch.setattr("builder.build.engines.docker_clients", lambda: [new])
    table: Table = {
        (new, "version", "--format", VERSIONS): (0, "20.10.24 20.10.24\n"),
    }
    with pytest.raises(UpstreamUnavailable) as caught:
        select_engine("auto", answers(table), builder="fleet")
    assert caught.value.exit_code == 3 and len(caught.value.lines()) == 1
    assert "--builder fleet needs docker buildx" in caught.value.lines()[0]
    assert "apt-get install docker-buildx" in caught.value.lines()[0]
    with pytest.raises(UsageError):
        select_engine("buildah", answers(table), builder="fleet")
    table[(new, "buildx", "version")] = (0, "github.com/docker/buildx v0.19.3 48d6a39\n")
    with pytest.raises(UpstreamUnavailable, match="buildx has no builder 'fleet'"):
        select_engine("docker", answers(table), builder="fleet")
    table[(new, "buildx", "--builder", "fleet", "inspect")] = (0, "Name: fleet\nDriver: remote\n")
    engine = select_engine("docker", answers(table), builder="fleet")
    assert isinstance(engine, Docker) and engine.builder == "fleet" and engine.bakes


def test_pulls_and_which_engines_share_concurrent_work() -> None:
    docker = Docker("/usr/bin/docker", Version("20.10.24"), "builtin")
    buildah = Buildah("/usr/bin/buildah", Version("1.28.2"))
    assert docker.pull_argv("127.0.0.1:5555/b@sha256:1", insecure=True) == [
        "/usr/bin/docker", "pull", "--quiet", "127.0.0.1:5555/b@sha256:1"
    ]  # fmt: skip
    assert buildah.pull_argv("127.0.0.1:5555/b@sha256:1", insecure=True) == [
        "/usr/bin/buildah", "--storage-driver", "vfs", "pull", "--quiet", "--tls-verify=false", "127.0.0.1:5555/b@sha256:1"
    ]  # fmt: skip
    assert docker.merges_concurrent_builds and not buildah.merges_concurrent_builds
