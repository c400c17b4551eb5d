#!/usr/bin/env bash
# `build smoke --here` for the reference-h200 stack on an H200 without a container engine (run through
# the project's device tool from the repository root). builder's own dependencies the machine lacks
# (pydantic and its parts, Python 3.12 wheels) travel in .whl/; torch 2.11 and Triton are the machine's.
# Then the runner's GPU tests. Everything lands in $OUT.
set -uo pipefail
out=${OUT:-/tmp/smoke-out}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,power.limit --format=csv | tee "$out/nvidia-smi.csv"
python3 -c 'import torch, triton; print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__)'
python3 -m builder smoke reference-h200 --target h200/ubuntu24.04-cu130 --here \
    --lock-dir tests/fixtures/locks --out "$out" --json >"$out/smoke-stdout.json" 2>"$out/smoke-stderr.log"
echo "build smoke exit $?" | tee "$out/smoke-exit.txt"
tail -25 "$out/smoke-stderr.log"
python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_smoke_runner.py 2>&1 | tail -5 | tee "$out/gpu-tests.txt"
