"""The smoke runner's logic on CPU with tiny shapes; GPU tests are marked `gpu` and skip without CUDA."""

from __future__ import annotations

import ast
import dataclasses
import itertools
import json
import math
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from builder.smoke import runner as r  # noqa: E402

RUNNER = Path(r.__file__)
CPU = torch.device("cpu")
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
# torch 2.11's compiler imports torch.jit, which warns on import (seen on the H200)
quiet_jit = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")


def rel(a: Any, b: Any) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


# ------------------------------------------------------------------------- quantize and pack


def test_quantize_round_trip_error_is_within_half_a_step() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(64, 512, generator=gen) * 0.05 + 0.01
    packed, scale, zero = r.quantize_int4(w)
    assert packed.dtype == torch.uint8 and packed.shape == (64, 256)
    assert scale.dtype == zero.dtype == torch.bfloat16 and scale.shape == (64, 4)
    back = r.dequantize_int4(packed, scale, zero)
    step = scale.float().repeat_interleave(128, dim=1)
    slack = zero.float().abs().repeat_interleave(128, dim=1) * 2**-7  # bf16 rounding of the zero point
    assert bool(((back - w).abs() <= 0.5 * step + slack + 1e-6).all())
    assert rel(back, w) < 0.1


def test_packing_puts_the_even_column_in_the_high_nibble() -> None:
    # One group whose values are 0..15 (each repeated 8 times) quantizes to q = its value.
    row = torch.arange(16, dtype=torch.float32).repeat_interleave(8)
    w = torch.stack([row, row.flip(0)])
    packed, scale, zero = r.quantize_int4(w)
    q = r.unpack_int4(packed)
    assert q[0].tolist() == row.int().tolist()
    assert q[1].tolist() == row.flip(0).int().tolist()
    # columns 0..7 hold 0 and 8..15 hold 1: byte 4 packs columns 8 (high) and 9 (low)
    assert int(packed[0, 4]) == (1 << 4) | 1
    assert int(packed[0, 3]) == 0
    assert torch.equal(r.dequantize_int4(packed, scale, zero), w)


def test_split_k_rows_are_slices_of_the_original() -> None:
    w = torch.randn(16, 512)
    packed, scale, zero = r.quantize_int4(w)
    sp, ss, sz = r.split_k(packed, scale, zero, 2)
    assert sp.shape == (32, 128) and ss.shape == (32, 2)
    full = r.dequantize_int4(packed, scale, zero)
    parts = r.dequantize_int4(sp, ss, sz)
    assert torch.equal(parts[:16], full[:, :256])
    assert torch.equal(parts[16:], full[:, 256:])


def test_choose_split() -> None:
    assert r.choose_split(4096, 4096, 0, 8) == 1
    assert r.choose_split(4096, 4096, 1056, 8) == 4  # 2 slices give 1024 blocks, 3 do not divide k
    assert r.choose_split(4096, 11008, 1024, 8) == 2  # 86 groups: 2 or 43
    assert r.choose_split(4096, 11008, 100_000, 8) == 2  # no valid split up to 16 reaches it: the largest
    assert not r.valid_split(11008, 4, 8)


