"""Engine argv builders as data, engine detection over recorded tool answers, qemu detection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from packaging.version import Version

from builder.build.engines import (
    Buildah,
    BuildRequest,
    Docker,
    detect_buildah,
    detect_docker,
    emulation_problem,
    select_engine,
)
from builder.errors import UpstreamUnavailable
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


def answers(table: Table) -> Callable[[Sequence[str]], Completed]:
    def run(argv: Sequence[str]) -> Completed:
        code, out = table.get(tuple(argv), (127, ""))
        return Completed(tuple(argv), code, out, "" if code == 0 else "not found")

    return run


def test_docker_detection_copes_with_a_client_that_needs_buildx() -> None:
    new, old = "/usr/local/bin/docker", "/usr/bin/docker"
    table: Table = {
        (new, "version", "--format", "{{.Server.Version}}"): (0, "20.10.24\n"),
        (new, "version", "--format", "{{.Client.Version}}"): (0, "28.2.2\n"),
        (old, "version", "--format", "{{.Server.Version}}"): (0, "20.10.24+dfsg1\n"),
        (old, "version", "--format", "{{.Client.Version}}"): (0, "20.10.24+dfsg1\n"),
    }
    chosen = detect_docker([new, old], answers(table))
    assert chosen == Docker(old, Version("20.10.24"), "builtin")
    assert (
        detect_docker([new], answers(table))
        == f"{new}: client 28.2.2 needs the buildx plugin for BuildKit and has none"
    )
    table[(new, "buildx", "version")] = (0, "github.com/docker/buildx v0.20.0")
    assert detect_docker([new, old], answers(table)) == Docker(new, Version("20.10.24"), "buildx")


def test_docker_without_a_daemon_and_too_old() -> None:
    assert str(detect_docker(["/d"], answers({}))).startswith("/d: no daemon answers")
    old: Table = {("/d", "version", "--format", "{{.Server.Version}}"): (0, "19.03.1")}
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
