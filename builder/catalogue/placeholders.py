"""`{{ name }}` placeholders in recipes' build environments and steps, filled from the cell."""

from __future__ import annotations

import re
from collections.abc import Mapping

from builder.errors import BuilderError

VARIABLES = {
    "torch_cuda_arch_list": "the cell's CUDA arch list as TORCH_CUDA_ARCH_LIST, e.g. 8.7",
    "cmake_cuda_architectures": "the arch list as CMAKE_CUDA_ARCHITECTURES, e.g. 87;90a",
    "cuda_version": "the cell's CUDA version, e.g. 12.6",
    "cuda_home": "the CUDA toolkit directory in the devel image",
    "python_version": "the cell's Python version, e.g. 3.10",
    "max_jobs": "compile jobs derived from build memory",
    "nvcc_threads": "nvcc threads per job",
    "version": "the version being built",
    "src_dir": "the checked-out source directory",
    "wheel_dir": "where the build must leave its wheels",
}

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def placeholders(text: str) -> list[str]:
    return PLACEHOLDER.findall(text)


def expand(text: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise BuilderError(f"no value for placeholder '{{{{ {name} }}}}'")
        return values[name]

    return PLACEHOLDER.sub(replace, text)
