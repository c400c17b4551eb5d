"""Ctrl-C and SIGTERM stop `build` with one line and exit 130, and no child outlives it: uv is
stopped with builder, and killed by the kernel if builder itself is killed (real processes)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FIXTURE, ROOT
from tests.faults import FaultyIndex, faulty_index
from tests.test_lock import NANO, Upstreams, standard_wheels
from tests.test_lock import upstreams as upstreams  # the fixture, shared with test_lock

pytestmark = pytest.mark.integration


@pytest.fixture
def hanging(tmp_path: Path, upstreams: Upstreams) -> Iterator[tuple[list[str], FaultyIndex]]:
    """`build lock` whose uv run hangs: the default index never answers for filelock (torch's dependency)."""
    root = tmp_path / "catalogue"
    shutil.copytree(FIXTURE, root)
    standard_wheels(tmp_path / "wheels")
    with faulty_index(tmp_path / "wheels") as index:
        index.fault("filelock", "hang")
        argv = [
            sys.executable, "-m", "builder", "lock", "demo", "--target", NANO, "--root", str(root),
            "--index", f"lab={index.url}", "--index", f"default={index.url}",
            "--image-mirror", f"registry.example={upstreams.registry.url}",
            "--git-mirror", f"https://git.example={upstreams.git.as_uri()}",
            "--cache-dir", str(tmp_path / "cache"),
        ]  # fmt: skip
        yield argv, index


def start(argv: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BUILDER_HTTP_TIMEOUT": "60"}
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_uv(process: subprocess.Popen[str], seconds: float = 60) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for pid in children(process.pid):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "uv":
                return pid
        time.sleep(0.1)
    raise AssertionError("uv never started")


@pytest.mark.parametrize("delay", [0.1, 0.2])
def test_ctrl_c_while_starting_is_one_line(delay: float) -> None:
    """From the first line of builder's code on (Python's own start-up, ~40 ms, is Python's: on a
    loaded machine it takes longer, so the delay counts from when a bare interpreter would be up)."""
    began = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    python_start = time.monotonic() - began
    process = start([sys.executable, "-m", "builder", "validate"])
    time.sleep(python_start + delay)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    if process.returncode == 0 or (process.returncode == -signal.SIGINT and out.startswith("ok: ") and not err):
        # validate finished before the signal, or the signal came while Python was tearing down (when
        # it has given up its handlers); a fast machine, and the other delay covers it
        pytest.skip("validate finished before the signal")
    assert "Traceback" not in err
    assert (process.returncode, err) == (130, "error: interrupted\n"), err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_uv_and_exits_130(hanging: tuple[list[str], FaultyIndex], sig: signal.Signals) -> None:
    argv, _ = hanging
    process = start(argv)
    uv = wait_for_uv(process)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.splitlines()[-1] == "error: interrupted" and "Traceback" not in err
    deadline = time.monotonic() + 20
    while alive(uv) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(uv), "uv outlived builder"


def test_killing_builder_kills_uv(hanging: tuple[list[str], FaultyIndex]) -> None:
    argv, _ = hanging
    process = start(argv)
    uv = wait_for_uv(process)
    process.kill()
    process.communicate(timeout=30)
    deadline = time.monotonic() + 20
    while alive(uv) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(uv), "uv outlived a killed builder"
