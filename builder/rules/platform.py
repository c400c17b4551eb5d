"""The platform a cell's Python environment runs on, as wheel tags, uv and OCI see it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from packaging.tags import Tag, compatible_tags, cpython_tags

from builder.catalogue.models import Cell, Device
from builder.errors import BuilderError

# glibc of each Ubuntu release (the libc6 package of focal, jammy and noble).
UBUNTU_GLIBC = {"20.04": (2, 31), "22.04": (2, 35), "24.04": (2, 39)}
DEBIAN_GLIBC = {"11": (2, 31), "12": (2, 36), "13": (2, 41)}  # libc6 of bullseye, bookworm, trixie
OCI_ARCH = {"aarch64": "arm64", "x86_64": "amd64"}


@dataclass(frozen=True)
class TargetPlatform:
    python: str  # "3.10"
    arch: str  # "aarch64" | "x86_64"
    glibc: tuple[int, int]
    cuda: str  # "12.6"

    @classmethod
    def of(cls, cell: Cell, device: Device) -> TargetPlatform:
        known = {f"ubuntu{k}": v for k, v in UBUNTU_GLIBC.items()} | {f"debian{k}": v for k, v in DEBIAN_GLIBC.items()}
        if cell.os_release not in known:
            raise BuilderError(f"no glibc known for {cell.os_release} (known: {', '.join(known)})")
        return cls(cell.python, device.arch, known[cell.os_release], cell.cuda)

    @property
    def python_tuple(self) -> tuple[int, int]:
        major, minor = self.python.split(".")
        return int(major), int(minor)

    @property
    def platform_tags(self) -> list[str]:
        major, newest = self.glibc
        manylinux = [f"manylinux_{major}_{minor}_{self.arch}" for minor in range(newest, 16, -1)]
        return [*manylinux, f"manylinux2014_{self.arch}", f"linux_{self.arch}"]

    @cached_property
    def tags(self) -> list[Tag]:
        """Compatible wheel tags, most preferred first."""
        version = self.python_tuple
        interpreter = f"cp{version[0]}{version[1]}"
        return [
            *cpython_tags(version, platforms=self.platform_tags),
            *compatible_tags(version, interpreter=interpreter, platforms=self.platform_tags),
        ]

    @property
    def cuda_local(self) -> str:
        """The local version a CUDA build for this cell carries: 'cu126'."""
        return "cu" + self.cuda.replace(".", "")

    @property
    def uv_platform(self) -> str:
        return f"{self.arch}-manylinux_{self.glibc[0]}_{self.glibc[1]}"

    @property
    def oci_arch(self) -> str:
        return OCI_ARCH[self.arch]

    def describe(self) -> str:
        return f"cp{self.python.replace('.', '')} linux_{self.arch} (glibc {self.glibc[0]}.{self.glibc[1]})"
