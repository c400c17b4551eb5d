from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder import __version__
from builder.cli import main
from tests.conftest import ROOT, run_cli


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"build {__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "error: the following arguments are required: COMMAND (hint: see 'build --help')"),
        (["frobnicate"], "error: argument COMMAND: invalid choice: 'frobnicate'"),
        (["show"], "error: the following arguments are required: STACK (hint: see 'build show --help')"),
        (["matrix", "--bogus"], "error: unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.code == 2
    assert result.err.startswith(message)
    assert len(result.err.splitlines()) == 1


def test_not_a_catalogue_root(tmp_path: Path) -> None:
    result = run_cli("validate", "--root", str(tmp_path))
    assert result.code == 2
    assert result.err == (
        f"error: {tmp_path} is not a catalogue root: it has no matrix/, recipes/, stacks/ "
        "(hint: run from the project directory or pass --root DIR)\n"
    )


def test_missing_root(tmp_path: Path) -> None:
    result = run_cli("--root", str(tmp_path / "nope"), "validate")
    assert (result.code, result.err) == (2, f"error: catalogue root {tmp_path / 'nope'} is not a directory\n")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run_cli("validate", "--root", str(tmp_path / "nope"), "--debug")
    assert result.code == 2
    assert "Traceback" in result.err


def test_validate_fixture(catalogue_dir: Path) -> None:
    result = run_cli("validate")
    assert (result.code, result.out, result.err) == (0, "ok: 2 devices, 2 cells, 3 recipes, 1 stacks\n", "")
    result = run_cli("validate", "--json")
    assert json.loads(result.out) == {"ok": True, "devices": 2, "cells": 2, "recipes": 3, "stacks": 1}


def test_unknown_stack_suggests(catalogue_dir: Path) -> None:
    result = run_cli("show", "dmeo")
    assert (result.code, result.err) == (2, "error: unknown stack 'dmeo' (hint: did you mean 'demo'?)\n")


def test_matrix_json_shape(catalogue_dir: Path) -> None:
    result = run_cli("matrix", "--json")
    assert result.code == 0
    assert json.loads(result.out) == {
        "include": [
            {
                "target": "nano/jp6.2-cu126",
                "stack": "demo",
                "device": "nano",
                "arch": "aarch64",
                "jetpack": "6.2",
                "cuda": "12.6",
                "runs-on": ["self-hosted", "ARM64", "nano"],
            },
            {
                "target": "card/ubuntu24.04-cu128",
                "stack": "demo",
                "device": "card",
                "arch": "x86_64",
                "jetpack": None,
                "cuda": "12.8",
                "runs-on": ["self-hosted", "X64", "card"],
            },
        ]
    }


def test_matrix_table_lists_unused_cells_too(catalogue_dir: Path) -> None:
    (catalogue_dir / "stacks/demo.yaml").write_text(
        (catalogue_dir / "stacks/demo.yaml").read_text().replace("  - card/ubuntu24.04-cu128\n", "")
    )
    lines = run_cli("matrix").out.splitlines()
    assert lines[0].split() == ["STACK", "TARGET", "ARCH", "JETPACK", "CUDA", "RUNS-ON"]
    assert lines[1].split()[:5] == ["demo", "nano/jp6.2-cu126", "aarch64", "6.2", "12.6"]
    assert lines[2].split()[:5] == ["-", "card/ubuntu24.04-cu128", "x86_64", "-", "12.8"]


def test_show_json_names_the_fallback(catalogue_dir: Path) -> None:
    shown = json.loads(run_cli("show", "demo", "--json").out)
    assert shown["targets"]["nano/jp6.2-cu126"]["fastlib"] == {"recipe": "fastlib", "version": "", "problems": []}
    assert shown["targets"]["card/ubuntu24.04-cu128"]["fastlib"] == {
        "recipe": "slowlib",
        "version": "",
        "problems": ["fastlib: no x86 build yet"],
    }


# ---------------------------------------------------------------- the real catalogue


def test_real_catalogue_is_valid() -> None:
    result = run_cli("validate", "--root", str(ROOT))
    assert result.err == ""
    assert result.code == 0


def test_real_matrix_lists_every_stack_target_with_runners() -> None:
    rows = json.loads(run_cli("matrix", "--json", "--root", str(ROOT)).out)["include"]
    expected = {
        ("maie-jetson", "orin-nano-super/jp6.2-cu126"),
        ("forge-thor", "agx-thor/jp7.0-cu130"),
        ("forge-rtx-pro", "rtx-pro-4000-blackwell/ubuntu24.04-cu128"),
        ("vla-orin", "orin-nano-super/jp6.2.1-cu126"),
        ("reference-h200", "h200/ubuntu24.04-cu130"),
    }
    assert {(row["stack"], row["target"]) for row in rows} == expected
    for row in rows:
        assert row["runs-on"] and all(isinstance(label, str) for label in row["runs-on"])
        assert set(row) == {"target", "stack", "device", "arch", "jetpack", "cuda", "runs-on"}
    only = json.loads(run_cli("matrix", "--json", "--stack", "forge-thor", "--root", str(ROOT)).out)["include"]
    assert [(row["target"], row["arch"], row["jetpack"], row["cuda"]) for row in only] == [
        ("agx-thor/jp7.0-cu130", "aarch64", "7.0", "13.0")
    ]


def test_show_maie_jetson_reads_without_the_yaml() -> None:
    text = run_cli("show", "maie-jetson", "--root", str(ROOT)).out
    for fact in [
        "Target orin-nano-super/jp6.2-cu126",
        "102.4 GB/s in 25W (default)",
        "15W 68.3",
        "JetPack 6.2 (L4T 36.4.3), Ubuntu 22.04, CUDA 12.6, cuDNN 9.3.0, TensorRT 10.3.0, Python 3.10",
        "compute capability 8.7",
        "flashinfer-python: MAIE asks for flashinfer-python >=0.5.2",
        "asr-real-time-factor: asr_real_time_factor <= 0.18",
        "llm-decode: llm_decode_tokens_per_s >= 30",
        "peak-memory: peak_memory_gb <= 7",
        "GPU_MEMORY_UTILIZATION=0.85",
        "LLM_MAX_MODEL_LEN=8192",
        "MAX_NUM_SEQS=1",
        "WHISPER_COMPUTE_TYPE=int8_float16",
        "power mode 25W",
    ]:
        assert fact in text, fact
    assert "vllm" in text and "source build of https://github.com/vllm-project/vllm" in text


def test_forge_stacks_use_fallbacks_only_where_needed() -> None:
    thor = json.loads(run_cli("show", "forge-thor", "--json", "--root", str(ROOT)).out)
    assert thor["targets"]["agx-thor/jp7.0-cu130"]["tensorrt-llm"]["recipe"] == "tensorrt-llm"
    rtx = json.loads(run_cli("show", "forge-rtx-pro", "--json", "--root", str(ROOT)).out)
    assert rtx["targets"]["rtx-pro-4000-blackwell/ubuntu24.04-cu128"]["tensorrt-llm"]["recipe"] == "tensorrt-llm"
