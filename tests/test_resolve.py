"""Pure parts of resolution: wheel choice, index pages, pip configuration, platforms, image names."""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet

from builder.errors import BuilderError
from builder.rules.platform import TargetPlatform
from builder.rules.wheels import IndexFile, choose_wheel, source_versions
from builder.upstream.index import parse_html_page, parse_json_page, project_url
from builder.upstream.pipconfig import parse_pip_config
from builder.upstream.registry import ImageName

ORIN = TargetPlatform("3.10", "aarch64", (2, 35), "12.6")
X86 = TargetPlatform("3.12", "x86_64", (2, 39), "12.8")


def files(*names: str) -> list[IndexFile]:
    return [IndexFile(name, f"https://index.example/packages/{name}", "0" * 64) for name in names]


def test_newest_matching_wheel_for_the_platform() -> None:
    offered = files(
        "torch-2.5.0-cp310-cp310-linux_aarch64.whl",
        "torch-2.8.0-cp310-cp310-linux_aarch64.whl",
        "torch-2.9.0-cp310-cp310-linux_x86_64.whl",  # other arch
        "torch-2.9.1-cp312-cp312-linux_aarch64.whl",  # other Python
        "torch-3.0.0rc1-cp310-cp310-linux_aarch64.whl",  # pre-release
        "torch-2.8.0.tar.gz",
    )
    choice = choose_wheel(offered, "torch", SpecifierSet(">=2.5"), ORIN, needs_cuda_local=False)
    assert choice.chosen is not None and str(choice.chosen.version) == "2.8.0"
    assert choice.offered == ("3.0.0rc1", "2.8.0", "2.5.0")


def test_manylinux_is_accepted_up_to_the_cells_glibc() -> None:
    offered = files(
        "soxr-1.1.0-cp310-cp310-manylinux_2_26_aarch64.manylinux_2_28_aarch64.whl",
        "soxr-1.2.0-cp310-cp310-manylinux_2_38_aarch64.whl",
    )
    choice = choose_wheel(offered, "soxr", SpecifierSet(), ORIN, needs_cuda_local=False)
    assert choice.chosen is not None and str(choice.chosen.version) == "1.1.0"


def test_cuda_local_version_must_match_the_cell() -> None:
    offered = files(
        "vllm-0.10.2+cu126-cp310-cp310-linux_aarch64.whl",
        "vllm-0.11.0+cu128-cp310-cp310-linux_aarch64.whl",
        "vllm-0.12.0-cp310-cp310-linux_aarch64.whl",
    )
    choice = choose_wheel(offered, "vllm", SpecifierSet(">=0.10"), ORIN, needs_cuda_local=True)
    assert choice.chosen is not None and str(choice.chosen.version) == "0.10.2+cu126"
    assert choice.wrong_cuda == ("0.12.0", "0.11.0+cu128")
    # a wheel without a local version is fine where the recipe does not ask for one
    plain = choose_wheel(offered, "vllm", SpecifierSet(">=0.10"), ORIN, needs_cuda_local=False)
    assert plain.chosen is not None and str(plain.chosen.version) == "0.12.0"


def test_yanked_and_requires_python_are_honoured() -> None:
    offered = [
        IndexFile("pkg-2.0-py3-none-any.whl", "u2", None, yanked=True),
        IndexFile("pkg-1.5-py3-none-any.whl", "u15", None, requires_python=">=3.11"),
        IndexFile("pkg-1.0-py3-none-any.whl", "u1", None),
    ]
    choice = choose_wheel(offered, "pkg", SpecifierSet(), ORIN, needs_cuda_local=False)
    assert choice.chosen is not None and choice.chosen.file.url == "u1"


def test_source_versions() -> None:
    refs = {"0.10.2": "v0.10.2", "0.11.0": "v0.11.0", "0.9.0": "v0.9.0"}
    assert source_versions(refs, SpecifierSet(">=0.10,<0.11")) == ["0.10.2"]
    assert source_versions(refs, SpecifierSet()) == ["0.11.0", "0.10.2", "0.9.0"]
    assert source_versions(refs, SpecifierSet(">=1")) == []


def test_html_and_json_pages() -> None:
    html = '<a href="../../packages/t-1.0-py3-none-any.whl#sha256=abc" data-requires-python="&gt;=3.9">t-1.0-py3-none-any.whl</a>'
    [file] = parse_html_page(html, "https://i.example/simple/t/")
    assert (file.filename, file.url, file.sha256, file.requires_python) == (
        "t-1.0-py3-none-any.whl",
        "https://i.example/packages/t-1.0-py3-none-any.whl",
        "abc",
        ">=3.9",
    )
    page = '{"meta": {"api-version": "1.1"}, "name": "t", "files": [{"filename": "t-1.0-py3-none-any.whl", "url": "/f/t.whl", "hashes": {"sha256": "def"}, "yanked": "bad"}]}'
    [file] = parse_json_page(page, "https://i.example/simple/t/")
    assert (file.url, file.sha256, file.yanked) == ("https://i.example/f/t.whl", "def", True)
    assert (
        project_url("https://i.example/jp6/cu126/+simple", "Torch_TensorRT")
        == "https://i.example/jp6/cu126/+simple/torch-tensorrt/"
    )


def test_pip_config_env_wins_over_files() -> None:
    text = "global.index-url='https://mirror.example/simple'\nglobal.extra-index-url='file:///a file:///b'\n:env:.index-url='https://env.example/simple'\nglobal.find-links='/w'\n"
    indexes = parse_pip_config(text)
    assert indexes.index_url == "https://env.example/simple"
    assert indexes.extra_index_urls == ("file:///a", "file:///b")
    assert indexes.uv_args() == [
        "--index-url", "https://env.example/simple", "--index-strategy", "unsafe-best-match",
        "--extra-index-url", "file:///a", "--extra-index-url", "file:///b", "--find-links", "/w",
    ]  # fmt: skip
    assert parse_pip_config("").uv_args() == []


def test_platforms() -> None:
    assert ORIN.uv_platform == "aarch64-manylinux_2_35"
    assert ORIN.oci_arch == "arm64" and X86.oci_arch == "amd64"
    assert ORIN.cuda_local == "cu126"
    tags = {str(tag) for tag in ORIN.tags}
    assert {"cp310-cp310-linux_aarch64", "cp310-abi3-manylinux_2_17_aarch64", "py3-none-any"} <= tags
    assert "cp310-cp310-manylinux_2_36_aarch64" not in tags


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("nvcr.io/nvidia/l4t-tensorrt:r10.3.0-runtime", ("nvcr.io", "nvidia/l4t-tensorrt", "r10.3.0-runtime")),
        ("localhost:5000/base:1", ("localhost:5000", "base", "1")),
    ],
)
def test_image_names(ref: str, parsed: tuple[str, str, str]) -> None:
    name = ImageName.parse(ref)
    assert (name.registry, name.repository, name.tag) == parsed


@pytest.mark.parametrize("ref", ["ubuntu:22.04", "nvcr.io/nvidia/l4t-base", "nvcr.io:r36"])
def test_image_names_need_registry_and_tag(ref: str) -> None:
    with pytest.raises(BuilderError, match="is not a registry/repository:tag image reference"):
        ImageName.parse(ref)