@pytest.mark.skipif(not hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu"), reason="no CPU tinygemm op")
@pytest.mark.parametrize("parts", [1, 2, 4])
def test_tinygemm_cpu_kernel_agrees_with_dequantize(parts: int) -> None:
    """The tinygemm layout (shared with the CUDA kernel) computes (q - 8) * scale + zero, k split or not."""
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(64, 1024, generator=gen)
    packed, scale, zero = r.quantize_int4(w)
    lin = r._make_linear(
        "int4-tinygemm-cpu", [(packed, scale, zero)], r.DecodeOptions(), (64 // 8) * parts, torch.bfloat16
    )
    assert lin.parts == parts
    x = torch.randn(3, 1024, generator=gen).to(torch.bfloat16)
    got = r.linear_forward("int4-tinygemm-cpu", x, lin.tensors, lin.n, lin.parts)
    assert rel(got, x.float() @ r.dequantize_int4(packed, scale, zero).T) < 1e-2


# -------------------------------------------------------------------------------- safetensors


def test_safetensors_round_trip_is_byte_exact(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(2)
    tensors = {
        "a.bf16": torch.randn(3, 5, generator=gen).to(torch.bfloat16),
        "b.f32": torch.randn(7, generator=gen),
        "c.u8": torch.randint(0, 256, (4, 3), generator=gen, dtype=torch.uint8),
        "d.i64": torch.tensor([-(2**40), 5, 2**62]),
        "e.f16": torch.randn(2, 2, 2, generator=gen).half(),
        "f.bool": torch.tensor([True, False, True]),
        "g.scalar": torch.tensor(3.5, dtype=torch.float64),
        "h.empty": torch.zeros(0, 4, dtype=torch.int32),
    }
    path = tmp_path / "t.safetensors"
    r.write_safetensors(path, tensors, {"format": "pt"})
    loaded = r.load_safetensors(path)
    assert set(loaded) == set(tensors)
    for name, t in tensors.items():
        got = loaded[name]
        assert got.dtype == t.dtype and got.shape == t.shape, name
        assert torch.equal(got.reshape(-1).view(torch.uint8), t.reshape(-1).view(torch.uint8)), name

    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    assert (8 + length) % 8 == 0
    assert header["__metadata__"] == {"format": "pt"}
    spans = sorted(tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__")
    assert spans[0][0] == 0 and spans[-1][1] == len(raw) - 8 - length
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))  # no holes
    assert header["a.bf16"] == {
        "dtype": "BF16",
        "shape": [3, 5],
        "data_offsets": list(header["a.bf16"]["data_offsets"]),
    }


def test_safetensors_writer_takes_rows_in_any_order(tmp_path: Path) -> None:
    t = torch.arange(40, dtype=torch.int32).reshape(10, 4)
    path = tmp_path / "rows.safetensors"
    with r.SafetensorsWriter(path, [("t", "I32", [10, 4])]) as w:
        w.write("t", t[6:], row=6)
        w.write("t", t[:6])
    assert torch.equal(r.load_safetensors(path)["t"], t)


def test_safetensors_writer_refuses_a_short_tensor(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="not fully written: t"),
        r.SafetensorsWriter(tmp_path / "x", [("t", "F32", [4])]) as w,
    ):
        w.write("t", torch.zeros(2))
    with (
        pytest.raises(ValueError, match="planned BF16"),
        r.SafetensorsWriter(tmp_path / "y", [("t", "BF16", [4])]) as w,
    ):
        w.write("t", torch.zeros(4))


def test_checkpoint_plan_uses_hugging_face_names() -> None:
    plan = {name: (code, shape) for name, code, shape in r.checkpoint_plan(r.SHAPES["llama-2-7b"], "int4")}
    assert plan["model.layers.31.self_attn.q_proj.weight_packed"] == ("U8", [4096, 2048])
    assert plan["model.layers.0.mlp.down_proj.weight_scale"] == ("BF16", [4096, 86])
    assert plan["lm_head.weight_zero"] == ("BF16", [32000, 32])
    assert plan["model.embed_tokens.weight"] == ("BF16", [32000, 4096])
    bf16 = {name for name, _, _ in r.checkpoint_plan(r.SHAPES["qwen3-4b"], "bf16")}
    assert "lm_head.weight" not in bf16  # tied to the embedding
    assert "model.layers.35.self_attn.k_norm.weight" in bf16


# ----------------------------------------------------------------------------- decode on CPU


def _load(tmp_path: Path, shape: str, quant: str, **options: Any) -> Any:
    s = r.SHAPES[shape]
    path = r.synthesize_checkpoint(tmp_path / f"{shape}-{quant}", s, quant, 0, CPU)
    opts = r.select_options(r.DecodeOptions(**options), quant, CPU, [])
    return r.build_model(s, r.load_safetensors(path), quant, opts, CPU)


def _logits(model: Any, tokens: list[int]) -> Any:
    dec = r.Decoder(model, 32, CPU)
    with torch.no_grad():
        return dec.forward(torch.tensor(tokens), torch.arange(len(tokens)), all_logits=True)


def _dequantized_tensors(path: Path) -> dict[str, Any]:
    tensors = r.load_safetensors(path)
    for name in [n for n in tensors if n.endswith(".weight_packed")]:
        prefix = name.removesuffix(".weight_packed")
        packed, scale, zero = (
            tensors.pop(name),
            tensors.pop(prefix + ".weight_scale"),
            tensors.pop(prefix + ".weight_zero"),
        )
        tensors[prefix + ".weight"] = r.dequantize_int4(packed, scale, zero)
    return tensors


@pytest.mark.parametrize("shape", ["tiny", "tiny-llama"])
def test_int4_logits_equal_the_dequantized_model(tmp_path: Path, shape: str) -> None:
    s = r.SHAPES[shape]
    path = r.synthesize_checkpoint(tmp_path / "q", s, "int4", 0, CPU)
    opts = r.select_options(r.DecodeOptions(), "int4", CPU, [])
    assert opts.kernel == "int4-reference" and opts.dtype == "float32"
    quantized = r.build_model(s, r.load_safetensors(path), "int4", opts, CPU)
    dense = r.build_model(s, _dequantized_tensors(path), "bf16", dataclasses.replace(opts, kernel="dense"), CPU)
    tokens = [5, 17, 300, 2, 511, 64, 9]
    assert rel(_logits(quantized, tokens), _logits(dense, tokens)) < 1e-5


def test_int4_logits_stay_close_to_the_unquantized_model(tmp_path: Path) -> None:
    # The int4 checkpoint quantizes the very weights the bf16 one holds (same seed, same tensor names).
    tokens = [5, 17, 300, 2, 511, 64, 9]
    quantized = _logits(_load(tmp_path, "tiny", "int4"), tokens)
    original = _logits(_load(tmp_path, "tiny", "bf16"), tokens)
    assert rel(quantized, original) < 0.3  # about 0.17 here: random weights, two layers
    assert (quantized.argmax(-1) == original.argmax(-1)).float().mean() >= 0.5


@pytest.mark.skipif(not hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu"), reason="no CPU tinygemm op")
def test_tinygemm_cpu_path_agrees_with_the_reference_path(tmp_path: Path) -> None:
    tokens = [1, 2, 3, 400]
    ref = _logits(_load(tmp_path, "tiny-llama", "int4"), tokens)
    fast = _logits(_load(tmp_path, "tiny-llama", "int4", kernel="int4-tinygemm-cpu", split_target=10_000), tokens)
    assert rel(fast, ref) < 0.05


@pytest.mark.parametrize(
    ("shape", "options"),
    [
        ("tiny", {}),
        ("tiny-llama", {}),
        ("tiny", {"attention": "matmul", "kv_stacked": False}),
        ("tiny", {"attention": "reduce"}),
        ("tiny-llama", {"fuse": False}),
    ],
)
def test_incremental_decode_equals_the_full_sequence(tmp_path: Path, shape: str, options: dict[str, Any]) -> None:
    """A broken KV cache (wrong positions, masks or rotary) makes incremental logits drift from these."""
    model = _load(tmp_path, shape, "bf16", **options)
    tokens = [7, 300, 12, 99, 4, 250, 61, 8]
    full = _logits(model, tokens)
    dec = r.Decoder(model, 32, CPU)
    steps = []
    with torch.no_grad():
        steps.append(dec.forward(torch.tensor(tokens[:3]), torch.arange(3), all_logits=True))
        for i, t in enumerate(tokens[3:], start=3):
            steps.append(dec.forward(torch.tensor([t]), torch.tensor([i])))
    assert rel(torch.cat(steps), full) < 1e-5


def test_greedy_steps_advance_token_and_position(tmp_path: Path) -> None:
    model = _load(tmp_path, "tiny-llama", "bf16")
    dec = r.Decoder(model, 32, CPU)
    with torch.no_grad():
        dec.forward(torch.tensor([1, 2, 3]), torch.arange(3))
        dec.reset(9, 3)
        logits = dec.run_step()
        assert int(dec.pos) == 4 and int(dec.token) == int(logits.argmax())
        reference = _logits(model, [1, 2, 3, 9])[-1:]
    assert rel(logits, reference) < 1e-5


def test_attention_variants_agree() -> None:
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(1, 8, 64, generator=gen)
    k, v = torch.randn(2, 40, 64, generator=gen), torch.randn(2, 40, 64, generator=gen)
    pos = torch.tensor([17])
    ref = r.attention(q, k, v, pos, "matmul")
    assert rel(r.attention(q, k, v, pos, "reduce"), ref) < 1e-5
    assert rel(r.attention(q, k, v, pos, "sdpa"), ref) < 1e-5
    # positions after 17 are masked: changing them changes nothing
    k2 = k.clone()
    k2[:, 18:] = 100.0
    assert rel(r.attention(q, k2, v, pos, "matmul"), ref) < 1e-6


def test_llm_bench_on_cpu_reports_a_consistent_path(tmp_path: Path) -> None:
    res = r.llm_bench(r.SHAPES["tiny"], "int4", CPU, tmp_path, tokens=4, prompt_tokens=4)
    assert res.path == "int4-reference"
    assert res.tokens_per_s > 0 and res.consistency == 0.0
    assert res.bytes_per_token == r.bytes_per_token(r.SHAPES["tiny"], "int4", res.kv_len)
    assert [n for n, _, _ in res.layer_linears] == ["qkv", "o", "gate_up", "down"]


# --------------------------------------------------------------------- arithmetic and gating


def test_bytes_per_token_of_llama_2_7b() -> None:
    """By hand: per layer 4 x 4096^2 + 3 x 4096 x 11008 = 202,375,168 weights; 32 layers plus the
    32000 x 4096 head = 6,607,077,376. int4: half a byte each (3,303,538,688) plus a bf16 scale and
    zero per 128 (51,617,792 groups x 4 = 206,471,168); norms (65 x 4096 x 2 = 532,480); one
    embedding row (8,192); KV cache 160 positions x 32 layers x 2 x 4096 x 2 bytes (83,886,080)."""
    parts = r.bytes_per_token(r.SHAPES["llama-2-7b"], "int4", 160)
    assert parts == {
        "linear_weights": 3_303_538_688,
        "scales_zeros": 206_471_168,
        "norms": 532_480,
        "embedding_row": 8_192,
        "kv_cache": 83_886_080,
        "total": 3_594_436_608,
    }
    assert (
        r.bytes_per_token(r.SHAPES["llama-2-7b"], "bf16", 160)["total"] == 13_214_154_752 + 532_480 + 8_192 + 83_886_080
    )


def test_bytes_per_token_of_qwen3_4b_counts_qk_norms_and_grouped_kv() -> None:
    s = r.SHAPES["qwen3-4b"]
    assert s.linear_params() == 36 * (2560 * (4096 + 1024 + 1024) + 4096 * 2560 + 3 * 2560 * 9728) + 151936 * 2560
    assert s.norm_params() == 36 * (2 * 2560 + 2 * 128) + 2560
    assert s.kv_bytes_per_position() == 36 * 2 * 8 * 128 * 2


def test_roofline_arithmetic() -> None:
    assert r.roofline_fraction(100.0, 4e9, 800.0) == pytest.approx(0.5)
    assert r.roofline_tokens_per_s(4e9, 800.0) == pytest.approx(200.0)
    assert r.roofline_fraction(378.5, 3_594_436_608, 4148.0) == pytest.approx(0.328, abs=5e-4)
    with pytest.raises(ValueError):
        r.roofline_fraction(1.0, 1.0, 0.0)


def test_gates() -> None:
    assert r.evaluate_gate(30.0, minimum=30) == r.PASS
    assert r.evaluate_gate(29.9, minimum=30) == r.FAIL
    assert r.evaluate_gate(0.19, maximum=0.18) == r.FAIL
    assert r.evaluate_gate(5.0, 1.0, 6.0) == r.PASS
    assert r.evaluate_gate(None, minimum=1) == r.NOT_RUN
    assert r.evaluate_gate(math.nan, minimum=1) == r.NOT_RUN
    assert r.threshold_text(3, None) == ">= 3" and r.threshold_text(None, 0.18) == "<= 0.18"
    check = r.gated("llm-decode", 12.5, "tok/s", 30, None)
    assert check.status == r.FAIL and check.as_json()["threshold"] == ">= 30" and check.as_json()["value"] == 12.5


def test_percentile() -> None:
    values = [float(v) for v in range(1, 21)]
    assert r.percentile(values, 50) == 10 and r.percentile(values, 95) == 19 and r.percentile(values, 100) == 20


def test_memory_matches_either_unit() -> None:
    assert r.memory_matches(150_109_880_320, 141)[0]  # H200: 139.8 GiB
    assert r.memory_matches(7_990_149_120, 8)[0]  # Orin Nano 8 GB: 7.99e9 bytes
    ok, text = r.memory_matches(100 * 10**9, 141)
    assert not ok and "neither" in text


def test_parse_nvpmodel() -> None:
    assert r.parse_nvpmodel("NV Power Mode: 25W\n1\n") == "25W"
    assert (
        r.parse_nvpmodel("NVPM WARN: golden image context is already created\nNV Power Mode: MAXN_SUPER\n2\n")
        == "MAXN_SUPER"
    )
    assert r.parse_nvpmodel("nvpmodel: command failed") is None


def test_version_matching() -> None:
    assert r.version_matches("2.8.0", "2.8.0")
    assert r.version_matches("2.11.0+cu130", "2.11.0")
    assert not r.version_matches("2.11.0+cu130", "2.11.0+cu126")
    assert not r.version_matches("2.8.1", "2.8.0")


def test_power_mode_check_says_both_modes() -> None:
    check = r.power_mode_check("25W", "15W", "nvpmodel -q")
    assert check.status == r.FAIL and check.reason == "required 25W, active 15W"
    assert r.power_mode_check("25W", "25W", "nvpmodel -q").status == r.PASS
    assert r.power_mode_check("25W", None, "nvpmodel is not on PATH").status == r.FAIL
    assert r.power_mode_check(None, "700W", "profile").status == r.PASS


def _profile(**kw: Any) -> Any:
    data = {
        "id": "h200",
        "compute_capability": "9.0",
        "memory_gb": 141,
        "power_modes": [{"name": "700W", "memory_bandwidth_gbps": 4800}],
    }
    return r.parse_device({**data, **kw})


def test_bandwidth_check() -> None:
    measured = {"gbps": 4300.0, "buffer_bytes": 1 << 30, "iterations": 20}
    assert r.bandwidth_check(measured, _profile(), "700W", 0.15).status == r.PASS
    slow = r.bandwidth_check({**measured, "gbps": 3900.0}, _profile(), "700W", 0.15)
    assert slow.status == r.FAIL and slow.threshold == "within 15% of 4800 (700W)"
    unknown = r.bandwidth_check(measured, _profile(), "MAXN", 0.15)
    assert unknown.status == r.FAIL and "MAXN" in (unknown.reason or "")


def test_gpu_checks_against_the_profile() -> None:
    info = r.GpuInfo("NVIDIA H200", "9.0", 150_109_880_320, 132, False)
    assert [c.status for c in r.gpu_checks(_profile(), info, 0.05)] == [r.PASS, r.PASS]
    orin = r.GpuInfo("Orin", "8.7", 7_990_149_120, 8, True)
    assert [c.status for c in r.gpu_checks(_profile(), orin, 0.05)] == [r.FAIL, r.FAIL]


def test_spec_parsing_and_errors() -> None:
    spec = r.parse_spec(
        {
            "versions": {"torch": "2.8.0"},
            "imports": ["torch"],
            "device": {"compute_capability": "8.7", "memory_gb": 8, "kind": "jetson", "default_power_mode": "25W",
                       "power_modes": [{"name": "15W", "memory_bandwidth_gbps": 68.3}, {"name": "25W", "memory_bandwidth_gbps": 102.4}]},
            "power_mode": "25W",
            "checks": [{"name": "llm-decode", "metric": "llm_decode_tokens_per_s", "min": 30, "model": "Qwen3-4B-AWQ"}],
        }
    )  # fmt: skip
    assert spec.device is not None and spec.device.unified_memory and spec.device.bandwidth("15W") == 68.3
    assert spec.checks[0] == r.StackCheck("llm-decode", "llm_decode_tokens_per_s", 30.0, None, "Qwen3-4B-AWQ")
    with pytest.raises(r.SpecError, match="unknown metric"):
        r.parse_spec({"checks": [{"name": "x", "metric": "flops"}]})
    with pytest.raises(r.SpecError, match="default_power_mode"):
        r.parse_spec({"device": {"compute_capability": "9.0", "memory_gb": 1, "default_power_mode": "x",
                                 "power_modes": [{"name": "y", "memory_bandwidth_gbps": 1}]}})  # fmt: skip


def test_llm_target_from_the_stack_text() -> None:
    spec = r.Spec()
    assert r.resolve_llm_target("Qwen3-4B-AWQ through vLLM, batch 1", spec) == r.LlmTarget(
        "qwen3-4b-int4", "qwen3-4b", "int4"
    )
    assert r.resolve_llm_target("Llama-2-7B bf16", spec) == r.LlmTarget("llama-2-7b-bf16", "llama-2-7b", "bf16")
    assert "no known model shape" in str(r.resolve_llm_target("Mixtral 8x7B", spec))
    spec.models["qwen3-4b"] = "/models/q"
    assert r.resolve_llm_target("Qwen3-4B-AWQ", spec) == r.LlmTarget("model:qwen3-4b", directory="/models/q")
    assert r.find_whisper_shape("faster-whisper large-v3-turbo") == r.WHISPER_SHAPES["large-v3-turbo"]
    assert r.find_whisper_shape("faster-whisper, int8_float16") is None


def test_options_from_the_command_line() -> None:
    opts = r.parse_options(["attention=matmul", "combo-kernels=0", "split_target=2048", "compile=auto"])
    assert (opts.attention, opts.combo_kernels, opts.split_target, opts.compile) == ("matmul", False, 2048, None)
    with pytest.raises(r.SpecError):
        r.parse_options(["warp_speed=9"])
    assert r.parse_llm_arg("llama-2-7b:bf16") == r.LlmTarget("llama-2-7b-bf16", "llama-2-7b", "bf16")
    with pytest.raises(r.SpecError):
        r.parse_llm_arg("gpt-5:int4")


# --------------------------------------------------------------------------- real checkpoints


def _awq_pack(values: Any) -> Any:
    """int [r, c] 0..15 -> int32 [r, c/8] the way AutoAWQ packs (columns 0,2,4,6,1,3,5,7 into nibbles 0..7)."""
    order = [0, 2, 4, 6, 1, 3, 5, 7]
    rows, cols = values.shape
    v = values.reshape(rows, cols // 8, 8).to(torch.int64)
    out = torch.zeros(rows, cols // 8, dtype=torch.int64)
    for nibble, col in enumerate(order):
        out |= v[..., col] << (4 * nibble)
    return out.to(torch.int32)


def test_awq_tensors_convert_to_the_same_weights() -> None:
    gen = torch.Generator().manual_seed(4)
    k, n = 256, 16
    q = torch.randint(0, 16, (k, n), generator=gen)
    z = torch.randint(0, 16, (k // 128, n), generator=gen)
    s = (torch.rand(k // 128, n, generator=gen) * 0.01 + 0.001).half()
    assert torch.equal(r.awq_unpack(_awq_pack(q)), q.int())
    packed, scale, zero = r.awq_to_int4(_awq_pack(q), _awq_pack(z), s)
    expected = ((q - z.repeat_interleave(128, 0)) * s.float().repeat_interleave(128, 0)).T
    assert rel(r.dequantize_int4(packed, scale, zero), expected) < 1e-2


def _int4_and_awq_dirs(src: Path, int4: Path, awq: Path) -> None:
    """Two checkpoints of the very same int4 weights: this runner's layout and AutoAWQ's GEMM layout.

    AWQ's zero point is an integer, so the synthesized zeros are first rounded to one; AWQ keeps the
    head in 16 bits, which the reader quantizes as this runner does."""
    config = json.loads((src / "config.json").read_text())
    tensors = r.load_safetensors(src / "model.safetensors")
    ours: dict[str, Any] = {}
    theirs: dict[str, Any] = {}
    for name, t in tensors.items():
        if name.endswith((".weight_scale", ".weight_zero")):
            continue
        if not name.endswith(".weight_packed"):
            ours[name] = theirs[name] = t
            continue
        prefix = name.removesuffix(".weight_packed")
        scale, zero = tensors[prefix + ".weight_scale"], tensors[prefix + ".weight_zero"]
        if prefix == "lm_head":
            head = r.dequantize_int4(t, scale, zero).half()
            theirs["lm_head.weight"] = head
            ours["lm_head.weight_packed"], ours["lm_head.weight_scale"], ours["lm_head.weight_zero"] = r.quantize_int4(
                head
            )
            continue
        z = (8 - zero.float() / scale.float()).round().clamp(0, 15)  # AWQ: w = (q - z) * s
        ours[name], ours[prefix + ".weight_scale"] = t, scale
        ours[prefix + ".weight_zero"] = ((8 - z) * scale.float()).to(torch.bfloat16)
        theirs[prefix + ".qweight"] = _awq_pack(r.unpack_int4(t).T.contiguous())
        theirs[prefix + ".qzeros"] = _awq_pack(z.T.contiguous().int())
        theirs[prefix + ".scales"] = scale.T.half().contiguous()
    for directory, weights in ((int4, ours), (awq, theirs)):
        directory.mkdir()
        r.write_safetensors(directory / "model.safetensors", weights)
    (int4 / "config.json").write_text(json.dumps(config))
    config["quantization_config"] = {"quant_method": "awq", "version": "gemm", "bits": 4, "group_size": 128}
    (awq / "config.json").write_text(json.dumps(config))


def test_checkpoint_directories_in_three_formats_decode_alike(tmp_path: Path) -> None:
    shape = r.SHAPES["tiny-llama"]
    r.synthesize_checkpoint(tmp_path / "synth", shape, "int4", 0, CPU)
    _int4_and_awq_dirs(tmp_path / "synth", tmp_path / "int4", tmp_path / "awq")
    dense = tmp_path / "dense"
    dense.mkdir()
    shutil.copy(tmp_path / "int4" / "config.json", dense / "config.json")
    weights = _dequantized_tensors(tmp_path / "int4" / "model.safetensors")
    r.write_safetensors(dense / "model.safetensors", {k: v.to(torch.bfloat16) for k, v in weights.items()})

    logits = {}
    for fmt in ("int4", "awq", "dense"):
        s, quant, tensors, found = r.read_checkpoint_dir(tmp_path / fmt, CPU)
        assert s.hidden == shape.hidden and s.layers == shape.layers
        assert found == {"int4": "builder-int4", "awq": "awq-gemm", "dense": "dense"}[fmt]
        opts = r.select_options(r.DecodeOptions(), quant, CPU, [])
        logits[fmt] = _logits(r.build_model(s, tensors, quant, opts, CPU), [3, 1, 4, 1, 5])
    assert rel(logits["awq"], logits["int4"]) < 1e-5  # a wrong nibble order would be off by ~100 %
    assert rel(logits["dense"], logits["int4"]) < 0.02  # bf16 rounding of the dequantized weights


def test_a_checkpoint_that_does_not_fit_says_why(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "hidden_size": 8,
                "num_hidden_layers": 1,
                "intermediate_size": 8,
                "num_attention_heads": 1,
                "vocab_size": 8,
            }
        )
    )
    r.write_safetensors(tmp_path / "model.safetensors", {"transformer.h.0.attn.c_attn.weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="do not fit the Llama / Qwen layout"):
        r.read_checkpoint_dir(tmp_path, CPU)


# ------------------------------------------------------------------------------ whole runs


def _spec(**extra: Any) -> dict[str, Any]:
    return {
        "stack": "test",
        "versions": {"torch": torch.__version__, "pytest": "0.0.1", "no-such-dist-xyz": "1.0"},
        "imports": ["json", "no_such_module_xyz"],
        "device": {"id": "h200", "kind": "discrete", "compute_capability": "9.0", "memory_gb": 141,
                   "power_modes": [{"name": "700W", "memory_bandwidth_gbps": 4800}], "default_power_mode": "700W"},
        **extra,
    }  # fmt: skip


def _statuses(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU report")
def test_without_a_gpu_versions_and_imports_are_still_checked(tmp_path: Path) -> None:
    checks = [{"name": "llm-decode", "metric": "llm_decode_tokens_per_s", "min": 30, "model": "Qwen3-4B-AWQ"}]
    report, code = r.run_smoke(r.parse_spec(_spec(checks=checks)), tmp_path)
    assert code == r.EXIT_NO_GPU and report["summary"]["result"] == "no gpu" and report["device"] is None
    status = _statuses(report)
    assert status["version:torch"] == r.PASS
    assert status["version:pytest"] == r.FAIL
    assert status["version:no-such-dist-xyz"] == r.FAIL
    assert status["import:json"] == r.PASS
    assert status["import:no_such_module_xyz"] == r.FAIL
    assert status["gpu:memory"] == status["memory-bandwidth"] == status["llm-decode"] == r.NOT_RUN
    failed = next(c for c in report["checks"] if c["name"] == "import:no_such_module_xyz")
    assert failed["value"] == "ModuleNotFoundError: No module named 'no_such_module_xyz'"
    assert next(c for c in report["checks"] if c["name"] == "gpu:memory")["reason"].startswith("no GPU")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU report")
def test_allow_cpu_runs_every_workload(tmp_path: Path) -> None:
    spec = r.parse_spec(
        _spec(
            versions={},
            imports=[],
            latency={"shape": "tiny", "prompt_tokens": 8, "decode_tokens": 3, "steps": 3},
            checks=[
                {"name": "llm-decode", "metric": "llm_decode_tokens_per_s", "min": 0.01, "model": "tiny int4"},
                {"name": "ttft", "metric": "llm_time_to_first_token_ms", "max": 1e6, "model": "tiny int4"},
                {"name": "rate", "metric": "inference_rate_hz", "min": 1e6},
                {"name": "p95", "metric": "latency_p95_ms", "max": 1e9},
                {"name": "peak-memory", "metric": "peak_memory_gb", "max": 1e6},
            ],
        )
    )
    report, code = r.run_smoke(
        spec, tmp_path, allow_cpu=True, tokens=3, prompt_tokens=4, extra_llm=[r.parse_llm_arg("tiny-llama:bf16")]
    )
    assert code == r.EXIT_NO_GPU
    status = _statuses(report)
    assert status["llm-decode"] == status["ttft"] == status["p95"] == status["peak-memory"] == r.PASS
    assert status["rate"] == r.FAIL  # a million Hz is out of reach
    assert status["llm-consistency:tiny-int4"] == r.PASS
    assert status["llm-roofline:tiny-int4"] == r.NOT_RUN
    assert status["llm-decode:tiny-llama-bf16"] == r.PASS
    decode = next(c for c in report["checks"] if c["name"] == "llm-decode")
    assert decode["path"] == "int4-reference" and decode["details"]["bytes_per_token"]["total"] > 0
    json.dumps(report)  # the report is plain JSON


def test_asr_check_runs_or_says_why_not(tmp_path: Path) -> None:
    spec = r.parse_spec(_spec(asr={"shape": "whisper-tiny", "audio_s": 31, "beam_size": 1, "tokens_per_window": 12},
                              checks=[{"name": "asr", "metric": "asr_real_time_factor", "max": 100, "model": "faster-whisper int8"}]))  # fmt: skip
    ctx = r.Context(spec, CPU, None, None, tmp_path, r.DecodeOptions())
    check = r.asr_check(ctx, spec.checks[0])
    if r._import_error("faster_whisper") or r._import_error("ctranslate2"):
        assert check.status == r.NOT_RUN and "not importable" in (check.reason or "")
    else:
        assert check.status == r.PASS and check.path == "faster-whisper"
        assert check.details["tokens"] > 0 and 0 < float(check.value or 0) < 100


def test_the_runner_needs_only_the_standard_library_and_torch() -> None:
    tree = ast.parse(RUNNER.read_text())
    top = set()
    for node in tree.body:  # module-level imports only: the optional engines are imported inside functions
        if isinstance(node, ast.Import):
            top |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            top.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Try):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    top |= {a.name.split(".")[0] for a in sub.names}
    assert top - set(sys.stdlib_module_names) == {"torch"}


# ---------------------------------------------------------------------- the CLI, as a process


def _run_cli(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    """The runner copied alone into a directory and run from there, as an image runs it."""
    copy = tmp_path / "runner.py"
    shutil.copy(RUNNER, copy)
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, str(copy), "--out", str(out), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(out.read_text()) if out.exists() else None
    return done.returncode, report, done.stderr


@pytest.mark.integration
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU report")
def test_cli_without_a_gpu_exits_3_and_reports_versions_and_imports(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(_spec(checks=[{"name": "asr", "metric": "asr_real_time_factor", "max": 0.18}])))
    code, report, err = _run_cli(tmp_path, "--spec", str(spec))
    assert code == 3, err
    assert report is not None
    status = _statuses(report)
    assert (status["version:torch"], status["version:pytest"], status["import:json"], status["import:no_such_module_xyz"]) == (
        r.PASS, r.FAIL, r.PASS, r.FAIL,
    )  # fmt: skip
    assert status["asr"] == r.NOT_RUN and report["exit_code"] == 3
    assert "no gpu:" in err


@pytest.mark.integration
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU report")
def test_cli_allow_cpu_decodes_a_synthesized_model(tmp_path: Path) -> None:
    code, report, err = _run_cli(
        tmp_path, "--llm", "tiny:int4", "--allow-cpu", "--tokens", "3", "--prompt-tokens", "4", "--quiet"
    )
    assert code == 3 and err == ""
    assert report is not None and _statuses(report)["llm-decode:tiny-int4"] == r.PASS


@pytest.mark.integration
def test_cli_refuses_a_bad_spec(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"checks": [{"name": "x", "metric": "flops"}]}))
    code, report, err = _run_cli(tmp_path, "--spec", str(spec))
    assert code == 2 and report is None and "unknown metric flops" in err


# ----------------------------------------------------------------------------- on a GPU


@pytest.mark.gpu
@gpu
@quiet_jit
def test_gpu_tinygemm_kernel_agrees_with_dequantize() -> None:
    device = torch.device("cuda", 0)
    opts = r.select_options(r.DecodeOptions(), "int4", device, [])
    assert opts.kernel == "int4-tinygemm"
    assert r._tinygemm_check(opts, device, opts.kernel) < 1e-2


@pytest.mark.gpu
@gpu
@quiet_jit
@pytest.mark.parametrize("quant", ["int4", "bf16"])
# torch.compile's compile workers leave /dev/null and pipes to the garbage collector (torch 2.11)
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_gpu_fast_path_matches_eager(tmp_path: Path, quant: str) -> None:
    device = torch.device("cuda", 0)
    res = r.llm_bench(r.SHAPES["tiny"], quant, device, tmp_path, tokens=8, prompt_tokens=4)
    assert res.path.endswith("+cudagraph") and res.consistency is not None and res.consistency < r.CONSISTENCY_MAX
    assert res.tokens_per_s > 0


@pytest.mark.gpu
@gpu
@quiet_jit
def test_gpu_bandwidth_probe() -> None:
    measured = r.bandwidth_probe(torch.device("cuda", 0), 256 << 20, iters=5)
    assert measured["gbps"] > 1 and measured["buffer_bytes"] == 256 << 20
