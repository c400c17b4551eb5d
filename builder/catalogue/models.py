"""The catalogue's data model: devices, cells, indexes, recipes and stacks.

Models describe shape only (types, patterns, required keys). Rules that relate fields to each other
or files to files live in `builder.checks`, where they can point at the exact line of the problem.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Field descriptions end up in the generated JSON Schemas and so in editors' hover text.


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


Text = Annotated[str, StringConstraints(min_length=1)]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)]
Version = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)*$", max_length=32)]
PythonVersion = Annotated[str, StringConstraints(pattern=r"^3\.[0-9]+$")]
ComputeCapability = Annotated[str, StringConstraints(pattern=r"^[0-9]+\.[0-9]+$")]
# A CUDA architecture in TORCH_CUDA_ARCH_LIST spelling: 8.7, 9.0a, 12.0f, 8.7+PTX.
CudaArch = Annotated[str, StringConstraints(pattern=r"^[0-9]+\.[0-9]+[af]?(\+PTX)?$")]
Specifier = Annotated[str, Field(description="A PEP 440 version specifier, e.g. '>=2.8,<2.10'.")]
TargetId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Digest = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
Sources = Annotated[
    list[Text],
    Field(min_length=1, description="Where each fact comes from: a document, page, file or commit."),
]
Arch = Literal["aarch64", "x86_64"]
PlatformKind = Literal["tegra", "sbsa", "x86"]


# ---------------------------------------------------------------- devices (matrix/<id>/device.yaml)


class Gpu(Model):
    architecture: Literal["pascal", "volta", "ampere", "ada", "hopper", "blackwell"]
    chip: Text
    compute_capability: ComputeCapability = Field(description="CUDA compute capability, e.g. '8.7'.")
    sm_count: int | None = Field(default=None, gt=0)
    cuda_cores: int | None = Field(default=None, gt=0)
    tensor_cores: int | None = Field(default=None, ge=0)


class Memory(Model):
    size_gb: float = Field(gt=0)
    type: Text = Field(description="e.g. LPDDR5, GDDR7, HBM3.")
    bus_width_bits: int | None = Field(default=None, gt=0)
    unified: bool = Field(description="CPU and GPU share this memory (Jetson).")


class Cpu(Model):
    model: Text
    cores: int = Field(gt=0)
    max_ghz: float | None = Field(default=None, gt=0)


class PowerMode(Model):
    name: Text = Field(description="The mode's name, as nvpmodel prints it (select modes by name).")
    nvpmodel_id: int | None = Field(default=None, ge=0, description="nvpmodel -m ID (Jetson only).")
    memory_bandwidth_gbps: float = Field(gt=0, description="Peak DRAM bandwidth allowed in this mode.")
    gpu_max_mhz: int | None = Field(default=None, gt=0)
    notes: Text | None = None


class DenseThroughput(Model):
    fp16_tflops: float | None = Field(default=None, gt=0)
    int8_tops: float | None = Field(default=None, gt=0)
    derived: bool = Field(default=False, description="Computed from sparse or per-SM figures.")


class Device(Model):
    """Hardware facts for one device model."""

    id: Name
    name: Text
    kind: Literal["jetson", "discrete"]
    arch: Arch
    platform: PlatformKind
    gpu: Gpu
    memory: Memory
    cpu: Cpu | None = Field(default=None, description="The CPU, for Jetson modules; None for a card.")
    power_modes: list[PowerMode] = Field(min_length=1)
    default_power_mode: Text
    dense: DenseThroughput | None = None
    sources: Sources
    notes: Text | None = None


# ---------------------------------------------------------------- indexes (matrix/indexes.yaml)


class IndexDef(Model):
    url: Text = Field(description="URL of the PEP 503 simple index; '{path}' is the cell's path.")
    description: Text
    sources: Sources


class IndexCatalogue(Model):
    indexes: dict[Name, IndexDef]


# ---------------------------------------------------------------- cells (matrix/<device>/<release>-cu<XYZ>.yaml)


class ImageRef(Model):
    ref: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._/:-]*:[A-Za-z0-9._-]+$")] = Field(
        description="registry/repository:tag"
    )
    digest: Digest | None = Field(default=None, description="Pinned manifest digest, when known.")


class BaseImages(Model):
    runtime: ImageRef
    devel: ImageRef


class Cell(Model):
    """One consistent device x JetPack x CUDA combination; its target id is its matrix path."""

    @property
    def os_release(self) -> str:
        """'ubuntu22.04' or 'debian12': how cell file names and messages spell the base OS."""
        return f"ubuntu{self.ubuntu}" if self.ubuntu is not None else f"debian{self.debian}"

    device: Name
    jetpack: Version | None = None
    l4t: Version | None = None
    ubuntu: Annotated[str, StringConstraints(pattern=r"^[0-9]{2}\.[0-9]{2}$")] | None = Field(
        default=None, description="Ubuntu release of the base images (or give 'debian')."
    )
    debian: Annotated[str, StringConstraints(pattern=r"^[0-9]+$")] | None = Field(
        default=None, description="Debian release of the base images, e.g. 12 (stand-in cells)."
    )
    cuda: Version
    cudnn: Version
    tensorrt: Version | None = None
    python: PythonVersion
    base_images: BaseImages
    indexes: dict[Name, Text] = Field(default_factory=dict, description="Index name -> this cell's path on that index.")
    cuda_arch_list: list[CudaArch] = Field(min_length=1, description="Architectures for source builds.")
    runners: list[Text] = Field(min_length=1, description="GitHub Actions runs-on labels.")
    build_memory_gb: float = Field(gt=0, description="Memory a build may use on this cell's builders.")
    sources: Sources
    notes: Text | None = None


# ---------------------------------------------------------------- recipes (recipes/<name>.yaml)


class WheelSource(Model):
    index: Name = Field(description="A name from matrix/indexes.yaml, or 'default' (pip's config).")
    version: Specifier = ""
    local_version: Literal["none", "cuda"] = Field(
        default="none", description="'cuda': wheels carry +cuXYZ, which must match the cell's CUDA."
    )
    pinned: bool = Field(default=True, description="Never satisfy this package from another index (same names differ).")


class Parallelism(Model):
    memory_per_job_gb: float = Field(gt=0, description="Peak memory of one compile job.")
    max_jobs: int | None = Field(default=None, gt=0)
    nvcc_threads: int = Field(default=1, gt=0)


class SourceRef(Model):
    """A source version's git ref, with what that version requires of the packages beside it."""

    ref: Text = Field(description="Git tag or 40-hex commit.")
    requires: list[Text] = Field(
        default_factory=list,
        description="PEP 508 requirements of this version (e.g. torchaudio 2.8.0: 'torch==2.8.0'), resolved jointly.",
    )


