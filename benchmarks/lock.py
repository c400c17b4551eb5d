"""Cold and warm `build lock` times for maie-jetson against stand-in upstreams, measured side by side.

Cold: no lock and an empty cache (index pages, manifests, git refs and uv's cache all fetched).
Warm: the same command again: the cache revalidates, and as inputs, heavy packages and image
digests are unchanged, the locked environment is kept without running uv.
Warm --upgrade: the same cache, but the environment is re-resolved with uv.
The pure-Python rest of the environment resolves from this machine's pip configuration.

    python benchmarks/lock.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.standins import jetson_upstreams  # noqa: E402

TARGET = "orin-nano-super/jp6.2-cu126"


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as scratch, jetson_upstreams(Path(scratch) / "upstreams") as upstreams:
        base = [sys.executable, "-m", "builder", "lock", "maie-jetson", "--target", TARGET, "--root", str(ROOT)]
        base += upstreams.lock_args()
        cold, warm, upgrade = [], [], []
        for run in range(runs):
            state = [
                "--cache-dir",
                str(Path(scratch) / f"cache-{run}"),
                "--lock-dir",
                str(Path(scratch) / f"locks-{run}"),
            ]
            cold.append(timed([*base, *state]))
            warm.append(timed([*base, *state]))
            upgrade.append(timed([*base, *state, "--upgrade"]))
    print(f"build lock maie-jetson --target {TARGET}, {runs} runs each")
    for label, times in (("cold", cold), ("warm", warm), ("warm --upgrade", upgrade)):
        print(f"  {label:15} median {statistics.median(times):6.2f} s  (min {min(times):.2f}, max {max(times):.2f})")
    print(f"  cold / warm: {statistics.median(cold) / statistics.median(warm):.1f}x")
    print(f"  cold / warm --upgrade: {statistics.median(cold) / statistics.median(upgrade):.1f}x")


if __name__ == "__main__":
    main()
