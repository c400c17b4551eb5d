"""Every bad input gets one line naming file, line and column, exit code 2, and no traceback."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import run_cli

STACK = "stacks/demo.yaml"
NANO = "matrix/nano/device.yaml"
NANO_CELL = "matrix/nano/jp6.2-cu126.yaml"
CARD_CELL = "matrix/card/ubuntu24.04-cu128.yaml"
FASTLIB = "recipes/fastlib.yaml"
TORCH = "recipes/torch.yaml"
CU130 = "matrix/card/ubuntu24.04-cu130.yaml"

CARD_CU130 = """device: card
ubuntu: "24.04"
cuda: "13.0"
cudnn: "9.12.0"
python: "3.12"
base_images:
  runtime: {ref: "registry.example/cuda:13.0.0-runtime"}
  devel: {ref: "registry.example/cuda:13.0.0-devel"}
cuda_arch_list: ["12.0", "ARCH"]
runners: [card]
build_memory_gb: 32
sources: [test fixture]
"""
ALIAS_BOMB = "\n".join(
    ["name: demo", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [{', '.join(['*a' + str(i - 1)] * 10)}]" for i in range(1, 9)]
)


@dataclass(frozen=True)
class Case:
    id: str
    path: str
    old: str | None  # text to replace; None: `new` is the whole file
    new: str | bytes
    expected: list[str]
    extra: dict[str, str] = field(default_factory=dict)


CASES = [
    # ---- YAML itself
    Case("empty-file", STACK, None, "", ["stacks/demo.yaml:1:1: error: file is empty (expected a YAML mapping)"]),
    Case(
        "comments-only",
        STACK,
        None,
        "# nothing here\n",
        ["stacks/demo.yaml:1:1: error: file is empty (expected a YAML mapping)"],
    ),
    Case(
        "not-utf8",
        STACK,
        None,
        b"name: demo\ndescription: caf\xe9\n",
        ["stacks/demo.yaml:2:17: error: file is not valid UTF-8 (byte 0xe9)"],
    ),
    Case(
        "python-tag",
        STACK,
        "description: A demo stack.",
        "description: !!python/object/apply:os.system [id]",
        [
            "stacks/demo.yaml:2:14: error: unsupported tag '!!python/object/apply:os.system' (only plain YAML is allowed)"
        ],
    ),
    Case(
        "custom-tag",
        STACK,
        "description: A demo stack.",
        "description: !env DESCRIPTION",
        ["stacks/demo.yaml:2:14: error: unsupported tag '!env' (only plain YAML is allowed)"],
    ),
    Case(
        "duplicate-key",
        STACK,
        "description: A demo stack.",
        "description: A demo stack.\nname: again",
        ["stacks/demo.yaml:3:1: error: duplicate key 'name' (first defined at line 1)"],
    ),
    Case(
        "tab-indent",
        STACK,
        "  - nano/jp6.2-cu126",
        "\t- nano/jp6.2-cu126",
        ["stacks/demo.yaml:4:1: error: invalid YAML: found character '\\t' that cannot start any token"],
    ),
    Case(
        "unclosed-flow",
        STACK,
        '  - {recipe: torch, version: ">=2.5"}',
        '  - {recipe: torch, version: ">=2.5"',
        ["stacks/demo.yaml:8:3: error: invalid YAML: expected ',' or '}', but got '-'"],
    ),
    Case(
        "undefined-alias",
        STACK,
        "description: A demo stack.",
        "description: *text",
        ["stacks/demo.yaml:2:14: error: invalid YAML: found undefined alias 'text'"],
    ),
    Case(
        "two-documents",
        STACK,
        "description: A demo stack.",
        "description: A demo stack.\n---\nname: other",
        [
            "stacks/demo.yaml:3:1: error: invalid YAML: expected a single document in the stream, but found another document"
        ],
    ),
    Case(
        "deep-nesting",
        STACK,
        None,
        "name: demo\nx: " + "[" * 80 + "]" * 80 + "\n",
        ["stacks/demo.yaml:2:67: error: document is nested deeper than 64 levels"],
    ),
    Case(
        "alias-bomb",
        STACK,
        None,
        ALIAS_BOMB,
        ["stacks/demo.yaml:1:1: error: document expands to more than 200000 nodes through aliases"],
    ),
    Case(
        "top-level-list",
        STACK,
        None,
        "- name: demo\n",
        ["stacks/demo.yaml:1:1: error: expected a YAML mapping at the top level, found a list"],
    ),
    Case(
        "yml-extension",
        "stacks/other.yml",
        None,
        "name: other\n",
        ["stacks/other.yml:1:1: error: catalogue files use the .yaml extension, not .yml"],
    ),
    Case(
        "stray-matrix-file",
        "matrix/nano/old/cell.yaml",
        None,
        "device: nano\n",
        [
            "matrix/nano/old/cell.yaml:1:1: error: unexpected file: matrix/ holds indexes.yaml, <device>/device.yaml and <device>/<cell>.yaml"
        ],
    ),
    # ---- shape (models)
    Case(
        "misspelled-key",
        STACK,
        "packages:",
        "pakages:",
        [
            "stacks/demo.yaml:1:1: error: missing required key 'packages'",
            "stacks/demo.yaml:6:1: error: unknown key 'pakages' (did you mean 'packages'?)",
        ],
    ),
    Case(
        "misspelled-nested-key",
        FASTLIB,
        "{index: lab, local_version: cuda}",
        "{index: lab, local_verison: cuda}",
        [
            "recipes/fastlib.yaml:5:25: error: unknown key 'local_verison' in obtain[0].wheel (did you mean 'local_version'?)"
        ],
    ),
    Case(
        "missing-key",
        STACK,
        "description: A demo stack.\n",
        "",
        ["stacks/demo.yaml:1:1: error: missing required key 'description'"],
    ),
    Case(
        "bad-literal",
        "matrix/card/device.yaml",
        "arch: x86_64",
        "arch: x86-64",
        ["matrix/card/device.yaml:4:7: error: arch: 'x86-64' is not one of: aarch64, x86_64 (did you mean 'x86_64'?)"],
    ),
    Case(
        "bad-metric",
        STACK,
        "metric: inference_rate_hz",
        "metric: inference_rate",
        [
            "stacks/demo.yaml:20:26: error: smoke[0].metric: 'inference_rate' is not one of: asr_real_time_factor, llm_decode_tokens_per_s, llm_time_to_first_token_ms, peak_memory_gb, inference_rate_hz, latency_p50_ms, latency_p95_ms (did you mean 'inference_rate_hz'?)"
        ],
    ),
    Case(
        "bad-version",
        NANO_CELL,
        'cuda: "12.6"',
        'cuda: "12.x"',
        ["matrix/nano/jp6.2-cu126.yaml:5:7: error: cuda: '12.x' is not a dotted version such as 12.6"],
    ),
    Case(
        "bad-python",
        NANO_CELL,
        'python: "3.10"',
        "python: 3",
        ["matrix/nano/jp6.2-cu126.yaml:8:9: error: python: '3' is not a Python version such as 3.10"],
    ),
    Case(
        "string-not-list",
        STACK,
        "targets:\n  - nano/jp6.2-cu126\n  - card/ubuntu24.04-cu128",
        "targets: nano/jp6.2-cu126",
        ["stacks/demo.yaml:3:10: error: targets: expected a list, found 'nano/jp6.2-cu126'"],
    ),
    Case(
        "not-a-number",
        NANO,
        "size_gb: 8",
        "size_gb: eight",
        ["matrix/nano/device.yaml:11:12: error: memory.size_gb: expected a number, found 'eight'"],
    ),
    Case(
        "not-a-bool",
        NANO,
        "unified: true",
        "unified: sometimes",
        ["matrix/nano/device.yaml:13:12: error: memory.unified: expected true or false, found 'sometimes'"],
    ),
    Case(
        "empty-list",
        STACK,
        "targets:\n  - nano/jp6.2-cu126\n  - card/ubuntu24.04-cu128",
        "targets: []",
        ["stacks/demo.yaml:3:10: error: targets: must have at least 1 item"],
    ),
    Case(
        "zero-memory",
        NANO_CELL,
        "build_memory_gb: 6",
        "build_memory_gb: 0",
        ["matrix/nano/jp6.2-cu126.yaml:16:18: error: build_memory_gb: must be greater than 0, found '0'"],
    ),
    Case(
        "bad-arch-spelling",
        NANO_CELL,
        'cuda_arch_list: ["8.7"]',
        'cuda_arch_list: ["sm_87"]',
        [
            "matrix/nano/jp6.2-cu126.yaml:14:18: error: cuda_arch_list[0]: 'sm_87' is not a CUDA architecture such as 8.7, 9.0a or 8.7+PTX"
        ],
    ),
    Case(
        "bad-digest",
        NANO_CELL,
        '{ref: "registry.example/l4t-cuda:12.6.11-runtime"}',
        '{ref: "registry.example/l4t-cuda:12.6.11-runtime", digest: "sha256:abc"}',
        [
            "matrix/nano/jp6.2-cu126.yaml:10:71: error: base_images.runtime.digest: 'sha256:abc' is not a digest such as sha256:<64 hex digits>"
        ],
    ),
    Case(
        "bad-image-ref",
        NANO_CELL,
        '"registry.example/l4t-cuda:12.6.11-devel"',
        '"Registry.example/l4t cuda"',
        [
            "matrix/nano/jp6.2-cu126.yaml:11:16: error: base_images.devel.ref: 'Registry.example/l4t cuda' is not an image reference such as registry/repository:tag"
        ],
    ),
    Case(
        "bad-env-name",
        STACK,
        "    MODE: fast",
        "    1MODE: fast",
        ["stacks/demo.yaml:18:5: error: runtime.env: key '1MODE' is not an environment variable name"],
    ),
    # ---- references and cross-file rules
    Case(
        "unknown-recipe",
        STACK,
        "{recipe: torch,",
        "{recipe: torhc,",
        [
            "stacks/demo.yaml:7:14: error: unknown recipe 'torhc' (did you mean 'torch'?)",
            "stacks/demo.yaml:8:13: error: 'fastlib' depends on 'torch' (recipes/fastlib.yaml); add it to packages",
        ],
    ),
    Case(
        "unknown-target",
        STACK,
        "  - nano/jp6.2-cu126",
        "  - nano/jp6.2-cu12",
        ["stacks/demo.yaml:4:5: error: unknown target 'nano/jp6.2-cu12' (did you mean 'nano/jp6.2-cu126'?)"],
    ),
    Case(
        "unknown-device",
        NANO_CELL,
        "device: nano",
        "device: nanoo",
        ["matrix/nano/jp6.2-cu126.yaml:1:9: error: unknown device 'nanoo' (did you mean 'nano'?)"],
    ),
    Case(
        "cell-name-mismatch",
        NANO_CELL,
        'cuda: "12.6"',
        'cuda: "12.8"',
        [
            "matrix/nano/jp6.2-cu126.yaml:5:7: error: file name 'jp6.2-cu126.yaml' does not match its contents (expected 'jp6.2-cu128.yaml')"
        ],
    ),
    Case(
        "jetpack-mismatch",
        NANO_CELL,
        'jetpack: "6.2"',
        'jetpack: "6.1"',
        [
            "matrix/nano/jp6.2-cu126.yaml:2:10: error: file name 'jp6.2-cu126.yaml' does not match its contents (expected 'jp6.1-cu126.yaml')"
        ],
    ),
    Case(
        "arch-needs-newer-cuda",
        NANO_CELL,
        'cuda_arch_list: ["8.7"]',
        'cuda_arch_list: ["8.7", "11.0"]',
        [
            "matrix/nano/jp6.2-cu126.yaml:14:25: error: cuda_arch_list entry '11.0': sm_110 needs CUDA >= 13.0, this cell has CUDA 12.6"
        ],
    ),
    Case(
        "compute-100-needs-12.8",
        NANO_CELL,
        'cuda_arch_list: ["8.7"]',
        'cuda_arch_list: ["8.7", "10.0"]',
        [
            "matrix/nano/jp6.2-cu126.yaml:14:25: error: cuda_arch_list entry '10.0': sm_100 needs CUDA >= 12.8, this cell has CUDA 12.6"
        ],
    ),
    Case(
        "arch-misses-device",
        NANO_CELL,
        'cuda_arch_list: ["8.7"]',
        'cuda_arch_list: ["9.0"]',
        [
            "matrix/nano/jp6.2-cu126.yaml:14:17: error: cuda_arch_list [9.0] builds nothing that runs on nano (compute capability 8.7)"
        ],
    ),
    Case(
        "sm61-gone-in-cuda13",
        CU130,
        None,
        CARD_CU130.replace("ARCH", "6.1"),
        [
            "matrix/card/ubuntu24.04-cu130.yaml:9:26: error: cuda_arch_list entry '6.1': sm_61 is gone in CUDA 13 (Maxwell, Pascal and Volta were removed); use a CUDA 12.x cell"
        ],
    ),
    Case(
        "sm101-renamed",
        CU130,
        None,
        CARD_CU130.replace("ARCH", "10.1"),
        [
            "matrix/card/ubuntu24.04-cu130.yaml:9:26: error: cuda_arch_list entry '10.1': CUDA 13.0 renamed sm_101 (Thor) to sm_110; use 11.0"
        ],
    ),
    Case(
        "discrete-with-jetpack",
        CARD_CELL,
        'ubuntu: "24.04"',
        'jetpack: "6.2"\nubuntu: "24.04"',
        ["matrix/card/ubuntu24.04-cu128.yaml:2:1: error: 'jetpack' is for Jetson devices; card is a discrete GPU"],
    ),
    Case(
        "unknown-index-in-cell",
        NANO_CELL,
        "  lab: jp6/cu126",
        "  labb: jp6/cu126",
        [
            "matrix/nano/jp6.2-cu126.yaml:13:3: error: unknown index 'labb' (did you mean 'lab'?)",
            "stacks/demo.yaml:7:14: error: 'torch' cannot serve nano/jp6.2-cu126: nano/jp6.2-cu126 has no path on index lab and the recipe has no source build",
        ],
    ),
    Case(
        "default-power-mode",
        NANO,
        "default_power_mode: 25W",
        "default_power_mode: 25w",
        [
            "matrix/nano/device.yaml:20:21: error: default_power_mode '25w' is not one of the power modes (did you mean '25W'?)"
        ],
    ),
    Case(
        "duplicate-power-mode",
        NANO,
        "{name: 25W, nvpmodel_id: 1,",
        "{name: 15W, nvpmodel_id: 1,",
        [
            "matrix/nano/device.yaml:19:12: error: duplicate power mode '15W'",
            "matrix/nano/device.yaml:20:21: error: default_power_mode '25W' is not one of the power modes (did you mean '15W'?)",
        ],
    ),
    Case(
        "missing-nvpmodel-id",
        NANO,
        "{name: 15W, nvpmodel_id: 0,",
        "{name: 15W,",
        ["matrix/nano/device.yaml:18:5: error: power mode '15W' needs its nvpmodel_id"],
    ),
    Case(
        "device-id-mismatch",
        NANO,
        "id: nano",
        "id: nano2",
        [
            "matrix/nano/device.yaml:1:5: error: device id 'nano2' must match its directory 'matrix/nano/'",
            "matrix/nano/jp6.2-cu126.yaml:1:9: error: unknown device 'nano' (did you mean 'nano2'?)",
        ],
    ),
    Case(
        "recipe-name-mismatch",
        TORCH,
        "name: torch",
        "name: pytorch",
        [
            "recipes/torch.yaml:1:7: error: recipe name 'pytorch' must match its file name 'torch.yaml'",
            "stacks/demo.yaml:7:14: error: unknown recipe 'torch' (did you mean 'pytorch'?)",
            "recipes/fastlib.yaml:3:11: error: unknown recipe 'torch' (did you mean 'pytorch'?)",
        ],
    ),
    Case(
        "unknown-wheel-index",
        TORCH,
        "{index: lab,",
        "{index: labs,",
        [
            "recipes/torch.yaml:4:20: error: unknown index 'labs' (did you mean 'lab'?)",
            "stacks/demo.yaml:7:14: error: 'torch' cannot serve card/ubuntu24.04-cu128: card/ubuntu24.04-cu128 has no path on index labs and the recipe has no source build",
            "stacks/demo.yaml:7:14: error: 'torch' cannot serve nano/jp6.2-cu126: nano/jp6.2-cu126 has no path on index labs and the recipe has no source build",
        ],
    ),
    Case(
        "unknown-placeholder",
        FASTLIB,
        '"{{ max_jobs }}"',
        '"{{ max_job }}"',
        ["recipes/fastlib.yaml:12:19: error: unknown placeholder '{{ max_job }}' (did you mean 'max_jobs'?)"],
    ),
    Case(
        "no-wheel-dir",
        FASTLIB,
        "-w {{ wheel_dir }} .",
        "-w dist .",
        ["recipes/fastlib.yaml:14:9: error: no step writes to '{{ wheel_dir }}', so the build would leave no wheel"],
    ),
    Case(
        "short-commit",
        FASTLIB,
        '{"1.0.0": v1.0.0}',
        '{"1.0.0": 3f2a9bc}',
        ["recipes/fastlib.yaml:8:23: error: '3f2a9bc' looks like a short commit; write all 40 hex digits"],
    ),
    Case(
        "unknown-depends",
        FASTLIB,
        "depends: [torch]",
        "depends: [torch, numpyy]",
        ["recipes/fastlib.yaml:3:18: error: unknown recipe 'numpyy'"],
    ),
    Case(
        "bad-specifier",
        STACK,
        'version: ">=2.5"',
        'version: "=>2.5"',
        ["stacks/demo.yaml:7:30: error: '=>2.5' is not a version specifier such as '>=2.8,<2.10'"],
    ),
    Case(
        "bad-requirement",
        STACK,
        "  - requests>=2",
        "  - requests>=>2",
        [
            "stacks/demo.yaml:12:5: error: 'requests>=>2' is not a PEP 508 requirement: Expected semicolon (after name with no version specifier) or end"
        ],
    ),
    Case(
        "requirement-has-recipe",
        STACK,
        "  - requests>=2",
        "  - torch>=2",
        ["stacks/demo.yaml:12:5: error: 'torch' has a recipe (recipes/torch.yaml); list it under packages"],
    ),
    Case(
        "missing-dependency",
        STACK,
        '  - {recipe: torch, version: ">=2.5"}\n',
        "",
        ["stacks/demo.yaml:7:13: error: 'fastlib' depends on 'torch' (recipes/fastlib.yaml); add it to packages"],
    ),
    Case(
        "duplicate-package",
        STACK,
        '  - {recipe: torch, version: ">=2.5"}',
        '  - {recipe: torch, version: ">=2.5"}\n  - {recipe: torch}',
        ["stacks/demo.yaml:8:14: error: duplicate package 'torch'"],
    ),
    Case(
        "excluded-and-listed",
        STACK,
        "  - name: badlib",
        "  - name: torch",
        ["stacks/demo.yaml:7:14: error: 'torch' is both a package and excluded"],
    ),
    Case(
        "smoke-min-and-max",
        STACK,
        "min: 3}",
        "min: 3, max: 9}",
        ["stacks/demo.yaml:20:5: error: smoke check 'rate' needs exactly one of 'min' or 'max'"],
    ),
    Case(
        "duplicate-smoke",
        STACK,
        "min: 3}",
        "min: 3}\n  - {name: rate, metric: latency_p50_ms, max: 250}",
        ["stacks/demo.yaml:21:12: error: duplicate smoke check 'rate'"],
    ),
    Case(
        "unknown-power-mode",
        STACK,
        "runtime:\n",
        "runtime:\n  power_mode: 25W\n",
        ["stacks/demo.yaml:17:15: error: card has no power mode '25W'"],
    ),
    Case(
        "platform-requirement",
        STACK,
        "runtime:\n",
        'platform:\n  tensorrt: ">=10.3"\nruntime:\n',
        [
            "stacks/demo.yaml:5:5: error: stack needs tensorrt >=10.3, card/ubuntu24.04-cu128 has none (platform.tensorrt)"
        ],
    ),
    Case(
        "recipe-cannot-serve",
        TORCH,
        "imports: [torch]",
        "constraints: {arch: [aarch64]}\nimports: [torch]",
        [
            "stacks/demo.yaml:7:14: error: 'torch' cannot serve card/ubuntu24.04-cu128: needs arch aarch64, card/ubuntu24.04-cu128 is x86_64"
        ],
    ),
    Case(
        "no-fallback-left",
        STACK,
        "    fallback:\n      - {recipe: slowlib}\n",
        "",
        ["stacks/demo.yaml:8:13: error: 'fastlib' cannot serve card/ubuntu24.04-cu128: no x86 build yet"],
    ),
    Case(
        "duplicate-recipe",
        "recipes/torch-copy.yaml",
        None,
        "name: torch\ndescription: again\nobtain:\n  - wheel: {index: default}\n",
        [
            "recipes/torch-copy.yaml:1:7: error: recipe name 'torch' must match its file name 'torch-copy.yaml'",
            "recipes/torch.yaml:1:7: error: duplicate recipe 'torch' (also in recipes/torch-copy.yaml)",
        ],
    ),
    Case(
        "missing-app-file",
        STACK,
        "runtime:\n",
        "app:\n  files:\n    - {src: app/main.py, dest: /opt/app/main.py}\nruntime:\n",
        ["stacks/demo.yaml:18:13: error: 'app/main.py' does not exist"],
    ),
    Case(
        "index-url-without-path",
        "matrix/indexes.yaml",
        "/{path}/+simple/",
        "/simple/",
        ["matrix/indexes.yaml:3:10: error: url must contain '{path}', which each cell fills in"],
    ),
    Case(
        "two-os-releases",
        CARD_CELL,
        'ubuntu: "24.04"',
        'ubuntu: "24.04"\ndebian: "12"',
        [
            "matrix/card/ubuntu24.04-cu128.yaml:1:9: error: a cell names the release of its base images: one of 'ubuntu' or 'debian'"
        ],
    ),
    Case(
        "no-os-release",
        CARD_CELL,
        'ubuntu: "24.04"\n',
        "",
        [
            "matrix/card/ubuntu24.04-cu128.yaml:1:9: error: a cell names the release of its base images: one of 'ubuntu' or 'debian'"
        ],
    ),
    Case(
        "debian-name-mismatch",
        CARD_CELL,
        'ubuntu: "24.04"',
        'debian: "12"',
        [
            "matrix/card/ubuntu24.04-cu128.yaml:2:9: error: file name 'ubuntu24.04-cu128.yaml' does not match its contents (expected 'debian12-cu128.yaml')"
        ],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, catalogue_dir: Path) -> None:
    target = catalogue_dir / case.path
    target.parent.mkdir(parents=True, exist_ok=True)
    for name, text in case.extra.items():
        (catalogue_dir / name).write_text(text)
    if case.old is None:
        content: str | bytes = case.new
    else:
        original = target.read_text()
        assert case.old in original, f"fixture text not found: {case.old!r}"
        assert isinstance(case.new, str)
        content = original.replace(case.old, case.new, 1)
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    result = run_cli("validate")
    assert result.code == 2
    assert result.out == ""
    assert "Traceback" not in result.err
    assert sorted(result.err.splitlines()) == sorted(case.expected)


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