class SourceBuild(Model):
    repository: Annotated[str, StringConstraints(pattern=r"^(https://|file://|/)\S+$")]
    refs: dict[Version, Text | SourceRef] = Field(
        min_length=1, description="Version -> git tag or 40-hex commit, or {ref, requires}."
    )

    def ref_of(self, version: str) -> SourceRef:
        """The ref of a version, in its long form."""
        entry = self.refs[version]
        return entry if isinstance(entry, SourceRef) else SourceRef(ref=entry)

    build_system: Literal["setuptools", "cmake", "scikit-build-core", "custom"]
    subdirectory: Text | None = None
    env: dict[EnvName, str] = Field(
        default_factory=dict, description="Build environment; '{{ name }}' placeholders come from the cell."
    )
    steps: list[Text] = Field(min_length=1, description="Shell steps; they must leave wheels in '{{ wheel_dir }}'.")
    build_requires: list[Text] = Field(default_factory=list, description="PEP 508 requirements.")
    system_packages: list[Text] = Field(default_factory=list)
    parallelism: Parallelism
    expected_minutes: int = Field(gt=0, description="On the reference builder named in notes.")
    peak_memory_gb: float = Field(gt=0, description="Whole-build peak at the derived job count.")
    produces: list[Name] = Field(min_length=1, description="Distribution names of the wheels it makes.")
    notes: Text | None = None


class ObtainStep(Model):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["wheel"]}, {"required": ["source"]}]},
    )

    wheel: WheelSource | None = None
    source: SourceBuild | None = None


class Constraints(Model):
    arch: list[Arch] | None = None
    platform: list[PlatformKind] | None = None
    cuda: Specifier | None = None
    python: Specifier | None = None
    compute_capability: Specifier | None = None


