"""CUDA architecture rules: which nvcc can target which SM, and which builds run on which device.

Sources: NVIDIA CUDA 12.8 / 12.9 / 13.0 release notes as summarised in
docs/sources.md DF-1a (the toolchain table): sm_100/101/120 arrived in CUDA 12.8, sm_103/121 and
family ('f') targets in 12.9; CUDA 13.0 renamed Thor's sm_101 to sm_110 and removed Maxwell,
Pascal and Volta (everything below sm_75).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import Version

# Lowest CUDA whose nvcc knows the architecture.
_INTRODUCED = {
    (5, 0): "6.0", (5, 2): "6.5", (5, 3): "7.0",
    (6, 0): "8.0", (6, 1): "8.0", (6, 2): "8.0",
    (7, 0): "9.0", (7, 2): "10.0", (7, 5): "10.0",
    (8, 0): "11.0", (8, 6): "11.1", (8, 7): "11.4", (8, 9): "11.8",
    (9, 0): "11.8",
    (10, 0): "12.8", (10, 1): "12.8", (10, 3): "12.9",
    (11, 0): "13.0",
    (12, 0): "12.8", (12, 1): "12.9",
}  # fmt: skip
# First CUDA whose nvcc no longer accepts the architecture, and why.
_REMOVED = {
    (10, 1): ("13.0", "CUDA 13.0 renamed sm_101 (Thor) to sm_110; use 11.0"),
}
_OLD_ARCH_CUTOFF = (7, 5)
_CUDA13 = Version("13.0")

_ARCH = re.compile(r"^(?P<major>[0-9]+)\.(?P<minor>[0-9]+)(?P<suffix>[af]?)(?P<ptx>\+PTX)?$")


@dataclass(frozen=True)
class CudaArch:
    major: int
    minor: int
    suffix: str  # '', 'a' (arch-specific) or 'f' (family-specific)
    ptx: bool

    @classmethod
    def parse(cls, text: str) -> CudaArch:
        match = _ARCH.match(text)
        if match is None:
            raise ValueError(f"'{text}' is not a CUDA architecture such as 8.7, 9.0a or 8.7+PTX")
        return cls(int(match["major"]), int(match["minor"]), match["suffix"], bool(match["ptx"]))

    @property
    def sm(self) -> str:
        return f"sm_{self.major}{self.minor}{self.suffix}"

    def runs_on(self, capability: tuple[int, int]) -> bool:
        """Whether code built for this entry runs on a device of `capability`."""
        mine = (self.major, self.minor)
        if self.ptx and mine <= capability:
            return True  # the driver JIT-compiles PTX for newer devices
        if self.suffix == "a":
            return mine == capability
        return self.major == capability[0] and self.minor <= capability[1]


def capability(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def arch_problem(arch: CudaArch, cuda: str) -> str | None:
    """Why nvcc of CUDA `cuda` cannot build `arch`, or None when it can."""
    key = (arch.major, arch.minor)
    version = Version(cuda)
    if key not in _INTRODUCED:
        return f"{arch.sm} is not a known CUDA architecture"
    introduced = Version(_INTRODUCED[key])
    if version < introduced:
        return f"{arch.sm} needs CUDA >= {introduced}, this cell has CUDA {cuda}"
    if arch.suffix == "f" and version < Version("12.9"):
        return f"family target {arch.sm} needs CUDA >= 12.9, this cell has CUDA {cuda}"
    if key in _REMOVED and version >= Version(_REMOVED[key][0]):
        return _REMOVED[key][1]
    if key < _OLD_ARCH_CUTOFF and version >= _CUDA13:
        return f"{arch.sm} is gone in CUDA 13 (Maxwell, Pascal and Volta were removed); use a CUDA 12.x cell"
    return None


def torch_arch_list(archs: list[str]) -> str:
    """TORCH_CUDA_ARCH_LIST spelling: '8.7;9.0a'."""
    return ";".join(archs)


def cmake_architectures(archs: list[str]) -> str:
    """CMAKE_CUDA_ARCHITECTURES spelling: '87;90a' (CMake builds SASS and PTX for each)."""
    parts = []
    for text in archs:
        arch = CudaArch.parse(text)
        parts.append(f"{arch.major}{arch.minor}{arch.suffix}")
    return ";".join(parts)
