#!/usr/bin/env bash
# One device call: calibrate the decode-path variants, then run the smoke runner once per configuration
# with the fastest consistent variant, then vla-orin-shaped latency checks. Needs runner.py, calibrate.py,
# h200-spec.json and vla-spec.json beside it; writes to $OUT (the device tool's output folder).
set -u
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory,power.limit --format=csv
python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
timeout "${CALIBRATE_S:-250}" python3 calibrate.py "$OUT" > "$OUT/calibrate.log" 2>&1
grep -v -i warn "$OUT/calibrate.log" | tail -16
for cfg in llama-2-7b:int4 qwen3-4b:int4 llama-2-7b:bf16 qwen3-4b:bf16; do
  opts=$(python3 calibrate.py --best "$OUT/calibrate.json" "$cfg")
  echo "== $cfg $opts"
  # shellcheck disable=SC2086
  timeout "${RUN_S:-60}" python3 runner.py --spec h200-spec.json --llm "$cfg" $opts --out "$OUT/smoke-${cfg/:/-}.json" 2>&1 | grep -v -i warn | tail -12
done
echo "== vla-shaped latency checks"
timeout "${VLA_S:-50}" python3 runner.py --spec vla-spec.json --out "$OUT/smoke-vla-latency.json" 2>&1 | grep -v -i warn | tail -8
