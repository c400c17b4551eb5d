"""Smoke runner: show on the device, with numbers, that an environment works and runs as fast as the hardware allows.

Needs only the Python standard library and torch; every engine it exercises (vllm, faster_whisper,
ctranslate2, pynvml) is imported inside a try block and, when absent, its check is reported as
"not run" with the reason. It is copied into images and run on its own:

    python3 runner.py --spec spec.json --out smoke.json [--model NAME=DIR]... [--llm SHAPE[:QUANT]]...
                      [--power-mode MODE] [--work-dir DIR] [--allow-cpu] [--option KEY=VALUE]...

Exit status: 0 when every check passes, 1 when one fails, 3 when there is no GPU (the checks that need
none, installed versions and imports, still run and are reported), 2 on a bad spec or command line.

Spec (JSON; every key optional):

    {
      "stack": "maie-jetson", "target": "orin-nano-super/jp6.2-cu126", "image": "sha256:...",
      "versions": {"torch": "2.8.0", "vllm": "0.10.2"},       # distribution name -> version (== check)
      "imports": ["torch", "vllm", "faster_whisper"],           # modules to import
      "device": {                                               # the device profile from the catalogue
        "id": "orin-nano-super", "kind": "jetson",              # "jetson" or "discrete"
        "compute_capability": "8.7", "memory_gb": 8, "unified_memory": true,
        "power_modes": [{"name": "25W", "memory_bandwidth_gbps": 102.4}],
        "default_power_mode": "25W"
      },
      "power_mode": "25W",                                      # the mode the stack requires
      "checks": [                                               # the stack's smoke section
        {"name": "llm-decode", "metric": "llm_decode_tokens_per_s", "min": 30,
         "model": "Qwen3-4B-AWQ through vLLM, batch 1"}
      ],
      "models": {"qwen3-4b": "/models/qwen3-4b-awq"},          # NAME -> checkpoint directory
      "llm": {"shape": "qwen3-4b", "quant": "int4", "tokens": 128, "prompt_tokens": 16},
      "asr": {"shape": "large-v3-turbo", "compute_type": "int8_float16", "audio_s": 60, "beam_size": 5,
              "tokens_per_window": 100},
      "latency": {"shape": "qwen3-0.6b", "quant": "bf16", "prompt_tokens": 256, "decode_tokens": 7,
                  "steps": 30},
      "roofline_min": {"int4-tinygemm+compile+cudagraph": 0.2},  # path -> minimum roofline fraction
      "tolerances": {"memory": 0.05, "bandwidth": 0.15},
      "seed": 0
    }

Metrics a check may name: llm_decode_tokens_per_s, llm_time_to_first_token_ms, asr_real_time_factor,
peak_memory_gb, inference_rate_hz, latency_p50_ms, latency_p95_ms. A check's "model" text picks the
synthesized shape (a name from SHAPES or WHISPER_SHAPES inside it) and the quantization (AWQ, GPTQ,
int4 or 4-bit: int4; bf16 or fp16: bf16), unless "llm" / "asr" / "latency" set them; a NAME from
"models" (or --model) inside it selects a real checkpoint instead.

Output (smoke.json): the device and power mode seen, the spec's stack/target/image, and every check
as {name, status ("pass", "fail" or "not run"), value, unit, threshold, how, path, details}.

Without weights the runner synthesizes a model of the named shape with seeded random weights,
quantizes it int4 weight-only (asymmetric, group 128), writes a safetensors checkpoint (uint8
[n, k/2] weights, high nibble first, plus bf16 scale and zero per group, under Hugging Face tensor
names: `<module>.weight_packed`, `.weight_scale`, `.weight_zero`; a weight is
(q - 8) * scale + zero), loads it back through the loader that a real checkpoint goes through, and
decodes at batch 1 with a static KV cache. Paths, chosen automatically and reported: int4 through
torch's tinygemm kernels (`_weight_int4pack_mm`) or dense bf16, each with per-layer `torch.compile`
when Triton is there and CUDA-graph capture of a decode step; a reference dequantize path on CPU.
q/k/v and gate/up run as one matrix each; K and V go into the cache with one scatter; attention is
torch's SDPA over the whole static cache, masked. DecodeOptions (`--option KEY=VALUE`) changes these;
docs/h200-smoke/ in the builder repository has what each choice measured on an H200.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the checks that need torch say so
    torch = None  # type: ignore[assignment, unused-ignore]
    F = None  # type: ignore[assignment, unused-ignore]

RUNNER_VERSION = "1"
REPORT_FORMAT = "builder-smoke/1"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_GPU = 0, 1, 2, 3
GROUP_SIZE = 128
GB = 1e9
GIB = float(1 << 30)

PASS, FAIL, NOT_RUN = "pass", "fail", "not run"

METRICS = (
    "llm_decode_tokens_per_s",
    "llm_time_to_first_token_ms",
    "asr_real_time_factor",
    "peak_memory_gb",
    "inference_rate_hz",
    "latency_p50_ms",
    "latency_p95_ms",
)
UNITS = {
    "llm_decode_tokens_per_s": "tok/s",
    "llm_time_to_first_token_ms": "ms",
    "asr_real_time_factor": "x real time",
    "peak_memory_gb": "GB",
    "inference_rate_hz": "Hz",
    "latency_p50_ms": "ms",
    "latency_p95_ms": "ms",
}

# Roofline floors per decode path: about 0.8x of what the path reaches on the reference device (an
# H200, docs/h200-smoke/: compiled paths 0.22-0.33 int4, 0.54-0.71 bf16) for the lower of the
# Llama-2-7B and Qwen3-4B shapes; graph-only paths from the research notes (int4 8-16 %, bf16 46 %).
# A device with less bandwidth spends a smaller share of a token in fixed per-kernel costs, so it
# should do better than these.
DEFAULT_ROOFLINE_MIN: dict[str, float] = {
    "bf16+compile+cudagraph": 0.43,
    "bf16+cudagraph": 0.30,
    "int4-tinygemm+compile+cudagraph": 0.17,
    "int4-tinygemm+cudagraph": 0.065,
}
CONSISTENCY_MAX = 0.25  # relative logits difference, fast path vs eager, same token and position


# ----------------------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer (Llama / Qwen layout) at its exact published size."""

    name: str
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    qk_norm: bool = False
    tie_embeddings: bool = False
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    @property
    def q_size(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.kv_heads * self.head_dim

    def layer_linears(self) -> list[tuple[str, int, int]]:
        """(module name, out features n, in features k) of one layer's linear layers."""
        h, i = self.hidden, self.intermediate
        return [
            ("self_attn.q_proj", self.q_size, h),
            ("self_attn.k_proj", self.kv_size, h),
            ("self_attn.v_proj", self.kv_size, h),
            ("self_attn.o_proj", h, self.q_size),
            ("mlp.gate_proj", i, h),
            ("mlp.up_proj", i, h),
            ("mlp.down_proj", h, i),
        ]

    def linear_params(self) -> int:
        """Weights of every linear layer, the LM head included (it is read once per token)."""
        per_layer = sum(n * k for _, n, k in self.layer_linears())
        return self.layers * per_layer + self.vocab * self.hidden

    def norm_params(self) -> int:
        per_layer = 2 * self.hidden + (2 * self.head_dim if self.qk_norm else 0)
        return self.layers * per_layer + self.hidden

    def kv_bytes_per_position(self, dtype_bytes: int = 2) -> int:
        return self.layers * 2 * self.kv_size * dtype_bytes


SHAPES: dict[str, ModelShape] = {
    s.name: s
    for s in (
        # meta-llama/Llama-2-7b-hf config.json
        ModelShape("llama-2-7b", 4096, 32, 11008, 32, 32, 128, 32000),
        # Qwen/Qwen3-4B config.json (tie_word_embeddings, q/k RMSNorm per head)
        ModelShape("qwen3-4b", 2560, 36, 9728, 32, 8, 128, 151936, True, True, 1e6, 1e-6),
        ModelShape("qwen3-0.6b", 1024, 28, 3072, 16, 8, 128, 151936, True, True, 1e6, 1e-6),
        ModelShape("llama-3.2-1b", 2048, 16, 8192, 32, 8, 64, 128256, False, True, 500000.0, 1e-5),
        # Tiny shapes for tests on CPU: every k a multiple of 128 so int4 groups and kernels fit.
        ModelShape("tiny", 256, 2, 512, 4, 2, 64, 512, True, True, 10000.0, 1e-6),
        ModelShape("tiny-llama", 256, 2, 384, 4, 4, 64, 512),
    )
}


def find_shape(text: str) -> ModelShape | None:
    """The longest known shape name inside `text` (case-insensitive): 'Qwen3-4B-AWQ' -> qwen3-4b."""
    low = text.lower()
    for name in sorted(SHAPES, key=len, reverse=True):
        if name in low:
            return SHAPES[name]
    return None


def quant_from_text(text: str, default: str = "int4") -> str:
    low = text.lower()
    if re.search(r"awq|gptq|int4|4-?bit|\bq4", low):
        return "int4"
    if re.search(r"bf16|fp16|float16|bfloat16", low):
        return "bf16"
    return default


# ----------------------------------------------------------------------- arithmetic and gating


def bytes_per_token(shape: ModelShape, quant: str, kv_len: int, group: int = GROUP_SIZE) -> dict[str, int]:
    """Bytes one decode step reads: every linear weight (int4: half a byte each plus a bf16 scale and zero
    per group), the norms, one embedding row and the `kv_len` cache positions attention reads."""
    params = shape.linear_params()
    if quant == "int4":
        weights = params // 2
        quant_params = (params // group) * 2 * 2
    else:
        weights, quant_params = params * 2, 0
    parts = {
        "linear_weights": weights,
        "scales_zeros": quant_params,
        "norms": shape.norm_params() * 2,
        "embedding_row": shape.hidden * 2,
        "kv_cache": shape.kv_bytes_per_position() * kv_len,
    }
    parts["total"] = sum(parts.values())
    return parts


def roofline_fraction(tokens_per_s: float, bytes_token: float, bandwidth_gbps: float) -> float:
    """Share of the measured read bandwidth a decode uses: tok/s x bytes/token / bandwidth."""
    if bandwidth_gbps <= 0:
        raise ValueError("bandwidth must be positive")
    return tokens_per_s * bytes_token / (bandwidth_gbps * GB)


def roofline_tokens_per_s(bytes_token: float, bandwidth_gbps: float) -> float:
    """The decode rate the bandwidth allows: bandwidth / bytes per token."""
    return bandwidth_gbps * GB / bytes_token


def threshold_text(minimum: float | None, maximum: float | None) -> str | None:
    parts = []
    if minimum is not None:
        parts.append(f">= {minimum:g}")
    if maximum is not None:
        parts.append(f"<= {maximum:g}")
    return " and ".join(parts) or None


def evaluate_gate(value: float | None, minimum: float | None = None, maximum: float | None = None) -> str:
    """PASS when `value` meets both bounds (none given: PASS), FAIL otherwise; NOT_RUN when there is no value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_RUN
    if minimum is not None and value < minimum:
        return FAIL
    if maximum is not None and value > maximum:
        return FAIL
    return PASS


def within(value: float, expected: float, tolerance: float) -> bool:
    return abs(value - expected) <= tolerance * expected


def memory_matches(total_bytes: int, memory_gb: float, tolerance: float = 0.05) -> tuple[bool, str]:
    """Whether a GPU's total memory is the profile's `memory_gb`, read in GB (1e9) or GiB.

    Datasheets mix the two: an Orin Nano 8 GB reports 7.99e9 bytes, an H200 '141 GB' 140.4 GiB."""
    gb, gib = total_bytes / GB, total_bytes / GIB
    if within(gb, memory_gb, tolerance):
        return True, f"{gb:.2f} GB (1e9 bytes) vs {memory_gb:g}"
    if within(gib, memory_gb, tolerance):
        return True, f"{gib:.2f} GiB vs {memory_gb:g}"
    return False, f"{gb:.2f} GB = {gib:.2f} GiB, neither within {tolerance:.0%} of {memory_gb:g}"


def parse_nvpmodel(text: str) -> str | None:
    """The mode name from `nvpmodel -q` output ('NV Power Mode: 25W' then the mode's ID)."""
    match = re.search(r"^NV Power Mode:\s*(\S.*?)\s*$", text, re.MULTILINE)
    return match.group(1) if match else None


def _public_version(version: str) -> str:
    return version.strip().lower().removeprefix("v").split("+", 1)[0]


def version_matches(installed: str, expected: str) -> bool:
    """Equal versions; a local label (+cu126) the lock does not name is ignored."""
    a, b = installed.strip().lower().removeprefix("v"), expected.strip().lower().removeprefix("v")
    if a == b:
        return True
    return "+" not in b and _public_version(a) == b


# ------------------------------------------------------------------------------------- checks


@dataclass
class Check:
    name: str
    status: str
    value: float | str | None = None
    unit: str | None = None
    threshold: str | None = None
    how: str = ""
    path: str | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v not in (None, {}, "")}
        if isinstance(self.value, float):
            out["value"] = round(self.value, 6)
        return out


def not_run(name: str, reason: str, **extra: Any) -> Check:
    return Check(name, NOT_RUN, reason=reason, **extra)


def gated(
    name: str, value: float | None, unit: str, minimum: float | None, maximum: float | None, **extra: Any
) -> Check:
    return Check(name, evaluate_gate(value, minimum, maximum), value, unit, threshold_text(minimum, maximum), **extra)


def check_versions(expected: Mapping[str, str]) -> list[Check]:
    checks = []
    for dist, want in sorted(expected.items()):
        name = f"version:{dist}"
        try:
            have = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            checks.append(Check(name, FAIL, "not installed", threshold=f"== {want}", how="importlib.metadata"))
            continue
        status = PASS if version_matches(have, want) else FAIL
        how = "importlib.metadata"
        if status == PASS and have != want:
            how += f" (local label of {have} ignored)"
        checks.append(Check(name, status, have, threshold=f"== {want}", how=how))
    return checks


def check_imports(modules: Sequence[str]) -> list[Check]:
    checks = []
    for module in modules:
        started = time.perf_counter()
        try:
            importlib.import_module(module)
        except BaseException as error:  # an import can raise anything, SystemExit included
            line = f"{type(error).__name__}: {error}".splitlines()[0]
            checks.append(Check(f"import:{module}", FAIL, line, how="importlib.import_module"))
            continue
        seconds = time.perf_counter() - started
        checks.append(Check(f"import:{module}", PASS, round(seconds, 3), "s", how="importlib.import_module"))
    return checks


# -------------------------------------------------------------------------------- safetensors

_ST_DTYPES: dict[str, str] = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "I16": "int16",
    "U16": "uint16",
    "F16": "float16",
    "BF16": "bfloat16",
    "I32": "int32",
    "U32": "uint32",
    "F32": "float32",
    "F64": "float64",
    "I64": "int64",
    "U64": "uint64",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}
_HEADER_LIMIT = 100 << 20


def _torch_dtype(code: str) -> torch.dtype:
    try:
        dtype: torch.dtype = getattr(torch, _ST_DTYPES[code])
    except (KeyError, AttributeError):
        raise ValueError(f"safetensors dtype {code} is not supported here") from None
    return dtype


def dtype_code(dtype: torch.dtype) -> str:
    for code, name in _ST_DTYPES.items():
        if getattr(torch, name, None) == dtype:
            return code
    raise ValueError(f"no safetensors dtype for {dtype}")


def _itemsize(code: str) -> int:
    return int(torch.empty((), dtype=_torch_dtype(code)).element_size())


def _host_view(tensor: torch.Tensor) -> memoryview:
    """A writable byte view of a contiguous CPU tensor's memory (no numpy). Keep the tensor alive."""
    size = tensor.numel() * tensor.element_size()
    if size == 0:
        return memoryview(bytearray())
    return memoryview((ctypes.c_char * size).from_address(tensor.data_ptr())).cast("B")


class SafetensorsWriter:
    """Writes a .safetensors file whose tensors arrive in any order and in row chunks.

    Format: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}} with
    optional "__metadata__" (str -> str), padded with spaces to 8 bytes, then the raw little-endian
    bytes of every tensor back to back. Tensors are laid out widest dtype first so each is aligned."""

    def __init__(
        self, path: Path, plan: Sequence[tuple[str, str, Sequence[int]]], metadata: Mapping[str, str] | None = None
    ) -> None:
        self.path = path
        header: dict[str, Any] = {}
        if metadata:
            header["__metadata__"] = dict(metadata)
        self.entries: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
        offset = 0
        for name, code, shape in sorted(plan, key=lambda e: -_itemsize(e[1])):
            if name in self.entries:
                raise ValueError(f"tensor {name} is planned twice")
            size = math.prod(shape) * _itemsize(code)
            self.entries[name] = (code, tuple(shape), offset, offset + size)
            header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-(8 + len(raw)) % 8)
        self.data_start = 8 + len(raw)
        self.written = dict.fromkeys(self.entries, 0)
        self.file: IO[bytes] = path.open("wb")
        self.file.write(struct.pack("<Q", len(raw)) + raw)
        self.file.truncate(self.data_start + offset)

    def write(self, name: str, tensor: torch.Tensor, row: int = 0) -> None:
        """Write `tensor` as rows `row`.. of the planned tensor `name`."""
        code, shape, begin, end = self.entries[name]
        if dtype_code(tensor.dtype) != code:
            raise ValueError(f"{name}: planned {code}, got {tensor.dtype}")
        if tuple(tensor.shape[1:]) != shape[1:] and tensor.dim() == len(shape):
            raise ValueError(f"{name}: planned shape {list(shape)}, got rows of {list(tensor.shape)}")
        host = tensor.detach().contiguous().cpu()
        row_bytes = math.prod(shape[1:]) * host.element_size() if shape else host.element_size()
        start = begin + row * row_bytes
        size = host.numel() * host.element_size()
        if start + size > end:
            raise ValueError(f"{name}: rows {row}.. run past the tensor's end")
        self.file.seek(self.data_start + start)
        self.file.write(_host_view(host))
        self.written[name] += size

    def close(self) -> None:
        self.file.close()
        short = [n for n, (_, _, b, e) in self.entries.items() if self.written[n] != e - b]
        if short:
            raise ValueError(f"tensors not fully written: {', '.join(short[:5])}")

    def __enter__(self) -> SafetensorsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.file.close()


