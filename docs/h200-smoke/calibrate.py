"""Decode-path variants on one GPU, for calibrating the smoke runner's defaults and roofline floors.

Run with runner.py beside it: `python3 calibrate.py OUT_DIR [--cpu-test]`. Synthesizes each model once,
then loads and decodes it once per variant of DecodeOptions; prints a table and writes OUT_DIR/calibrate.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runner as r
import torch

GPU_PLAN: list[tuple[str, str, list[dict[str, Any]]]] = [
    ("llama-2-7b", "int4", [{}, {"attention": "sdpa"}, {"attention": "sdpa", "kv_stacked": True},
                            {"attention": "sdpa", "kv_stacked": True, "combo_kernels": True},
                            {"attention": "reduce", "kv_stacked": True},
                            {"attention": "reduce", "kv_stacked": True, "combo_kernels": True}]),
    ("qwen3-4b", "int4", [{}, {"attention": "sdpa", "kv_stacked": True}, {"attention": "reduce", "kv_stacked": True},
                          {"attention": "reduce", "kv_stacked": True, "combo_kernels": True}]),
    ("llama-2-7b", "bf16", [{}, {"attention": "sdpa", "kv_stacked": True}, {"attention": "reduce", "kv_stacked": True}]),
    ("qwen3-4b", "bf16", [{}, {"attention": "reduce", "kv_stacked": True}]),
]  # fmt: skip
CPU_PLAN: list[tuple[str, str, list[dict[str, Any]]]] = [
    ("tiny", "int4", [{"kernel": "int4-tinygemm-cpu"}, {"kernel": "int4-tinygemm-cpu", "split_target": 0}]),
    ("tiny-llama", "bf16", [{}, {"fuse": False}]),
]


def gemm_only(shape: r.ModelShape, quant: str, checkpoint: Path, device: torch.device, sm: int) -> dict[str, Any]:
    """Time one token's linear layers alone (every layer's, and the head) in a CUDA graph: the weight-streaming part."""
    notes: list[str] = []
    opts = r.select_options(r.DecodeOptions(), quant, device, notes)
    model = r.build_model(shape, r.load_safetensors(checkpoint, device), quant, opts, device, sm)
    per = len(model.lm_head.tensors)
    first = 1 + (2 if shape.qk_norm else 0)
    sizes = {"qkv": shape.hidden, "q": shape.hidden, "k": shape.hidden, "v": shape.hidden, "o": shape.q_size,
             "gate_up": shape.hidden, "gate": shape.hidden, "up": shape.hidden, "down": shape.intermediate}  # fmt: skip
    inputs = {k: torch.randn(1, v, device=device).to(model.dtype) for k, v in sizes.items()}

    def step() -> None:
        for own in model.layers:
            for i, (name, n, parts) in enumerate(model.layer_linears):
                r.linear_forward(
                    model.kernel, inputs[name], tuple(own[first + i * per : first + (i + 1) * per]), n, parts
                )
        head = model.lm_head
        r.linear_forward(model.kernel, inputs["qkv"], head.tensors, head.n, head.parts)

    with torch.no_grad():
        stream = r._cuda_stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        times = []
        for _ in range(10):
            a, b = r._cuda_event(timing=True), r._cuda_event(timing=True)
            a.record()
            graph.replay()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
    seconds = sorted(times)[len(times) // 2]
    parts = r.bytes_per_token(shape, quant, 0)
    streamed = parts["linear_weights"] + parts["scales_zeros"]
    return {"gemm_ms_per_token": seconds * 1e3, "gemm_gbps": streamed / seconds / 1e9, "gemm_bytes": streamed}


def best(results: Path, config: str) -> str:
    """`--option` arguments of the fastest consistent variant measured for SHAPE:QUANT (empty: defaults)."""
    shape, _, quant = config.partition(":")
    rows = json.loads(results.read_text())["rows"] if results.exists() else []
    good = [
        r for r in rows
        if r["shape"] == shape and r["quant"] == quant and "tok_s" in r and r["consistency"] <= 0.25
    ]  # fmt: skip
    if not good:
        return ""
    top = max(good, key=lambda r: r["tok_s"])
    return " ".join(f"--option {k}={int(v) if isinstance(v, bool) else v}" for k, v in top["variant"].items())


def main() -> int:
    if sys.argv[1] == "--best":
        print(best(Path(sys.argv[2]), sys.argv[3]))
        return 0
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    cpu = "--cpu-test" in sys.argv
    device = torch.device("cpu") if cpu else torch.device("cuda", 0)
    gpu = r.detect_gpu()
    env = r.environment()
    bandwidth = {"gbps": 1.0} if cpu else r.bandwidth_probe(device, 4 << 30)
    print(f"env {env}\ngpu {gpu}\nbandwidth {bandwidth}", flush=True)
    rows: list[dict[str, Any]] = []
    for shape_name, quant, variants in CPU_PLAN if cpu else GPU_PLAN:
        shape = r.SHAPES[shape_name]
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            checkpoint = r.synthesize_checkpoint(Path(tmp), shape, quant, 0, device)
            synth_s = time.perf_counter() - started
            print(f"synthesized {shape_name} {quant} in {synth_s:.1f} s", flush=True)
            if not cpu:
                try:
                    g = gemm_only(shape, quant, checkpoint, device, gpu.sm_count if gpu else 0)
                    print(f"gemm only {shape_name} {quant}: {g}", flush=True)
                    rows.append({"shape": shape_name, "quant": quant, "variant": "gemm-only", **g})
                except Exception:
                    print(traceback.format_exc(), flush=True)
                r._free(device)
            for variant in variants:
                row: dict[str, Any] = {"shape": shape_name, "quant": quant, "variant": variant, "synth_s": synth_s}
                try:
                    res = r.llm_bench(
                        shape, quant, device, Path(tmp), r.DecodeOptions(**variant), tokens=16 if cpu else 128,
                        checkpoint=checkpoint, sm_count=gpu.sm_count if gpu else 0,
                    )  # fmt: skip
                    total = res.bytes_per_token["total"]
                    row.update(
                        path=res.path, tok_s=res.tokens_per_s, rounds=res.rounds_tokens_per_s, gb_token=total / 1e9,
                        roofline=r.roofline_fraction(res.tokens_per_s, total, bandwidth["gbps"]), load_s=res.load_s,
                        load=res.load_detail, prepare_s=res.prepare_s, consistency=res.consistency,
                        kernel_check=res.kernel_check, linears=res.layer_linears, notes=res.notes, ttft_ms=res.ttft_ms,
                    )  # fmt: skip
                except Exception:
                    row["error"] = traceback.format_exc()
                    print(row["error"], flush=True)
                rows.append(row)
                print(_line(row), flush=True)
                (out / "calibrate.json").write_text(
                    json.dumps({"env": env, "bandwidth": bandwidth, "rows": rows}, indent=1, default=str)
                )
                r._free(device)
    print("\nshape quant variant | path | tok/s | GB/tok | roofline | load s | prepare s | consistency")
    for row in rows:
        print(_line(row))
    return 0


def _line(row: dict[str, Any]) -> str:
    if row["variant"] == "gemm-only":
        return f"{row['shape']} {row['quant']} gemm-only | {row['gemm_ms_per_token']:.3f} ms/token | {row['gemm_gbps']:.0f} GB/s"
    if "error" in row:
        return f"{row['shape']} {row['quant']} {row['variant']} | ERROR {row['error'].strip().splitlines()[-1]}"
    return (
        f"{row['shape']} {row['quant']} {row['variant']} | {row['path']} | {row['tok_s']:.1f} | {row['gb_token']:.3f} | "
        f"{row['roofline']:.3f} | {row['load_s']:.2f} | {row['prepare_s']:.1f} | {row['consistency']:.3g} | {row['linears']}"
    )


if __name__ == "__main__":
    sys.exit(main())