class Match(Model):
    """Which cells something applies to; every given field must match."""

    targets: list[TargetId] | None = None
    devices: list[Name] | None = None
    arch: list[Arch] | None = None
    platform: list[PlatformKind] | None = None
    cuda: Specifier | None = None
    python: Specifier | None = None
    compute_capability: Specifier | None = None


class Incompatibility(Model):
    when: Match
    reason: Text


class Recipe(Model):
    """How to obtain one heavy package, in order of preference."""

    name: Name
    description: Text
    obtain: list[ObtainStep] = Field(min_length=1)
    depends: list[Name] = Field(default_factory=list, description="Recipes this package needs.")
    constraints: Constraints = Constraints()
    incompatible: list[Incompatibility] = Field(default_factory=list)
    imports: list[Text] = Field(default_factory=list, description="Modules the smoke test imports.")
    sources: list[Text] = Field(default_factory=list)


# ---------------------------------------------------------------- stacks (stacks/<name>.yaml)


class Alternative(Model):
    recipe: Name
    version: Specifier = ""


class PackageRef(Model):
    recipe: Name
    version: Specifier = ""
    fallback: list[Alternative] = Field(
        default_factory=list, description="Used in order on targets the primary cannot serve."
    )


class Exclusion(Model):
    name: Name = Field(description="Distribution name kept out of the environment.")
    reason: Text
    targets: list[TargetId] | None = None


class PlatformRequirements(Model):
    """Constraints on the cell's own stack (from the base image), checked against every target."""

    cuda: Specifier | None = None
    tensorrt: Specifier | None = None
    cudnn: Specifier | None = None
    python: Specifier | None = None


class Runtime(Model):
    env: dict[EnvName, str] = Field(default_factory=dict)
    power_mode: Text | None = Field(default=None, description="nvpmodel mode name the stack expects.")


class AppFile(Model):
    src: Text = Field(description="Path relative to the catalogue root.")
    dest: Annotated[str, StringConstraints(pattern=r"^/")]


class App(Model):
    files: list[AppFile] = Field(default_factory=list)
    workdir: Annotated[str, StringConstraints(pattern=r"^/")] | None = None
    entrypoint: list[Text] | None = None
    command: list[Text] | None = None
    ports: list[Annotated[int, Field(gt=0, lt=65536)]] = Field(default_factory=list)


Metric = Literal[
    "asr_real_time_factor",
    "llm_decode_tokens_per_s",
    "llm_time_to_first_token_ms",
    "peak_memory_gb",
    "inference_rate_hz",
    "latency_p50_ms",
    "latency_p95_ms",
]


class SmokeCheck(Model):
    name: Name
    metric: Metric
    min: float | None = Field(default=None, description="Fail below this value.")
    max: float | None = Field(default=None, description="Fail above this value.")
    model: Text | None = Field(default=None, description="The model or workload measured.")
    roofline_min: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="LLM decode checks: fail below this fraction of the measured bandwidth roofline "
        "(tok/s x bytes per token / measured bandwidth); default: the runner's floor for the path used.",
    )
    notes: Text | None = None


class ImageOutput(Model):
    name: Name


class Outputs(Model):
    image: ImageOutput | None = None
    compose: bool = True
    pixi: bool = True


class Stack(Model):
    """An application's package set, runtime tuning, smoke checks and target cells."""

    name: Name
    description: Text
    targets: list[TargetId] = Field(min_length=1)
    packages: list[PackageRef] = Field(min_length=1)
    requirements: list[Text] = Field(default_factory=list, description="Plain PEP 508 requirements.")
    exclude: list[Exclusion] = Field(default_factory=list)
    platform: PlatformRequirements = PlatformRequirements()
    runtime: Runtime = Runtime()
    app: App | None = None
    smoke: list[SmokeCheck] = Field(default_factory=list)
    outputs: Outputs = Outputs()
    sources: list[Text] = Field(default_factory=list)
    notes: Text | None = None


SCHEMA_MODELS: dict[str, type[Model]] = {
    "device": Device,
    "cell": Cell,
    "indexes": IndexCatalogue,
    "recipe": Recipe,
    "stack": Stack,
}