def write_safetensors(
    path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> None:
    plan = [(name, dtype_code(t.dtype), list(t.shape)) for name, t in tensors.items()]
    with SafetensorsWriter(path, plan, metadata) as writer:
        for name, tensor in tensors.items():
            writer.write(name, tensor)


def read_safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """The JSON header and the offset where tensor data starts."""
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: not a safetensors file (shorter than 8 bytes)")
        (length,) = struct.unpack("<Q", head)
        if length > _HEADER_LIMIT:
            raise ValueError(f"{path}: header of {length} bytes is implausible")
        header: dict[str, Any] = json.loads(f.read(length))
    return header, 8 + length


def _readinto(f: IO[bytes], tensor: torch.Tensor) -> None:
    view = _host_view(tensor)
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])  # type: ignore[attr-defined]
        if not got:
            raise ValueError("file ended inside a tensor")
        done += got


class _Reader:
    """Reads byte ranges of a file into tensors on a device; through two pinned buffers to a GPU."""

    def __init__(self, f: IO[bytes], device: torch.device, chunk: int = 64 << 20) -> None:
        self.f, self.device, self.chunk = f, device, chunk
        self.cuda = device.type == "cuda"
        self.staging = [torch.empty(chunk, dtype=torch.uint8, pin_memory=True) for _ in range(2)] if self.cuda else []
        self.events: list[Any] = [None, None]
        self.turn = 0

    def read(self, offset: int, size: int) -> torch.Tensor:
        out = torch.empty(size, dtype=torch.uint8, device=self.device)
        self.f.seek(offset)
        if not self.cuda:
            _readinto(self.f, out)
            return out
        done = 0
        while done < size:
            n = min(self.chunk, size - done)
            i, self.turn = self.turn, self.turn ^ 1
            if self.events[i] is not None:
                self.events[i].synchronize()
            buf = self.staging[i][:n]
            _readinto(self.f, buf)
            out[done : done + n].copy_(buf, non_blocking=True)
            event = _cuda_event()
            event.record()
            self.events[i] = event
            done += n
        return out

    def finish(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)


