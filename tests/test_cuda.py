from __future__ import annotations

import pytest

from builder.rules.cuda import CudaArch, arch_problem, cmake_architectures


@pytest.mark.parametrize(
    ("arch", "cuda", "problem"),
    [
        ("8.7", "12.6", None),
        ("10.0", "12.6", "sm_100 needs CUDA >= 12.8, this cell has CUDA 12.6"),
        ("10.0", "12.8", None),
        ("12.0", "12.6", "sm_120 needs CUDA >= 12.8, this cell has CUDA 12.6"),
        ("12.0", "12.8", None),
        ("11.0", "12.9", "sm_110 needs CUDA >= 13.0, this cell has CUDA 12.9"),
        ("11.0", "13.0", None),
        ("10.1", "12.9", None),
        ("10.1", "13.0", "CUDA 13.0 renamed sm_101 (Thor) to sm_110; use 11.0"),
        ("6.1", "12.6", None),
        ("6.1", "13.0", "sm_61 is gone in CUDA 13 (Maxwell, Pascal and Volta were removed); use a CUDA 12.x cell"),
        ("7.2", "13.0", "sm_72 is gone in CUDA 13 (Maxwell, Pascal and Volta were removed); use a CUDA 12.x cell"),
        ("7.5", "13.0", None),
        ("12.0f", "12.8", "family target sm_120f needs CUDA >= 12.9, this cell has CUDA 12.8"),
        ("8.8", "12.6", "sm_88 is not a known CUDA architecture"),
    ],
)
def test_arch_against_cuda(arch: str, cuda: str, problem: str | None) -> None:
    assert arch_problem(CudaArch.parse(arch), cuda) == problem


@pytest.mark.parametrize(
    ("arch", "device", "runs"),
    [
        ("8.7", (8, 7), True),
        ("8.0", (8, 7), True),  # SASS runs on later minors of the same major
        ("9.0", (8, 7), False),
        ("9.0a", (9, 0), True),
        ("9.0a", (9, 1), False),  # arch-specific code runs on that exact capability only
        ("8.0+PTX", (12, 0), True),  # PTX is JIT-compiled for newer devices
        ("10.0", (12, 0), False),  # datacenter Blackwell code does not run on RTX Blackwell
    ],
)
def test_arch_runs_on_device(arch: str, device: tuple[int, int], runs: bool) -> None:
    assert CudaArch.parse(arch).runs_on(device) is runs


def test_cmake_spelling() -> None:
    assert cmake_architectures(["8.7", "9.0a", "12.0+PTX"]) == "87;90a;120"