def iter_safetensors(
    path: Path, device: str | torch.device = "cpu", names: set[str] | None = None
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yields (name, tensor) in file order, each read straight onto `device`."""
    header, start = read_safetensors_header(path)
    entries = sorted(
        (info["data_offsets"][0], info["data_offsets"][1], name, info)
        for name, info in header.items()
        if name != "__metadata__" and (names is None or name in names)
    )
    with path.open("rb", buffering=0) as f:
        reader = _Reader(f, torch.device(device))
        for begin, end, name, info in entries:
            raw = reader.read(start + begin, end - begin)
            dtype = _torch_dtype(info["dtype"])
            yield name, raw.view(dtype).reshape(info["shape"])
        reader.finish()


def load_safetensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    return dict(iter_safetensors(path, device))


# ------------------------------------------------------------------------------- quantization


def quantize_int4(weight: torch.Tensor, group: int = GROUP_SIZE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric int4 per group of `group` inputs: returns (uint8 [n, k/2], bf16 scale [n, k/g], bf16 zero).

    A weight is (q - 8) * scale + zero with q in 0..15; byte j of a row holds q[2j] in its high nibble and
    q[2j+1] in its low nibble (the layout `_convert_weight_to_int4pack` takes)."""
    n, k = weight.shape
    if k % group or k % 2:
        raise ValueError(f"in features {k} are not a multiple of the group size {group}")
    w = weight.float().reshape(n, k // group, group)
    lo, hi = w.amin(-1), w.amax(-1)
    scale = ((hi - lo) / 15).clamp_min(1e-8).to(torch.bfloat16)
    zero = (lo + 8 * scale.float()).to(torch.bfloat16)
    q = torch.round((w - zero.float().unsqueeze(-1)) / scale.float().unsqueeze(-1) + 8).clamp_(0, 15)
    q8 = q.to(torch.uint8).reshape(n, k)
    packed = (q8[:, 0::2] << 4) | q8[:, 1::2]
    return packed.contiguous(), scale, zero


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """uint8 [n, k/2] -> uint8 [n, k] values 0..15."""
    n, half = packed.shape
    return torch.stack([packed >> 4, packed & 0xF], dim=-1).reshape(n, half * 2)


def dequantize_int4(
    packed: torch.Tensor,
    scale: torch.Tensor,
    zero: torch.Tensor,
    group: int = GROUP_SIZE,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    q = unpack_int4(packed).float()
    s = scale.float().repeat_interleave(group, dim=1)
    z = zero.float().repeat_interleave(group, dim=1)
    return ((q - 8) * s + z).to(dtype or torch.float32)


def split_k(
    packed: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, parts: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack `parts` slices of k as rows: W [n, k] -> W' [parts*n, k/parts], row s*n+j = W[j, s-th slice].

    With x reshaped to `parts` rows, one int4 kernel call then computes every partial product at once
    (the m16 tensor-core tile has room for 16 rows; at batch 1 it would carry 15 rows of padding)."""
    if parts == 1:
        return packed, scale, zero
    n, half = packed.shape
    groups = scale.shape[1]

    def stack(t: torch.Tensor, width: int) -> torch.Tensor:
        return t.reshape(n, parts, width // parts).transpose(0, 1).reshape(parts * n, width // parts).contiguous()

    return stack(packed, half), stack(scale, groups), stack(zero, groups)


def valid_split(k: int, parts: int, inner_k_tiles: int, group: int = GROUP_SIZE) -> bool:
    piece = k // parts
    return k % parts == 0 and piece % group == 0 and piece % (16 * inner_k_tiles) == 0


def choose_split(n: int, k: int, target_blocks: int, inner_k_tiles: int, max_parts: int = 16) -> int:
    """The fewest k slices that give the tinygemm kernel (one block per 8 outputs) `target_blocks` blocks."""
    if target_blocks <= 0:
        return 1
    best = 1
    for parts in range(1, max_parts + 1):
        if not valid_split(k, parts, inner_k_tiles):
            continue
        best = parts
        if (n // 8) * parts >= target_blocks:
            return parts
    return best


def tinygemm_pack(
    packed: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, inner_k_tiles: int, cpu: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Repack for torch's tinygemm kernels: (int4pack weight, scales_and_zeros [k/g, n, 2] bf16)."""
    scales_zeros = torch.stack([scale, zero], dim=-1).transpose(0, 1).contiguous().to(torch.bfloat16)
    if cpu:
        q = unpack_int4(packed).to(torch.int32)
        weight: torch.Tensor = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, inner_k_tiles)
    else:
        weight = torch.ops.aten._convert_weight_to_int4pack(packed.contiguous(), inner_k_tiles)
    return weight, scales_zeros


# ---------------------------------------------------------------------------- checkpoints


def _linear_plan(prefix: str, n: int, k: int, quant: str) -> list[tuple[str, str, list[int]]]:
    if quant == "int4":
        return [
            (f"{prefix}.weight_packed", "U8", [n, k // 2]),
            (f"{prefix}.weight_scale", "BF16", [n, k // GROUP_SIZE]),
            (f"{prefix}.weight_zero", "BF16", [n, k // GROUP_SIZE]),
        ]
    return [(f"{prefix}.weight", "BF16", [n, k])]


def checkpoint_plan(shape: ModelShape, quant: str) -> list[tuple[str, str, list[int]]]:
    """Every tensor of a checkpoint of `shape`, under Hugging Face names (int4: lm_head quantized too)."""
    plan: list[tuple[str, str, list[int]]] = [("model.embed_tokens.weight", "BF16", [shape.vocab, shape.hidden])]
    for i in range(shape.layers):
        p = f"model.layers.{i}."
        plan += [
            (p + "input_layernorm.weight", "BF16", [shape.hidden]),
            (p + "post_attention_layernorm.weight", "BF16", [shape.hidden]),
        ]
        if shape.qk_norm:
            plan += [
                (p + "self_attn.q_norm.weight", "BF16", [shape.head_dim]),
                (p + "self_attn.k_norm.weight", "BF16", [shape.head_dim]),
            ]
        for module, n, k in shape.layer_linears():
            plan += _linear_plan(p + module, n, k, quant)
    plan.append(("model.norm.weight", "BF16", [shape.hidden]))
    if quant == "int4" or not shape.tie_embeddings:
        plan += _linear_plan("lm_head", shape.vocab, shape.hidden, quant)
    return plan


def hf_config(shape: ModelShape, quant: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "architectures": ["Qwen3ForCausalLM" if shape.qk_norm else "LlamaForCausalLM"],
        "model_type": "qwen3" if shape.qk_norm else "llama",
        "hidden_size": shape.hidden,
        "num_hidden_layers": shape.layers,
        "intermediate_size": shape.intermediate,
        "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.kv_heads,
        "head_dim": shape.head_dim,
        "vocab_size": shape.vocab,
        "tie_word_embeddings": shape.tie_embeddings,
        "rope_theta": shape.rope_theta,
        "rms_norm_eps": shape.norm_eps,
        "torch_dtype": "bfloat16",
        "builder_shape": shape.name,
    }
    if quant == "int4":
        config["quantization_config"] = {
            "quant_method": "builder-int4",
            "bits": 4,
            "group_size": GROUP_SIZE,
            "layout": "weight_packed uint8 [n, k/2], high nibble first; weight = (q - 8) * weight_scale + weight_zero",
            "modules_not_quantized": ["model.embed_tokens"],
        }
    return config


def shape_from_config(config: Mapping[str, Any], name: str = "checkpoint") -> ModelShape:
    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    return ModelShape(
        name=str(config.get("builder_shape", name)),
        hidden=hidden,
        layers=int(config["num_hidden_layers"]),
        intermediate=int(config["intermediate_size"]),
        heads=heads,
        kv_heads=int(config.get("num_key_value_heads", heads)),
        head_dim=int(config.get("head_dim") or hidden // heads),
        vocab=int(config["vocab_size"]),
        qk_norm=str(config.get("model_type", "")).startswith("qwen3"),
        tie_embeddings=bool(config.get("tie_word_embeddings", False)),
        rope_theta=float(config.get("rope_theta", 10000.0)),
        norm_eps=float(config.get("rms_norm_eps", 1e-5)),
    )


def _random_rows(
    name: str, rows: int, cols: int, std: float, mean: float, seed: int, device: torch.device
) -> Iterator[tuple[int, torch.Tensor]]:
    """Seeded normal rows of a tensor, in chunks of about 64 M values."""
    gen = torch.Generator(device=device)
    gen.manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (1 << 63))
    step = max(1, (64 << 20) // max(cols, 1))
    for row in range(0, rows, step):
        n = min(step, rows - row)
        chunk = torch.empty(n, cols, device=device, dtype=torch.float32).normal_(mean, std, generator=gen)
        yield row, chunk


def synthesize_checkpoint(directory: Path, shape: ModelShape, quant: str, seed: int, device: torch.device) -> Path:
    """Writes config.json and model.safetensors of `shape` with seeded random weights; int4 is quantized
    from bf16 weights as a real quantizer would. Returns the safetensors path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(hf_config(shape, quant), indent=2) + "\n")
    path = directory / "model.safetensors"
    plan = checkpoint_plan(shape, quant)
    meta = {"format": "pt", "builder_smoke": f"synthesized {shape.name} {quant} seed {seed}"}
    with SafetensorsWriter(path, plan, meta) as writer:
        for name, code, dims in plan:
            if code == "BF16" and len(dims) == 1:  # norm weights near one
                for _, rows in _random_rows(name, 1, dims[0], 0.05, 1.0, seed, device):
                    writer.write(name, rows.reshape(dims).to(torch.bfloat16))
            elif name == "model.embed_tokens.weight":
                for row, rows in _random_rows(name, dims[0], dims[1], 1.0, 0.0, seed, device):
                    writer.write(name, rows.to(torch.bfloat16), row)
            elif name.endswith(".weight") and quant != "int4":
                for row, rows in _random_rows(name, dims[0], dims[1], dims[1] ** -0.5, 0.0, seed, device):
                    writer.write(name, rows.to(torch.bfloat16), row)
            elif name.endswith(".weight_packed"):
                prefix = name.removesuffix(".weight_packed")
                n, k = dims[0], dims[1] * 2
                source, std = prefix + ".weight", k**-0.5
                if prefix == "lm_head" and shape.tie_embeddings:  # the quantized copy of the tied embedding
                    source, std = "model.embed_tokens.weight", 1.0
                for row, rows in _random_rows(source, n, k, std, 0.0, seed, device):
                    packed, scale, zero = quantize_int4(rows.to(torch.bfloat16))
                    writer.write(name, packed, row)
                    writer.write(prefix + ".weight_scale", scale, row)
                    writer.write(prefix + ".weight_zero", zero, row)
    return path


# ---------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class DecodeOptions:
    """How the decode path is built; `select_options` fills the automatic choices."""

    kernel: str = "auto"  # int4: int4-tinygemm (CUDA), int4-tinygemm-cpu, int4-reference; bf16: dense
    fuse: bool = True  # q/k/v and gate/up as one matrix each
    inner_k_tiles: int = 8
    # Splitting k into rows for more tinygemm blocks: 0 never (the default: 2-10 % slower on an H200),
    # -1 aims for 4 blocks per SM, N for N blocks.
    split_target: int = 0
    attention: str = "sdpa"  # "sdpa", "matmul" (bmm, softmax, bmm) or "reduce" (elementwise reductions)
    kv_stacked: bool = True  # one scatter writes K and V; False writes each (slower once compiled)
    combo_kernels: bool = True  # let Inductor launch independent kernels as one (2-3 % on int4, H200)
    compile: bool | None = None  # None: when CUDA and Triton are there
    graph: bool | None = None  # None: on CUDA
    dtype: str = "bfloat16"


@dataclass
class LinearW:
    """One (possibly fused and k-split) linear layer's tensors for its kernel."""

    tensors: tuple[torch.Tensor, ...]
    n: int
    parts: int = 1


@dataclass
class LoadedModel:
    shape: ModelShape
    kernel: str
    dtype: torch.dtype
    embed: torch.Tensor
    input_norms: list[torch.Tensor]
    layers: list[list[torch.Tensor]]  # per layer: post norm, [q norm, k norm], then each linear's tensors
    final_norm: torch.Tensor
    lm_head: LinearW
    layer_linears: list[tuple[str, int, int]]  # (name, n, parts), the same for every layer
    options: DecodeOptions


def linear_forward(kernel: str, x: torch.Tensor, w: tuple[torch.Tensor, ...], n: int, parts: int) -> torch.Tensor:
    """y = x W^T for x [T, k] through `kernel`."""
    if kernel == "dense":
        return F.linear(x, w[0])
    if kernel == "int4-reference":
        return F.linear(x, dequantize_int4(w[0], w[1], w[2], GROUP_SIZE, x.dtype))
    rows, k = x.shape
    xs = x.reshape(rows * parts, k // parts) if parts > 1 else x
    op = torch.ops.aten._weight_int4pack_mm if kernel == "int4-tinygemm" else torch.ops.aten._weight_int4pack_mm_for_cpu
    y: torch.Tensor = op(xs.contiguous(), w[0], GROUP_SIZE, w[1])
    if parts > 1:
        y = y.reshape(rows, parts, parts, n).diagonal(dim1=1, dim2=2).sum(-1)
    return y


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (y * weight.float()).to(x.dtype)


def rope_tables(shape: ModelShape, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / (
        shape.rope_theta ** (torch.arange(0, shape.head_dim, 2, device=device, dtype=torch.float64) / shape.head_dim)
    )
    freqs = torch.outer(torch.arange(length, device=device, dtype=torch.float64), inv)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().float(), emb.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [T, heads, D]; cos/sin [T, D]."""
    xf = x.float()
    half = xf.shape[-1] // 2
    rotated = torch.cat([-xf[..., half:], xf[..., :half]], dim=-1)
    return (xf * cos.unsqueeze(1) + rotated * sin.unsqueeze(1)).to(x.dtype)


def attention(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, positions: torch.Tensor, how: str
) -> torch.Tensor:
    """q [T, H, D] against the whole static cache [KV, L, D], masked to positions <= each query's."""
    rows, heads, dim = q.shape
    kv, length, _ = k_cache.shape
    group = heads // kv
    allowed = torch.arange(length, device=q.device).unsqueeze(0) <= positions.unsqueeze(1)  # [T, L]
    if how == "reduce" and rows == 1:
        qg = q.transpose(0, 1).reshape(kv, group, dim).float()
        scores = (qg.unsqueeze(2) * k_cache.float().unsqueeze(1)).sum(-1) * dim**-0.5  # [KV, G, L]
        probs = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
        out: torch.Tensor = (probs.unsqueeze(-1) * v_cache.float().unsqueeze(1)).sum(2)  # [KV, G, D]
        return out.to(q.dtype).reshape(1, heads * dim)
    if how == "sdpa":
        out = F.scaled_dot_product_attention(
            q.transpose(0, 1).unsqueeze(0),
            k_cache.unsqueeze(0),
            v_cache.unsqueeze(0),
            attn_mask=allowed,
            enable_gqa=True,
        )
        return out.squeeze(0).transpose(0, 1).reshape(rows, heads * dim)
    qg = q.transpose(0, 1).reshape(kv, group * rows, dim)
    scores = torch.matmul(qg, k_cache.transpose(1, 2)).float() * dim**-0.5
    mask = allowed.unsqueeze(0).expand(group, rows, length).reshape(group * rows, length)
    probs = scores.masked_fill(~mask, float("-inf")).softmax(-1).to(v_cache.dtype)
    out = torch.matmul(probs, v_cache)  # [KV, G*T, D]
    return out.reshape(heads, rows, dim).transpose(0, 1).reshape(rows, heads * dim)


LayerFn = Callable[..., tuple["torch.Tensor", "torch.Tensor"]]


def make_layer_fn(model: LoadedModel) -> LayerFn:
    """One decoder layer as a function of tensors only, so one compiled graph serves every layer.

    Takes the residual stream x, its normed copy h, the positions, rope tables, this layer's cache
    [2, KV, L, D], the next layer's input norm (fused into this layer's last kernel), then this layer's
    tensors."""
    shape, kernel, how = model.shape, model.kernel, model.options.attention
    stacked = model.options.kv_stacked
    linears = model.layer_linears
    names = [n for n, _, _ in linears]
    counts = [len(model.lm_head.tensors)] * len(linears)
    eps, qk = shape.norm_eps, shape.qk_norm

    def layer(
        x: torch.Tensor, h: torch.Tensor, positions: torch.Tensor, cos_t: torch.Tensor, sin_t: torch.Tensor,
        cache: torch.Tensor, next_norm: torch.Tensor, *w: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        rows = h.shape[0]
        post_norm = w[0]

        def run(name: str, inp: torch.Tensor) -> torch.Tensor:
            i = names.index(name)
            _, n, parts = linears[i]
            start = 1 + (2 if qk else 0) + sum(counts[:i])
            return linear_forward(kernel, inp, tuple(w[start : start + counts[i]]), n, parts)

        if linears[0][0] == "qkv":
            q, k, v = torch.split(run("qkv", h), [shape.q_size, shape.kv_size, shape.kv_size], dim=-1)
        else:
            q, k, v = run("q", h), run("k", h), run("v", h)
        q = q.reshape(rows, shape.heads, shape.head_dim)
        k = k.reshape(rows, shape.kv_heads, shape.head_dim)
        v = v.reshape(rows, shape.kv_heads, shape.head_dim)
        if qk:
            q, k = rms_norm(q, w[1], eps), rms_norm(k, w[2], eps)
        cos, sin = cos_t[positions], sin_t[positions]
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if stacked:
            cache[:, :, positions] = torch.stack([k, v]).transpose(1, 2).to(cache.dtype)
        else:
            cache[0, :, positions] = k.transpose(0, 1).to(cache.dtype)
            cache[1, :, positions] = v.transpose(0, 1).to(cache.dtype)
        x = x + run("o", attention(q, cache[0], cache[1], positions, how))
        h2 = rms_norm(x, post_norm, eps)
        if "gate_up" in names:
            gate, up = torch.split(run("gate_up", h2), [shape.intermediate, shape.intermediate], dim=-1)
        else:
            gate, up = run("gate", h2), run("up", h2)
        x = x + run("down", F.silu(gate) * up)
        return x, rms_norm(x, next_norm, eps)

    return layer


def _pop(tensors: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    try:
        return tensors.pop(name)
    except KeyError:
        raise ValueError(f"tensor {name} is missing from the checkpoint") from None


def _quant_parts(tensors: dict[str, torch.Tensor], prefix: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        _pop(tensors, prefix + ".weight_packed"),
        _pop(tensors, prefix + ".weight_scale"),
        _pop(tensors, prefix + ".weight_zero"),
    )


def _make_linear(
    model_kernel: str,
    parts_list: list[tuple[torch.Tensor, ...]],
    options: DecodeOptions,
    target_blocks: int,
    dtype: torch.dtype,
) -> LinearW:
    """Concatenate along n (fusion), split k, and pack for the kernel."""
    if model_kernel == "dense":
        weight = torch.cat([p[0] for p in parts_list]) if len(parts_list) > 1 else parts_list[0][0]
        return LinearW((weight.to(dtype).contiguous(),), weight.shape[0])
    packed = torch.cat([p[0] for p in parts_list]) if len(parts_list) > 1 else parts_list[0][0]
    scale = torch.cat([p[1] for p in parts_list]) if len(parts_list) > 1 else parts_list[0][1]
    zero = torch.cat([p[2] for p in parts_list]) if len(parts_list) > 1 else parts_list[0][2]
    n, k = packed.shape[0], packed.shape[1] * 2
    if model_kernel == "int4-reference":
        return LinearW((packed, scale, zero), n)
    parts = choose_split(n, k, target_blocks, options.inner_k_tiles)
    sp, ss, sz = split_k(packed, scale, zero, parts)
    weight, scales_zeros = tinygemm_pack(sp, ss, sz, options.inner_k_tiles, cpu=model_kernel == "int4-tinygemm-cpu")
    return LinearW((weight, scales_zeros), n, parts)


def build_model(
    shape: ModelShape,
    tensors: dict[str, torch.Tensor],
    quant: str,
    options: DecodeOptions,
    device: torch.device,
    sm_count: int = 0,
) -> LoadedModel:
    """Turns checkpoint tensors (consumed from `tensors`) into the decode path's layout."""
    kernel = options.kernel
    dtype = getattr(torch, options.dtype)
    target = options.split_target if options.split_target >= 0 else 4 * max(sm_count, 1)
    groups = (
        [("qkv", ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]), ("o", ["self_attn.o_proj"]),
         ("gate_up", ["mlp.gate_proj", "mlp.up_proj"]), ("down", ["mlp.down_proj"])]
        if options.fuse
        else [(n, [m]) for n, m in [("q", "self_attn.q_proj"), ("k", "self_attn.k_proj"), ("v", "self_attn.v_proj"),
              ("o", "self_attn.o_proj"), ("gate", "mlp.gate_proj"), ("up", "mlp.up_proj"), ("down", "mlp.down_proj")]]
    )  # fmt: skip

    def linear(prefix: str) -> tuple[torch.Tensor, ...]:
        if quant == "int4":
            return _quant_parts(tensors, prefix)
        return (_pop(tensors, prefix + ".weight"),)

    def to(t: torch.Tensor) -> torch.Tensor:
        return t.to(device=device, dtype=dtype).contiguous()

    embed = to(_pop(tensors, "model.embed_tokens.weight"))
    input_norms, layers = [], []
    layer_linears: list[tuple[str, int, int]] = []
    for i in range(shape.layers):
        p = f"model.layers.{i}."
        input_norms.append(to(_pop(tensors, p + "input_layernorm.weight")))
        own = [to(_pop(tensors, p + "post_attention_layernorm.weight"))]
        if shape.qk_norm:
            own += [to(_pop(tensors, p + "self_attn.q_norm.weight")), to(_pop(tensors, p + "self_attn.k_norm.weight"))]
        specs = []
        for name, modules in groups:
            lin = _make_linear(kernel, [linear(p + m) for m in modules], options, target, dtype)
            own += list(lin.tensors)
            specs.append((name, lin.n, lin.parts))
        layer_linears = specs
        layers.append(own)
    final_norm = to(_pop(tensors, "model.norm.weight"))
    if quant == "int4" or "lm_head.weight" in tensors:
        lm_head = _make_linear(kernel, [linear("lm_head")], options, target, dtype)
    else:
        lm_head = LinearW((embed,), shape.vocab)
    return LoadedModel(shape, kernel, dtype, embed, input_norms, layers, final_norm, lm_head, layer_linears, options)


class Decoder:
    """Batch-1 decoding with a static KV cache of `max_len` positions."""

    def __init__(self, model: LoadedModel, max_len: int, device: torch.device) -> None:
        self.model, self.device, self.max_len = model, device, max_len
        s = model.shape
        self.caches = [
            torch.zeros(2, s.kv_heads, max_len, s.head_dim, dtype=model.dtype, device=device) for _ in range(s.layers)
        ]
        self.cos, self.sin = rope_tables(s, max_len, device)
        self.next_norms = [*model.input_norms[1:], model.final_norm]
        self.layer_fn: LayerFn = make_layer_fn(model)
        self.fast_fn: LayerFn = self.layer_fn
        self.token = torch.zeros(1, dtype=torch.long, device=device)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)
        self.graph: Any = None
        self.logits: torch.Tensor | None = None

    def forward(
        self, tokens: torch.Tensor, positions: torch.Tensor, fast: bool = False, all_logits: bool = False
    ) -> torch.Tensor:
        """Logits [T, vocab] (or of the last position only) for `tokens` at `positions`."""
        m = self.model
        x = m.embed[tokens]
        h = rms_norm(x, m.input_norms[0], m.shape.norm_eps)
        fn = self.fast_fn if fast else self.layer_fn
        for i, own in enumerate(m.layers):
            x, h = fn(x, h, positions, self.cos, self.sin, self.caches[i], self.next_norms[i], *own)
        if not all_logits:
            h = h[-1:]
        head = m.lm_head
        return linear_forward(m.kernel, h, head.tensors, head.n, head.parts)

    def step(self) -> torch.Tensor:
        """One greedy step from self.token at self.pos; both advance in place (graph-capturable)."""
        logits = self.forward(self.token, self.pos, fast=True)
        self.token.copy_(logits.argmax(-1))
        self.pos.add_(1)
        return logits

    def compile(self) -> None:
        torch._dynamo.reset()  # one decoder's layers at a time: no stale graphs count against the cache limit
        inductor: Any = importlib.import_module("torch._inductor.config")
        if hasattr(inductor, "combo_kernels"):
            inductor.combo_kernels = self.model.options.combo_kernels
        self.fast_fn = torch.compile(self.layer_fn, fullgraph=True, dynamic=False)

    def capture(self, start_token: int, start_pos: int, warmup: int = 3) -> None:
        stream = _cuda_stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            self.reset(start_token, start_pos)
            for _ in range(warmup):
                self.step()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        self.reset(start_token, start_pos)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.logits = self.step()
        self.graph = graph

    def reset(self, token: int, pos: int) -> None:
        self.token.fill_(token)
        self.pos.fill_(pos)

    def run_step(self) -> torch.Tensor:
        if self.graph is not None:
            self.graph.replay()
            assert self.logits is not None
            return self.logits
        return self.step()


# ------------------------------------------------------------------------------ measurements


def _cuda_event(timing: bool = False) -> Any:
    return torch.cuda.Event(enable_timing=timing)  # type: ignore[no-untyped-call, unused-ignore]


def _cuda_stream(device: torch.device | None = None) -> Any:
    return torch.cuda.Stream(device)  # type: ignore[no-untyped-call, unused-ignore]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bandwidth_probe(device: torch.device, size_bytes: int, iters: int = 20) -> dict[str, Any]:
    """Read-only bandwidth: torch.sum over a float32 buffer, CUDA events, median of `iters`."""
    buf = torch.empty(size_bytes // 4, dtype=torch.float32, device=device).uniform_()
    for _ in range(3):
        torch.sum(buf)
    times = []
    for _ in range(iters):
        start, end = _cuda_event(timing=True), _cuda_event(timing=True)
        start.record()
        torch.sum(buf)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    median = statistics.median(times)
    del buf
    torch.cuda.empty_cache()
    return {
        "gbps": size_bytes / median / GB,
        "buffer_bytes": size_bytes,
        "iterations": iters,
        "median_ms": median * 1e3,
        "best_gbps": size_bytes / min(times) / GB,
    }


@dataclass
class LlmResult:
    shape: str
    quant: str
    path: str
    tokens_per_s: float
    ttft_ms: float
    bytes_per_token: dict[str, int]
    load_s: float
    load_detail: dict[str, float]
    synth_s: float | None
    consistency: float | None
    kernel_check: float | None
    options: dict[str, Any]
    notes: list[str]
    layer_linears: list[tuple[str, int, int]]
    tokens: int
    kv_len: int
    checkpoint_bytes: int | None = None
    prepare_s: float | None = None
    rounds_tokens_per_s: list[float] = field(default_factory=list)


def select_options(options: DecodeOptions, quant: str, device: torch.device, notes: list[str]) -> DecodeOptions:
    cuda = device.type == "cuda"
    kernel = options.kernel
    if kernel == "auto":
        if quant != "int4":
            kernel = "dense"
        elif cuda and hasattr(torch.ops.aten, "_weight_int4pack_mm"):
            kernel = "int4-tinygemm"
        else:
            kernel = "int4-reference"
            notes.append(
                "int4 through the reference dequantize path: "
                + ("no CUDA" if not cuda else "no tinygemm op in this torch")
            )
    compile_ = options.compile
    if compile_ is None:
        compile_ = cuda and _triton_available()
        if cuda and not compile_:
            notes.append("no per-layer torch.compile: Triton is not importable")
    graph = options.graph if options.graph is not None else cuda
    dtype = options.dtype if cuda or kernel.startswith("int4-tinygemm") else "float32"
    return replace(options, kernel=kernel, compile=compile_, graph=graph, dtype=dtype)


def _triton_available() -> bool:
    try:
        importlib.import_module("triton")
    except Exception:
        return False
    return True


def path_name(kernel: str, compiled: bool, graph: bool) -> str:
    base = {
        "dense": "bf16",
        "int4-tinygemm": "int4-tinygemm",
        "int4-tinygemm-cpu": "int4-tinygemm-cpu",
        "int4-reference": "int4-reference",
    }[kernel]
    return base + ("+compile" if compiled else "") + ("+cudagraph" if graph else "")


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30))


def _tinygemm_check(options: DecodeOptions, device: torch.device, kernel: str) -> float:
    """Relative error of one int4 matmul through the kernel (k split in two) against dequantize + matmul."""
    gen = torch.Generator(device=device).manual_seed(1234)
    n, k = 256, 1024
    w = torch.randn(n, k, device=device, generator=gen)
    packed, scale, zero = quantize_int4(w)
    parts = 2
    lin = _make_linear(kernel, [(packed, scale, zero)], options, (n // 8) * parts, torch.bfloat16)
    x = torch.randn(3, k, device=device, generator=gen).to(torch.bfloat16)
    got = linear_forward(kernel, x, lin.tensors, lin.n, lin.parts)
    ref = x.float() @ dequantize_int4(packed, scale, zero).T
    return _relative(got, ref)


def llm_bench(
    shape: ModelShape,
    quant: str,
    device: torch.device,
    work_dir: Path,
    options: DecodeOptions = DecodeOptions(),
    tokens: int = 128,
    prompt_tokens: int = 16,
    seed: int = 0,
    checkpoint: Path | None = None,
    sm_count: int = 0,
) -> LlmResult:
    """Synthesize (unless `checkpoint`), load, and decode `tokens` greedy tokens at batch 1."""
    notes: list[str] = []
    opts = select_options(options, quant, device, notes)
    synth_s = None
    if checkpoint is None:
        started = time.perf_counter()
        checkpoint = synthesize_checkpoint(work_dir / f"{shape.name}-{quant}", shape, quant, seed, device)
        _sync(device)
        synth_s = time.perf_counter() - started
    files = [checkpoint] if checkpoint.is_file() else sorted(checkpoint.glob("*.safetensors"))
    size = sum(f.stat().st_size for f in files)

    kernel_check = _tinygemm_check(opts, device, opts.kernel) if opts.kernel.startswith("int4-tinygemm") else None
    started = time.perf_counter()
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        tensors.update(iter_safetensors(f, device))
    _sync(device)
    read_s = time.perf_counter() - started
    model = build_model(shape, tensors, quant, opts, device, sm_count)
    del tensors
    _sync(device)
    load_s = time.perf_counter() - started
    max_len = -(-(prompt_tokens + tokens + 8) // 32) * 32
    result = decode_bench(model, device, tokens, prompt_tokens, max_len, seed, notes)
    return LlmResult(
        shape=shape.name,
        quant=quant,
        path=result["path"],
        tokens_per_s=result["tokens_per_s"],
        ttft_ms=result["ttft_ms"],
        bytes_per_token=bytes_per_token(shape, quant, max_len),
        load_s=load_s,
        load_detail={"read_s": read_s, "repack_s": load_s - read_s, "file_bytes": float(size)},
        synth_s=synth_s,
        consistency=result["consistency"],
        kernel_check=kernel_check,
        options=asdict(model.options),
        notes=notes,
        layer_linears=model.layer_linears,
        tokens=tokens,
        kv_len=max_len,
        checkpoint_bytes=size,
        prepare_s=result["prepare_s"],
        rounds_tokens_per_s=result["rounds_tokens_per_s"],
    )


def prepare_fast_path(dec: Decoder, device: torch.device, first: int, pos: int, notes: list[str]) -> str:
    """Compile the layers and capture a step as the options say, falling back (with a note) on failure."""
    model = dec.model
    compiled = graphed = False
    if model.options.compile:
        try:
            dec.compile()
            dec.reset(first, pos)
            dec.step()
            compiled = True
        except Exception as error:
            notes.append(f"torch.compile failed, eager layers: {_one_line(error)}")
            dec.fast_fn = dec.layer_fn
    if model.options.graph and device.type == "cuda":
        try:
            dec.capture(first, pos)
            graphed = True
        except Exception as error:
            notes.append(f"CUDA graph capture failed, step by step: {_one_line(error)}")
            dec.graph = None
    return path_name(model.kernel, compiled, graphed)


def decode_bench(
    model: LoadedModel,
    device: torch.device,
    tokens: int,
    prompt_tokens: int,
    max_len: int,
    seed: int,
    notes: list[str],
    rounds: int = 3,
) -> dict[str, Any]:
    """Prefill a seeded prompt (eager), check the fast path against eager on the same step, then time
    `rounds` runs of `tokens` greedy steps from the prompt's end; the median run counts."""
    dec = Decoder(model, max_len, device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    prompt = torch.randint(0, model.shape.vocab, (prompt_tokens,), generator=gen).to(device)
    positions = torch.arange(prompt_tokens, device=device)
    with torch.no_grad():
        dec.forward(prompt, positions)  # warm-up: kernels, handles
        _sync(device)
        started = time.perf_counter()
        first = int(dec.forward(prompt, positions).argmax(-1).item())
        ttft = time.perf_counter() - started
        at = torch.tensor([prompt_tokens], device=device)
        ref = dec.forward(torch.tensor([first], device=device), at).float().clone()
        started = time.perf_counter()
        path = prepare_fast_path(dec, device, first, prompt_tokens, notes)
        _sync(device)
        prepare_s = time.perf_counter() - started
        dec.reset(first, prompt_tokens)
        fast = dec.run_step().float().clone()
        consistency = _relative(fast, ref)
        runs = []
        for _ in range(rounds):
            dec.reset(first, prompt_tokens)
            _sync(device)
            runs.append(_timed_steps(dec, device, tokens))
    seconds = statistics.median(runs)
    return {
        "path": path,
        "tokens_per_s": tokens / seconds,
        "ttft_ms": ttft * 1e3,
        "consistency": consistency,
        "prepare_s": prepare_s,
        "rounds_tokens_per_s": [tokens / r for r in runs],
    }


def _timed_steps(dec: Decoder, device: torch.device, steps: int) -> float:
    if device.type != "cuda":
        started = time.perf_counter()
        for _ in range(steps):
            dec.run_step()
        return time.perf_counter() - started
    start, end = _cuda_event(timing=True), _cuda_event(timing=True)
    start.record()
    for _ in range(steps):
        dec.run_step()
    end.record()
    end.synchronize()
    return float(start.elapsed_time(end)) / 1e3


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of the values at or below it."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def load_model(
    shape: ModelShape,
    quant: str,
    device: torch.device,
    work_dir: Path,
    options: DecodeOptions,
    seed: int,
    sm_count: int,
    notes: list[str],
) -> LoadedModel:
    opts = select_options(options, quant, device, notes)
    path = synthesize_checkpoint(work_dir / f"{shape.name}-{quant}", shape, quant, seed, device)
    tensors = load_safetensors(path, device)
    return build_model(shape, tensors, quant, opts, device, sm_count)


def latency_bench(
    shape: ModelShape,
    quant: str,
    device: torch.device,
    work_dir: Path,
    options: DecodeOptions = DecodeOptions(),
    prompt_tokens: int = 256,
    decode_tokens: int = 7,
    steps: int = 30,
    seed: int = 0,
    sm_count: int = 0,
) -> dict[str, Any]:
    """A synthesized inference step (prefill `prompt_tokens`, then decode `decode_tokens`), `steps` times."""
    notes: list[str] = []
    model = load_model(shape, quant, device, work_dir, options, seed, sm_count, notes)
    max_len = -(-(prompt_tokens + decode_tokens + 8) // 32) * 32
    dec = Decoder(model, max_len, device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    prompt = torch.randint(0, shape.vocab, (prompt_tokens,), generator=gen).to(device)
    positions = torch.arange(prompt_tokens, device=device)
    times: list[float] = []
    with torch.no_grad():
        first = int(dec.forward(prompt, positions).argmax(-1).item())
        path = prepare_fast_path(dec, device, first, prompt_tokens, notes)
        for i in range(steps + 3):
            _sync(device)
            started = time.perf_counter()
            token = dec.forward(prompt, positions).argmax(-1)
            dec.token.copy_(token)
            dec.pos.fill_(prompt_tokens)
            for _ in range(decode_tokens - 1):
                dec.run_step()
            _sync(device)
            if i >= 3:  # the first steps warm up
                times.append(time.perf_counter() - started)
    return {
        "p50_ms": percentile(times, 50) * 1e3,
        "p95_ms": percentile(times, 95) * 1e3,
        "hz": len(times) / sum(times),
        "path": path,
        "notes": notes,
        "step": f"{shape.name} {quant}: prefill {prompt_tokens} tokens, decode {decode_tokens}, {steps} steps after 3 warm-up",
    }


def _proc_status_kib(key: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{key}:\s*(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _nvml_process_bytes(index: int) -> int | None:
    try:
        pynvml: Any = importlib.import_module("pynvml")
        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
            used = [p.usedGpuMemory for p in procs if p.pid == os.getpid() and p.usedGpuMemory]
            return int(used[0]) if used else None
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return None


def reset_peak_memory(device: torch.device) -> None:
    """Forget peaks so far: torch's peak statistics and, on Linux, the process's VmHWM (clear_refs 5)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory(device: torch.device | None, unified: bool) -> tuple[float, str, dict[str, Any]]:
    """Peak memory of this process in GB: torch's peak reservation and NVML on a discrete GPU; on unified
    memory (Jetson) the resident high-water mark plus torch's peak reservation, which RSS does not count."""
    hwm_kib = _proc_status_kib("VmHWM")
    reserved = torch.cuda.max_memory_reserved(device) if device is not None and device.type == "cuda" else 0
    details: dict[str, Any] = {"torch_max_reserved_bytes": reserved, "vm_hwm_bytes": (hwm_kib or 0) * 1024}
    if device is None or device.type != "cuda":
        return (hwm_kib or 0) * 1024 / GB, "the process's resident high-water mark (VmHWM)", details
    if unified:
        total = (hwm_kib or 0) * 1024 + reserved
        return total / GB, "VmHWM + torch.cuda.max_memory_reserved (unified memory; an upper bound)", details
    nvml = _nvml_process_bytes(device.index or 0)
    details["nvml_process_bytes"] = nvml
    if nvml is not None and nvml > reserved:
        return nvml / GB, "NVML: this process's GPU memory (CUDA context included)", details
    return reserved / GB, "torch.cuda.max_memory_reserved", details


# ---------------------------------------------------------------------------------------- ASR


@dataclass(frozen=True)
class WhisperShape:
    name: str
    n_mels: int
    d_model: int
    encoder_layers: int
    encoder_heads: int
    decoder_layers: int
    decoder_heads: int
    vocab: int


WHISPER_SHAPES: dict[str, WhisperShape] = {
    s.name: s
    for s in (
        WhisperShape("whisper-tiny", 80, 384, 4, 6, 4, 6, 51865),
        WhisperShape("whisper-base", 80, 512, 6, 8, 6, 8, 51865),
        WhisperShape("whisper-small", 80, 768, 12, 12, 12, 12, 51865),
        WhisperShape("whisper-medium", 80, 1024, 24, 16, 24, 16, 51865),
        WhisperShape("large-v3", 128, 1280, 32, 20, 32, 20, 51866),
        WhisperShape("large-v3-turbo", 128, 1280, 32, 20, 4, 20, 51866),
        WhisperShape("distil-large-v3", 128, 1280, 32, 20, 2, 20, 51866),
    )
}
DEFAULT_WHISPER = "large-v3-turbo"


def find_whisper_shape(text: str) -> WhisperShape | None:
    low = text.lower()
    for name in sorted(WHISPER_SHAPES, key=len, reverse=True):
        if name in low or name.removeprefix("whisper-") in low.split():
            return WHISPER_SHAPES[name]
    return None


def whisper_vocabulary(vocab: int) -> list[str]:
    """Whisper's token layout: 50257 text tokens, then the special tokens, languages and timestamps."""
    languages = 100 if vocab >= 51866 else 99
    specials = ["<|endoftext|>", "<|startoftranscript|>"] + [f"<|l{i}|>" for i in range(languages)]
    specials[2] = "<|en|>"
    specials += [
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
    ]
    tokens = [f"w{i}" for i in range(50257)] + specials
    tokens += [f"<|{i * 0.02:.2f}|>" for i in range(vocab - len(tokens))]
    return tokens[:vocab]


def build_whisper_dir(directory: Path, shape: WhisperShape, seed: int) -> None:
    """A CTranslate2 Whisper model of `shape` with seeded random weights, plus tokenizer and features config."""
    ct2: Any = importlib.import_module("ctranslate2")
    tokenizers: Any = importlib.import_module("tokenizers")
    spec = ct2.specs.WhisperSpec(shape.encoder_layers, shape.encoder_heads, shape.decoder_layers, shape.decoder_heads)
    d, ffn = shape.d_model, 4 * shape.d_model
    gen = torch.Generator().manual_seed(seed)

    def rand(*dims: int) -> torch.Tensor:
        values: torch.Tensor = torch.randn(dims, generator=gen)
        return (values / math.sqrt(dims[-1])).to(torch.float16)

    def ones(n: int) -> torch.Tensor:
        return torch.ones(n, dtype=torch.float16)

    def zeros(n: int) -> torch.Tensor:
        return torch.zeros(n, dtype=torch.float16)

    def norm(ln: Any) -> None:
        ln.gamma, ln.beta = ones(d), zeros(d)

    def lin(spec_: Any, n: int, k: int) -> None:
        spec_.weight, spec_.bias = rand(n, k), zeros(n)

    def ffn_block(f: Any) -> None:
        norm(f.layer_norm)
        lin(f.linear_0, ffn, d)
        lin(f.linear_1, d, ffn)

    enc = spec.encoder
    enc.conv1.weight, enc.conv1.bias = rand(d, shape.n_mels, 3), zeros(d)
    enc.conv2.weight, enc.conv2.bias = rand(d, d, 3), zeros(d)
    enc.position_encodings.encodings = rand(1500, d)
    norm(enc.layer_norm)
    for layer in enc.layer:
        norm(layer.self_attention.layer_norm)
        lin(layer.self_attention.linear[0], 3 * d, d)
        lin(layer.self_attention.linear[1], d, d)
        ffn_block(layer.ffn)
    dec = spec.decoder
    dec.embeddings.weight = rand(shape.vocab, d)
    dec.position_encodings.encodings = rand(448, d)
    norm(dec.layer_norm)
    for layer in dec.layer:
        norm(layer.self_attention.layer_norm)
        lin(layer.self_attention.linear[0], 3 * d, d)
        lin(layer.self_attention.linear[1], d, d)
        norm(layer.attention.layer_norm)
        lin(layer.attention.linear[0], d, d)
        lin(layer.attention.linear[1], 2 * d, d)
        lin(layer.attention.linear[2], d, d)
        ffn_block(layer.ffn)
    dec.projection.weight = dec.embeddings.weight
    tokens = whisper_vocabulary(shape.vocab)
    spec.register_vocabulary(tokens)
    spec.config.suppress_ids = []
    spec.config.suppress_ids_begin = []
    spec.config.lang_ids = [tokens.index("<|en|>")]
    spec.config.alignment_heads = [(shape.decoder_layers - 1, 0)]
    directory.mkdir(parents=True, exist_ok=True)
    spec.validate()
    spec.optimize(quantization="float16")
    spec.save(str(directory))
    model = tokenizers.models.WordLevel(vocab={t: i for i, t in enumerate(tokens)}, unk_token="<|endoftext|>")
    tok = tokenizers.Tokenizer(model)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tok.save(str(directory / "tokenizer.json"))
    features = {
        "feature_size": shape.n_mels,
        "sampling_rate": 16000,
        "hop_length": 160,
        "chunk_length": 30,
        "n_fft": 400,
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(features))


def synth_audio(seconds: float, seed: int, rate: int = 16000) -> torch.Tensor:
    """Speech-like test audio: gliding harmonics with a syllable-rate envelope and a little noise."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    pitch = 140 + 30 * torch.sin(2 * math.pi * 0.3 * t)
    phase = 2 * math.pi * torch.cumsum(pitch, 0) / rate
    voice = sum(torch.sin(h * phase) / h for h in range(1, 6))
    envelope = 0.5 * (1 + torch.sin(2 * math.pi * 4 * t)).clamp_min(0)
    audio = 0.3 * voice * envelope + 0.01 * torch.randn(t.shape, generator=gen, dtype=torch.float64)
    return audio.float()


def asr_bench(
    shape: WhisperShape, compute_type: str, device: torch.device, work_dir: Path, audio_s: float = 60.0,
    beam_size: int = 5, tokens_per_window: int = 100, seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Real-time factor of faster-whisper on a synthesized Whisper-shaped model: seconds per second of audio.

    The end-of-text token is suppressed and each 30 s window may decode up to `tokens_per_window` new
    tokens (about what speech yields), so random weights decode about as much text as a real model
    would; the report gives the count decoded."""
    fw: Any = importlib.import_module("faster_whisper")
    directory = work_dir / f"whisper-{shape.name}"
    started = time.perf_counter()
    build_whisper_dir(directory, shape, seed)
    synth_s = time.perf_counter() - started
    started = time.perf_counter()
    model = fw.WhisperModel(
        str(directory), device="cuda" if device.type == "cuda" else "cpu", compute_type=compute_type
    )
    load_s = time.perf_counter() - started
    eot = whisper_vocabulary(shape.vocab).index("<|endoftext|>")
    options = {
        "language": "en", "task": "transcribe", "beam_size": beam_size, "temperature": 0.0,
        "without_timestamps": True, "condition_on_previous_text": False, "vad_filter": False,
        "suppress_tokens": [eot], "suppress_blank": False, "max_new_tokens": tokens_per_window,
        "compression_ratio_threshold": None, "log_prob_threshold": None, "no_speech_threshold": None,
    }  # fmt: skip
    warm, _ = model.transcribe(synth_audio(2.0, seed).numpy(), **options)
    list(warm)
    audio = synth_audio(audio_s, seed + 1).numpy()
    started = time.perf_counter()
    segments, _ = model.transcribe(audio, **options)
    decoded = sum(len(s.tokens) for s in segments)
    seconds = time.perf_counter() - started
    return {
        "rtf": seconds / audio_s,
        "seconds": seconds,
        "audio_s": audio_s,
        "tokens": decoded,
        "load_s": load_s,
        "synth_s": synth_s,
        "how": f"faster-whisper {getattr(fw, '__version__', '?')} on a synthesized {shape.name} ({compute_type}), "
        f"{audio_s:g} s of generated audio, beam {beam_size}, at most {tokens_per_window} new tokens per 30 s window "
        f"with end-of-text suppressed: {decoded} tokens decoded",
    }


# ------------------------------------------------------------------------- real checkpoints

AWQ_REVERSE_ORDER = (0, 4, 1, 5, 2, 6, 3, 7)  # AutoAWQ packs columns 0,2,4,6,1,3,5,7 into nibbles 0..7


def awq_unpack(packed: torch.Tensor) -> torch.Tensor:
    """int32 [r, c/8] in AWQ's nibble order -> int32 [r, c] values 0..15."""
    shifts = torch.arange(0, 32, 4, device=packed.device, dtype=torch.int32)
    values = (packed.unsqueeze(-1) >> shifts) & 0xF
    return values[..., list(AWQ_REVERSE_ORDER)].reshape(packed.shape[0], -1)


def awq_to_int4(
    qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AWQ GEMM tensors (w = (q - z) * s, [k, n] layout) -> this runner's (packed, scale, zero) per output row."""
    q = awq_unpack(qweight).T.contiguous().to(torch.uint8)  # [n, k]
    z = awq_unpack(qzeros).float().T  # [n, k/g]
    s = scales.float().T
    packed = ((q[:, 0::2] << 4) | q[:, 1::2]).contiguous()
    return packed, s.to(torch.bfloat16).contiguous(), ((8 - z) * s).to(torch.bfloat16).contiguous()


def read_checkpoint_dir(directory: Path, device: torch.device) -> tuple[ModelShape, str, dict[str, torch.Tensor], str]:
    """(shape, quant, tensors in this runner's names, format) of a Hugging Face checkpoint directory.

    Reads this runner's int4 layout, AWQ GEMM int4 with group 128, or dense bf16/fp16 weights of the
    Llama / Qwen layout; raises ValueError saying why not otherwise."""
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{directory} has no config.json")
    config = json.loads(config_path.read_text())
    shape = shape_from_config(config, directory.name)
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise ValueError(f"{directory} holds no .safetensors files")
    names = {n for f in files for n in read_safetensors_header(f)[0] if n != "__metadata__"}
    if "model.embed_tokens.weight" not in names or not any(
        n.startswith("model.layers.0.self_attn.q_proj") for n in names
    ):
        raise ValueError(
            "tensor names do not fit the Llama / Qwen layout (model.embed_tokens, model.layers.N.self_attn.q_proj)"
        )
    quant_config = config.get("quantization_config") or {}
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        tensors.update(iter_safetensors(f, device))
    if any(n.endswith(".weight_packed") for n in names):
        return shape, "int4", tensors, "builder-int4"
    if any(n.endswith(".qweight") for n in names):
        method = str(quant_config.get("quant_method", "?")).lower()
        version = str(quant_config.get("version", "gemm")).lower()
        group = int(quant_config.get("group_size", 0) or quant_config.get("q_group_size", 0))
        bits = int(quant_config.get("bits", 0) or quant_config.get("w_bit", 0))
        if method != "awq" or version != "gemm" or group != GROUP_SIZE or bits != 4:
            raise ValueError(
                f"{method} {version} {bits}-bit group {group}: the reference path reads AWQ GEMM 4-bit group 128 only"
            )
        for name in [n for n in names if n.endswith(".qweight")]:
            prefix = name.removesuffix(".qweight")
            packed, scale, zero = awq_to_int4(
                tensors.pop(name), tensors.pop(prefix + ".qzeros"), tensors.pop(prefix + ".scales")
            )
            tensors[prefix + ".weight_packed"], tensors[prefix + ".weight_scale"], tensors[prefix + ".weight_zero"] = (
                packed,
                scale,
                zero,
            )
        if "lm_head.weight" in tensors:  # AWQ keeps the head in 16 bits: quantize it like the rest
            tensors["lm_head.weight_packed"], tensors["lm_head.weight_scale"], tensors["lm_head.weight_zero"] = (
                quantize_int4(tensors.pop("lm_head.weight"))
            )
        elif shape.tie_embeddings:
            parts = quantize_int4(tensors["model.embed_tokens.weight"])
            tensors["lm_head.weight_packed"], tensors["lm_head.weight_scale"], tensors["lm_head.weight_zero"] = parts
        return shape, "int4", tensors, "awq-gemm"
    return shape, "bf16", tensors, "dense"


def checkpoint_bench(
    directory: Path,
    device: torch.device,
    options: DecodeOptions,
    tokens: int,
    prompt_tokens: int,
    seed: int,
    sm_count: int,
) -> LlmResult:
    """Load a real checkpoint through the reference loader and decode, as for a synthesized one."""
    notes: list[str] = []
    started = time.perf_counter()
    shape, quant, tensors, fmt = read_checkpoint_dir(directory, device)
    _sync(device)
    read_s = time.perf_counter() - started
    opts = select_options(options, quant, device, notes)
    notes.append(f"checkpoint format: {fmt}")
    model = build_model(shape, tensors, quant, opts, device, sm_count)
    _sync(device)
    load_s = time.perf_counter() - started
    max_len = -(-(prompt_tokens + tokens + 8) // 32) * 32
    result = decode_bench(model, device, tokens, prompt_tokens, max_len, seed, notes)
    size = sum(f.stat().st_size for f in directory.glob("*.safetensors"))
    return LlmResult(
        shape=shape.name, quant=quant, path=result["path"], tokens_per_s=result["tokens_per_s"], ttft_ms=result["ttft_ms"],
        bytes_per_token=bytes_per_token(shape, quant, max_len), load_s=load_s,
        load_detail={"read_s": read_s, "repack_s": load_s - read_s, "file_bytes": float(size)}, synth_s=None,
        consistency=result["consistency"], kernel_check=None, options=asdict(model.options), notes=notes,
        layer_linears=model.layer_linears, tokens=tokens, kv_len=max_len, checkpoint_bytes=size,
        prepare_s=result["prepare_s"], rounds_tokens_per_s=result["rounds_tokens_per_s"],
    )  # fmt: skip


def vllm_bench(directory: Path, tokens: int, prompt_tokens: int, seed: int) -> dict[str, Any]:
    """Decode through vLLM at batch 1: time to the first token, then (tokens - 1) / (t(tokens) - t(1))."""
    vllm: Any = importlib.import_module("vllm")
    config = json.loads((directory / "config.json").read_text())
    started = time.perf_counter()
    llm = vllm.LLM(
        model=str(directory), max_model_len=prompt_tokens + tokens + 16, max_num_seqs=1, seed=seed,
        gpu_memory_utilization=float(os.environ.get("GPU_MEMORY_UTILIZATION", "0.85")),
    )  # fmt: skip
    load_s = time.perf_counter() - started
    gen = torch.Generator().manual_seed(seed)
    prompt = {"prompt_token_ids": torch.randint(0, int(config["vocab_size"]), (prompt_tokens,), generator=gen).tolist()}
    one = vllm.SamplingParams(max_tokens=1, temperature=0.0, ignore_eos=True)
    many = vllm.SamplingParams(max_tokens=tokens, temperature=0.0, ignore_eos=True)
    llm.generate([prompt], one, use_tqdm=False)
    started = time.perf_counter()
    llm.generate([prompt], one, use_tqdm=False)
    first = time.perf_counter() - started
    started = time.perf_counter()
    llm.generate([prompt], many, use_tqdm=False)
    total = time.perf_counter() - started
    size = sum(f.stat().st_size for f in directory.glob("*.safetensors"))
    embed = int(config["vocab_size"]) * int(config["hidden_size"]) * 2
    return {
        "tokens_per_s": (tokens - 1) / max(total - first, 1e-9),
        "ttft_ms": first * 1e3,
        "load_s": load_s,
        "bytes_per_token": size - (0 if config.get("tie_word_embeddings") else embed),
        "how": f"vLLM {getattr(vllm, '__version__', '?')}, batch 1, greedy, {tokens} tokens after a {prompt_tokens}-token prompt",
    }


# ------------------------------------------------------------------------------- spec and device


class SpecError(ValueError):
    """The spec or the command line is not usable."""


@dataclass(frozen=True)
class PowerModeProfile:
    name: str
    memory_bandwidth_gbps: float


@dataclass(frozen=True)
class DeviceProfile:
    id: str
    kind: str
    compute_capability: str
    memory_gb: float
    unified_memory: bool
    power_modes: tuple[PowerModeProfile, ...]
    default_power_mode: str

    def bandwidth(self, mode: str | None) -> float | None:
        for m in self.power_modes:
            if m.name == mode:
                return m.memory_bandwidth_gbps
        return None


@dataclass(frozen=True)
class StackCheck:
    name: str
    metric: str
    min: float | None = None
    max: float | None = None
    model: str | None = None
    roofline_min: float | None = None  # this check's floor on the roofline fraction (else the path's default)


@dataclass
class Spec:
    stack: str | None = None
    target: str | None = None
    image: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    imports: list[str] = field(default_factory=list)
    device: DeviceProfile | None = None
    power_mode: str | None = None
    checks: list[StackCheck] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)
    llm: dict[str, Any] = field(default_factory=dict)
    asr: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    roofline_min: dict[str, float] = field(default_factory=dict)
    memory_tolerance: float = 0.05
    bandwidth_tolerance: float = 0.15
    seed: int = 0


def _dict(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise SpecError(f"spec: '{key}' must be an object")
    return value


def parse_device(data: Mapping[str, Any]) -> DeviceProfile:
    try:
        modes = tuple(PowerModeProfile(str(m["name"]), float(m["memory_bandwidth_gbps"])) for m in data["power_modes"])
        profile = DeviceProfile(
            id=str(data.get("id", "device")),
            kind=str(data.get("kind", "discrete")),
            compute_capability=str(data["compute_capability"]),
            memory_gb=float(data["memory_gb"]),
            unified_memory=bool(data.get("unified_memory", data.get("kind") == "jetson")),
            power_modes=modes,
            default_power_mode=str(data.get("default_power_mode") or modes[0].name),
        )
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise SpecError(f"spec: device profile: {_one_line(error)}") from None
    if profile.bandwidth(profile.default_power_mode) is None:
        raise SpecError(f"spec: device default_power_mode {profile.default_power_mode} is not among its power_modes")
    return profile


def parse_spec(data: Mapping[str, Any]) -> Spec:
    if not isinstance(data, dict):
        raise SpecError("spec: the top level must be an object")
    checks = []
    for i, c in enumerate(data.get("checks") or []):
        if not isinstance(c, dict) or "name" not in c or "metric" not in c:
            raise SpecError(f"spec: checks[{i}] needs a name and a metric")
        if c["metric"] not in METRICS:
            raise SpecError(f"spec: checks[{i}]: unknown metric {c['metric']} (known: {', '.join(METRICS)})")
        lo, hi = c.get("min"), c.get("max")
        checks.append(
            StackCheck(
                str(c["name"]),
                str(c["metric"]),
                None if lo is None else float(lo),
                None if hi is None else float(hi),
                c.get("model"),
                None if c.get("roofline_min") is None else float(c["roofline_min"]),
            )
        )
    tolerances = _dict(data, "tolerances")
    imports = data.get("imports") or []
    if not isinstance(imports, list):
        raise SpecError("spec: 'imports' must be a list of module names")
    return Spec(
        stack=data.get("stack"),
        target=data.get("target"),
        image=data.get("image"),
        versions={str(k): str(v) for k, v in _dict(data, "versions").items()},
        imports=[str(m) for m in imports],
        device=parse_device(data["device"]) if data.get("device") else None,
        power_mode=data.get("power_mode"),
        checks=checks,
        models={str(k): str(v) for k, v in _dict(data, "models").items()},
        llm=_dict(data, "llm"),
        asr=_dict(data, "asr"),
        latency=_dict(data, "latency"),
        roofline_min={str(k): float(v) for k, v in _dict(data, "roofline_min").items()},
        memory_tolerance=float(tolerances.get("memory", 0.05)),
        bandwidth_tolerance=float(tolerances.get("bandwidth", 0.15)),
        seed=int(data.get("seed", 0)),
    )


@dataclass(frozen=True)
class GpuInfo:
    name: str
    capability: str
    total_bytes: int
    sm_count: int
    integrated: bool


def detect_gpu() -> GpuInfo | None:
    if torch is None or not torch.cuda.is_available():
        return None
    p = torch.cuda.get_device_properties(0)
    return GpuInfo(
        p.name,
        f"{p.major}.{p.minor}",
        int(p.total_memory),
        int(p.multi_processor_count),
        bool(getattr(p, "is_integrated", False)),
    )


def active_power_mode(profile: DeviceProfile | None) -> tuple[str | None, str]:
    """The active power mode and how it was read: `nvpmodel -q` on a Jetson, else the profile's only mode."""
    exe = shutil.which("nvpmodel")
    if exe is not None or (profile is not None and profile.kind == "jetson"):
        if exe is None:
            return None, "nvpmodel is not on PATH"
        try:
            done = subprocess.run([exe, "-q"], capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError) as error:
            return None, f"nvpmodel -q failed: {_one_line(error)}"
        mode = parse_nvpmodel(done.stdout + "\n" + done.stderr)
        if mode is None:
            return None, f"nvpmodel -q printed no 'NV Power Mode' line (exit {done.returncode})"
        return mode, "nvpmodel -q"
    if profile is not None:
        return profile.default_power_mode, "no nvpmodel (a discrete GPU): the profile's default mode"
    return None, "no device profile in the spec"


def gpu_checks(profile: DeviceProfile | None, gpu: GpuInfo, tolerance: float) -> list[Check]:
    if profile is None:
        reason = "no device profile in the spec"
        return [
            not_run("gpu:compute-capability", reason, value=gpu.capability),
            not_run("gpu:memory", reason, value=gpu.total_bytes / GB, unit="GB"),
        ]
    cc = Check(
        "gpu:compute-capability", PASS if gpu.capability == profile.compute_capability else FAIL, gpu.capability,
        threshold=f"== {profile.compute_capability}", how=f"torch.cuda.get_device_properties(0) of {gpu.name}",
    )  # fmt: skip
    ok, text = memory_matches(gpu.total_bytes, profile.memory_gb, tolerance)
    mem = Check(
        "gpu:memory", PASS if ok else FAIL, round(gpu.total_bytes / GB, 3), "GB", f"within {tolerance:.0%} of {profile.memory_gb:g} (GB or GiB)",
        how=f"total_memory {gpu.total_bytes} bytes: {text}",
    )  # fmt: skip
    return [cc, mem]


def power_mode_check(required: str | None, active: str | None, how: str) -> Check:
    if required is None:
        if active is None:
            return not_run("power-mode", how)
        return Check("power-mode", PASS, active, how=how)
    if active is None:
        return Check(
            "power-mode",
            FAIL,
            None,
            threshold=f"== {required}",
            how=how,
            reason=f"required {required}; the active mode could not be read: {how}",
        )
    if active != required:
        return Check(
            "power-mode",
            FAIL,
            active,
            threshold=f"== {required}",
            how=how,
            reason=f"required {required}, active {active}",
        )
    return Check("power-mode", PASS, active, threshold=f"== {required}", how=how)


def bandwidth_check(
    measured: dict[str, Any], profile: DeviceProfile | None, mode: str | None, tolerance: float
) -> Check:
    how = f"torch.sum over {measured['buffer_bytes'] / GIB:.2f} GiB float32 (read only), CUDA events, median of {measured['iterations']}"
    value = measured["gbps"]
    if profile is None:
        return not_run(
            "memory-bandwidth", "no device profile in the spec", value=value, unit="GB/s", how=how, details=measured
        )
    expected = profile.bandwidth(mode)
    if expected is None:
        reason = (
            f"the active power mode {mode!r} is not in the profile ({', '.join(m.name for m in profile.power_modes)})"
        )
        return Check("memory-bandwidth", FAIL, value, "GB/s", how=how, reason=reason, details=measured)
    status = PASS if within(value, expected, tolerance) else FAIL
    details = {**measured, "profile_gbps": expected, "power_mode": mode, "ratio": value / expected}
    return Check(
        "memory-bandwidth",
        status,
        value,
        "GB/s",
        f"within {tolerance:.0%} of {expected:g} ({mode})",
        how=how,
        details=details,
    )


# ------------------------------------------------------------------------------ orchestration


@dataclass(frozen=True)
class LlmTarget:
    label: str
    shape: str | None = None
    quant: str | None = None
    directory: str | None = None


@dataclass
class Context:
    spec: Spec
    device: torch.device | None
    gpu: GpuInfo | None
    bandwidth_gbps: float | None
    work_dir: Path
    options: DecodeOptions
    tokens: int = 128
    prompt_tokens: int = 16
    extra_llm: list[LlmTarget] = field(default_factory=list)
    no_device_reason: str = "no GPU"
    cache: dict[Any, Any] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)
    log: Callable[[str], None] = lambda message: None


def resolve_llm_target(text: str | None, spec: Spec) -> LlmTarget | str:
    """Which model a check measures: a checkpoint from `models` named in its text, else a synthesized shape."""
    low = (text or "").lower()
    for name, directory in spec.models.items():
        if name.lower() in low:
            return LlmTarget(f"model:{name}", directory=directory)
    if len(spec.models) == 1 and not spec.llm.get("shape"):
        name, directory = next(iter(spec.models.items()))
        return LlmTarget(f"model:{name}", directory=directory)
    shape_name = spec.llm.get("shape")
    shape = SHAPES.get(str(shape_name)) if shape_name else find_shape(low)
    if shape is None:
        return f"no known model shape in {text!r} (known: {', '.join(SHAPES)}); set llm.shape in the spec"
    quant = str(spec.llm.get("quant") or quant_from_text(low))
    if quant not in ("int4", "bf16"):
        return f"unknown quantization {quant!r} (int4 or bf16)"
    return LlmTarget(f"{shape.name}-{quant}", shape.name, quant)


def _free(device: torch.device | None) -> None:
    import gc

    gc.collect()
    if device is not None and device.type == "cuda":
        torch.cuda.empty_cache()


def run_llm_target(ctx: Context, target: LlmTarget) -> LlmResult | dict[str, Any] | str:
    if target in ctx.cache:
        cached: LlmResult | dict[str, Any] | str = ctx.cache[target]
        return cached
    assert ctx.device is not None
    seed = int(ctx.spec.llm.get("seed", ctx.spec.seed))
    tokens = int(ctx.spec.llm.get("tokens", ctx.tokens))
    prompt = int(ctx.spec.llm.get("prompt_tokens", ctx.prompt_tokens))
    sm = ctx.gpu.sm_count if ctx.gpu else 0
    work = Path(tempfile.mkdtemp(prefix="llm-", dir=ctx.work_dir))
    ctx.log(f"llm {target.label}: start")
    result: LlmResult | dict[str, Any] | str
    try:
        if target.directory is not None:
            directory = Path(target.directory)
            vllm_error = _import_error("vllm")
            if vllm_error is None:
                result = vllm_bench(directory, tokens, prompt, seed)
            else:
                try:
                    result = checkpoint_bench(directory, ctx.device, ctx.options, tokens, prompt, seed, sm)
                except ValueError as error:
                    result = (
                        f"vLLM is not importable ({vllm_error}) and the reference path cannot read {directory}: {error}"
                    )
        else:
            assert target.shape is not None and target.quant is not None
            result = llm_bench(
                SHAPES[target.shape], target.quant, ctx.device, work, ctx.options, tokens, prompt, seed, sm_count=sm
            )
    except Exception as error:
        result = f"failed: {_one_line(error)}"
        ctx.log(traceback.format_exc())
    finally:
        shutil.rmtree(work, ignore_errors=True)
        _free(ctx.device)
    ctx.log(f"llm {target.label}: {result if isinstance(result, str) else 'done'}")
    ctx.cache[target] = result
    return result


def _import_error(module: str) -> str | None:
    try:
        importlib.import_module(module)
    except BaseException as error:
        return _one_line(error)
    return None


def llm_details(ctx: Context, r: LlmResult) -> dict[str, Any]:
    total = r.bytes_per_token["total"]
    details: dict[str, Any] = {
        "model": f"synthesized {r.shape}" if r.synth_s is not None else r.shape,
        "quant": r.quant,
        "tokens_per_s": r.tokens_per_s,
        "tokens": r.tokens,
        "time_to_first_token_ms": r.ttft_ms,
        "bytes_per_token": r.bytes_per_token,
        "gb_per_token": total / GB,
        "kv_cache_positions": r.kv_len,
        "load_s": r.load_s,
        "load": r.load_detail,
        "synthesize_s": r.synth_s,
        "options": r.options,
        "compile_and_capture_s": r.prepare_s,
        "rounds_tokens_per_s": r.rounds_tokens_per_s,
        "linears_per_layer": [{"name": n, "out_features": o, "k_split": p} for n, o, p in r.layer_linears],
        "notes": r.notes,
    }
    if ctx.bandwidth_gbps:
        details["measured_bandwidth_gbps"] = ctx.bandwidth_gbps
        details["roofline_fraction"] = roofline_fraction(r.tokens_per_s, total, ctx.bandwidth_gbps)
        details["roofline_tokens_per_s"] = roofline_tokens_per_s(total, ctx.bandwidth_gbps)
    return details


def llm_checks(ctx: Context, target: LlmTarget, check: StackCheck | None) -> list[Check]:
    """The stack's check on this target, then (once per target) roofline, consistency and kernel checks."""
    metric = check.metric if check else "llm_decode_tokens_per_s"
    name = check.name if check else f"llm-decode:{target.label}"
    minimum, maximum = (check.min, check.max) if check else (None, None)
    result = run_llm_target(ctx, target)
    if isinstance(result, str):
        return [not_run(name, result, unit=UNITS[metric], threshold=threshold_text(minimum, maximum))]
    if isinstance(result, dict):  # vLLM
        value = result["tokens_per_s"] if metric == "llm_decode_tokens_per_s" else result["ttft_ms"]
        out = [gated(name, value, UNITS[metric], minimum, maximum, how=result["how"], path="vllm", details=result)]
        if ctx.bandwidth_gbps and target.label not in ctx.reported:
            ctx.reported.add(target.label)
            fraction = roofline_fraction(result["tokens_per_s"], result["bytes_per_token"], ctx.bandwidth_gbps)
            out.append(gated(f"llm-roofline:{target.label}", fraction, "fraction", None, None, path="vllm",
                             how="tok/s x checkpoint bytes (less the embedding table; approximate) / measured bandwidth"))  # fmt: skip
        return out
    details = llm_details(ctx, result)
    how = (
        f"batch-1 greedy decode of {result.tokens} tokens after a {ctx.prompt_tokens}-token prompt, static KV cache, CUDA events"
        if metric == "llm_decode_tokens_per_s"
        else "eager prefill of the prompt to the first token's logits, host clock after synchronizing"
    )
    value = result.tokens_per_s if metric == "llm_decode_tokens_per_s" else result.ttft_ms
    out = [gated(name, value, UNITS[metric], minimum, maximum, how=how, path=result.path, details=details)]
    if target.label in ctx.reported:
        return out
    ctx.reported.add(target.label)
    if ctx.bandwidth_gbps:
        floor = {**DEFAULT_ROOFLINE_MIN, **ctx.spec.roofline_min}.get(result.path)
        if check is not None and check.roofline_min is not None:
            floor = check.roofline_min
        out.append(gated(
            f"llm-roofline:{target.label}", details["roofline_fraction"], "fraction of measured bandwidth", floor, None,
            how="tok/s x bytes per token / measured read bandwidth" + ("" if floor is not None else " (no floor for this path)"),
            path=result.path, details={k: details[k] for k in ("tokens_per_s", "gb_per_token", "measured_bandwidth_gbps", "roofline_tokens_per_s")},
        ))  # fmt: skip
    else:
        out.append(not_run(f"llm-roofline:{target.label}", "no bandwidth measurement (no GPU)"))
    if result.consistency is not None:
        out.append(gated(
            f"llm-consistency:{target.label}", result.consistency, "relative difference", None, CONSISTENCY_MAX,
            how="logits of one step through the fast path vs the eager layers, same token and position", path=result.path,
        ))  # fmt: skip
    if result.kernel_check is not None:
        out.append(gated(
            f"llm-int4-kernel:{target.label}", result.kernel_check, "relative error", None, 1e-2,
            how="int4 kernel (k split in two) vs dequantize + fp32 matmul, 256 x 1024 weight", path=result.path,
        ))  # fmt: skip
    return out


def _compute_type(text: str, spec: Spec, cuda: bool) -> str:
    if spec.asr.get("compute_type"):
        return str(spec.asr["compute_type"])
    match = re.search(r"\b(int8_float16|int8_bfloat16|int8_float32|int8|float16|bfloat16|float32)\b", text)
    if match:
        return match.group(1)
    return "int8_float16" if cuda else "int8"


def asr_check(ctx: Context, check: StackCheck) -> Check:
    assert ctx.device is not None
    missing = [f"{m}: {e}" for m in ("ctranslate2", "faster_whisper") if (e := _import_error(m)) is not None]
    threshold = threshold_text(check.min, check.max)
    if missing:
        return not_run(
            check.name,
            "faster-whisper / CTranslate2 not importable: " + "; ".join(missing),
            unit=UNITS[check.metric],
            threshold=threshold,
        )
    text = check.model or ""
    shape = (
        WHISPER_SHAPES.get(str(ctx.spec.asr.get("shape")))
        or find_whisper_shape(text)
        or WHISPER_SHAPES[DEFAULT_WHISPER]
    )
    cuda = ctx.device.type == "cuda"
    if cuda:
        ct2: Any = importlib.import_module("ctranslate2")
        if ct2.get_cuda_device_count() == 0:
            return not_run(
                check.name,
                "CTranslate2 sees no CUDA device (a CPU-only build?)",
                unit=UNITS[check.metric],
                threshold=threshold,
            )
    compute_type = _compute_type(text, ctx.spec, cuda)
    key = ("asr", shape.name, compute_type)
    if key not in ctx.cache:
        ctx.log(f"asr {shape.name} {compute_type}: start")
        work = Path(tempfile.mkdtemp(prefix="asr-", dir=ctx.work_dir))
        try:
            a = ctx.spec.asr
            ctx.cache[key] = asr_bench(
                shape, compute_type, ctx.device, work, float(a.get("audio_s", 60)), int(a.get("beam_size", 5)),
                int(a.get("tokens_per_window", 100)), int(a.get("seed", ctx.spec.seed)),
            )  # fmt: skip
        except Exception as error:
            ctx.cache[key] = f"failed: {_one_line(error)}"
            ctx.log(traceback.format_exc())
        finally:
            shutil.rmtree(work, ignore_errors=True)
            _free(ctx.device)
    result = ctx.cache[key]
    if isinstance(result, str):
        return not_run(check.name, result, unit=UNITS[check.metric], threshold=threshold)
    return gated(
        check.name,
        result["rtf"],
        UNITS[check.metric],
        check.min,
        check.max,
        how=result["how"],
        path="faster-whisper",
        details=result,
    )


def latency_check(ctx: Context, check: StackCheck) -> Check:
    assert ctx.device is not None
    cfg = ctx.spec.latency
    text = check.model or ""
    shape = SHAPES.get(str(cfg.get("shape"))) or find_shape(text) or SHAPES["qwen3-0.6b"]
    quant = str(cfg.get("quant") or quant_from_text(text, "bf16"))
    key = ("latency", shape.name, quant)
    if key not in ctx.cache:
        ctx.log(f"latency {shape.name} {quant}: start")
        work = Path(tempfile.mkdtemp(prefix="latency-", dir=ctx.work_dir))
        try:
            ctx.cache[key] = latency_bench(
                shape, quant, ctx.device, work, ctx.options, int(cfg.get("prompt_tokens", 256)), int(cfg.get("decode_tokens", 7)),
                int(cfg.get("steps", 30)), int(cfg.get("seed", ctx.spec.seed)), ctx.gpu.sm_count if ctx.gpu else 0,
            )  # fmt: skip
        except Exception as error:
            ctx.cache[key] = f"failed: {_one_line(error)}"
            ctx.log(traceback.format_exc())
        finally:
            shutil.rmtree(work, ignore_errors=True)
            _free(ctx.device)
    result = ctx.cache[key]
    unit = UNITS[check.metric]
    if isinstance(result, str):
        return not_run(check.name, result, unit=unit, threshold=threshold_text(check.min, check.max))
    value = {"inference_rate_hz": result["hz"], "latency_p50_ms": result["p50_ms"], "latency_p95_ms": result["p95_ms"]}[
        check.metric
    ]
    return gated(
        check.name,
        value,
        unit,
        check.min,
        check.max,
        how="synthesized step: " + result["step"],
        path=result["path"],
        details=result,
    )


def workload_checks(ctx: Context) -> list[Check]:
    out: list[Check] = []
    memory: list[StackCheck] = []
    for check in ctx.spec.checks:
        unit = UNITS[check.metric]
        if ctx.device is None:
            out.append(
                not_run(check.name, ctx.no_device_reason, unit=unit, threshold=threshold_text(check.min, check.max))
            )
        elif check.metric in ("llm_decode_tokens_per_s", "llm_time_to_first_token_ms"):
            target = resolve_llm_target(check.model, ctx.spec)
            if isinstance(target, str):
                out.append(not_run(check.name, target, unit=unit, threshold=threshold_text(check.min, check.max)))
            else:
                out += llm_checks(ctx, target, check)
        elif check.metric == "asr_real_time_factor":
            out.append(asr_check(ctx, check))
        elif check.metric == "peak_memory_gb":
            memory.append(check)
        else:
            out.append(latency_check(ctx, check))
    if ctx.device is not None:
        for target in ctx.extra_llm:
            out += llm_checks(ctx, target, None)
    for check in memory:
        assert ctx.device is not None
        unified = ctx.gpu.integrated if ctx.gpu else False
        if ctx.spec.device is not None:
            unified = unified or ctx.spec.device.unified_memory
        value, how, details = peak_memory(ctx.device, unified)
        out.append(
            gated(
                check.name,
                value,
                "GB",
                check.min,
                check.max,
                how=how + ", after every other check of this run",
                details=details,
            )
        )
    return out


def environment() -> dict[str, Any]:
    info: dict[str, Any] = {
        "runner": RUNNER_VERSION,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "hostname": platform.node(),
    }
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
    for dist in ("triton", "vllm", "faster-whisper", "ctranslate2"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            info[dist] = importlib.metadata.version(dist)
    return info


def run_smoke(
    spec: Spec, work_dir: Path, options: DecodeOptions = DecodeOptions(), extra_llm: Sequence[LlmTarget] = (), allow_cpu: bool = False,
    tokens: int = 128, prompt_tokens: int = 16, log: Callable[[str], None] = lambda m: None,
) -> tuple[dict[str, Any], int]:  # fmt: skip
    """Every check; returns (report, exit status)."""
    started = time.time()
    checks = check_versions(spec.versions) + check_imports(spec.imports)
    gpu = detect_gpu()
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "stack": spec.stack,
        "target": spec.target,
        "image": spec.image,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "environment": environment(),
        "device_profile": asdict(spec.device) if spec.device else None,
    }
    reason = (
        "no GPU: torch is not importable"
        if torch is None
        else f"no GPU: torch.cuda.is_available() is False (torch {torch.__version__})"
    )
    device: torch.device | None = None
    bandwidth: float | None = None
    mode, mode_how = active_power_mode(spec.device)
    report["power_mode"] = {"active": mode, "how": mode_how, "required": spec.power_mode}
    if gpu is None:
        report["device"] = None
        for name in ("gpu:compute-capability", "gpu:memory", "memory-bandwidth"):
            checks.append(not_run(name, reason))
        checks.append(
            power_mode_check(spec.power_mode, mode, mode_how)
            if spec.device and spec.device.kind == "jetson"
            else not_run("power-mode", reason)
        )
        if allow_cpu and torch is not None:
            device = torch.device("cpu")
    else:
        device = torch.device("cuda", 0)
        report["device"] = {**asdict(gpu), "total_gb": gpu.total_bytes / GB, "total_gib": gpu.total_bytes / GIB}
        checks += gpu_checks(spec.device, gpu, spec.memory_tolerance)
        checks.append(power_mode_check(spec.power_mode, mode, mode_how))
        log("bandwidth probe")
        size = min(4 << 30, gpu.total_bytes // 8) // (4 << 20) * (4 << 20)
        measured = bandwidth_probe(device, size)
        bandwidth = measured["gbps"]
        reset_peak_memory(device)  # the probe's buffer is not the workload's
        checks.append(bandwidth_check(measured, spec.device, mode, spec.bandwidth_tolerance))
    ctx = Context(
        spec, device, gpu, bandwidth, work_dir, options, tokens, prompt_tokens, list(extra_llm), reason, log=log
    )
    checks += workload_checks(ctx)
    failed = [c.name for c in checks if c.status == FAIL]
    code = EXIT_NO_GPU if gpu is None else EXIT_FAILED if failed else EXIT_OK
    report["checks"] = [c.as_json() for c in checks]
    report["summary"] = {
        "passed": sum(c.status == PASS for c in checks),
        "failed": len(failed),
        "not_run": sum(c.status == NOT_RUN for c in checks),
        "failed_checks": failed,
        "result": "no gpu" if gpu is None else "fail" if failed else "pass",
    }
    report["exit_code"] = code
    report["duration_s"] = round(time.time() - started, 3)
    return report, code


# ------------------------------------------------------------------------------------------ CLI


def _option_value(field_type: str, text: str) -> Any:
    if "bool" in field_type:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        if "None" in field_type and text.lower() in ("auto", "none"):
            return None
        raise SpecError(f"--option: {text!r} is not a yes/no value")
    if field_type == "int":
        return int(text)
    return text


def parse_options(pairs: Sequence[str]) -> DecodeOptions:
    fields = {f.name: str(f.type) for f in DecodeOptions.__dataclass_fields__.values()}
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            raise SpecError(f"--option {pair!r}: expected KEY=VALUE with KEY one of {', '.join(fields)}")
        try:
            values[key] = _option_value(fields[key], text.strip())
        except ValueError as error:
            raise SpecError(f"--option {pair!r}: {error}") from None
    return DecodeOptions(**values)


def parse_llm_arg(text: str) -> LlmTarget:
    name, _, quant = text.partition(":")
    if name not in SHAPES:
        raise SpecError(f"--llm {text!r}: unknown shape (known: {', '.join(SHAPES)})")
    quant = quant or "int4"
    if quant not in ("int4", "bf16"):
        raise SpecError(f"--llm {text!r}: quantization must be int4 or bf16")
    return LlmTarget(f"{name}-{quant}", name, quant)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runner.py", description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--spec", type=Path, help="the spec JSON (see the module docstring); none: built-in checks only"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("smoke.json"), help="where to write the report (default smoke.json)"
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a checkpoint directory for the checks naming NAME",
    )
    parser.add_argument(
        "--llm",
        action="append",
        default=[],
        metavar="SHAPE[:QUANT]",
        help="also measure a synthesized model (e.g. llama-2-7b:int4)",
    )
    parser.add_argument("--power-mode", help="the power mode required (overrides the spec's)")
    parser.add_argument(
        "--work-dir", type=Path, help="where synthesized checkpoints go (default: a temporary directory)"
    )
    parser.add_argument(
        "--allow-cpu",
        action="store_true",
        help="without a GPU, still run the workloads on the CPU (exit status stays 3)",
    )
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="decode path option (see DecodeOptions)"
    )
    parser.add_argument("--tokens", type=int, default=128, help="tokens to decode (default 128)")
    parser.add_argument("--prompt-tokens", type=int, default=16, help="prompt length before decoding (default 16)")
    parser.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")
    return parser


def load_spec(args: argparse.Namespace) -> Spec:
    data: dict[str, Any] = {}
    if args.spec is not None:
        try:
            data = json.loads(args.spec.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise SpecError(f"{args.spec}: {_one_line(error)}") from None
    spec = parse_spec(data)
    for pair in args.model:
        name, sep, directory = pair.partition("=")
        if not sep or not name or not directory:
            raise SpecError(f"--model {pair!r}: expected NAME=DIR")
        spec.models[name] = directory
    if args.power_mode:
        spec.power_mode = args.power_mode
    return spec


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    lines = []
    for c in report["checks"]:
        value = c.get("value")
        shown = f"{value:.4g}" if isinstance(value, float) else str(value) if value is not None else ""
        extra = c.get("reason") or c.get("threshold") or ""
        lines.append(
            f"{c['status']:>7}  {c['name']}: {shown} {c.get('unit', '')}  {extra}  {c.get('path', '')}".rstrip()
        )
    s = report["summary"]
    lines.append(
        f"{s['result']}: {s['passed']} passed, {s['failed']} failed, {s['not_run']} not run (exit {report['exit_code']})"
    )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def log(message: str) -> None:
        if not args.quiet:
            print(f"[smoke {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    try:
        spec = load_spec(args)
        options = parse_options(args.option)
        extra = [parse_llm_arg(t) for t in args.llm]
    except SpecError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        report, code = run_smoke(spec, work, options, extra, args.allow_cpu, args.tokens, args.prompt_tokens, log)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if not args.quiet:
        for line in summary_lines(report):
            print(line, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
