"""`build smoke`: the runner's spec from the catalogue and the lock, how an image reaches the GPU,
the H200 reference stack's lock, and `--here` on this machine (no GPU: versions and imports are
still checked, and a version that differs from the lock fails with the numbers). The runner's own
arithmetic is tests/test_smoke_runner.py; running it inside the sandbox image, tests/test_stack_e2e.py."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from builder.catalogue.documents import Catalogue
from builder.errors import UsageError
from builder.fsutil import default_cache_dir
from builder.lock.model import ImageLock, read_lock, sha256_text, write_lock
from builder.lock.paths import lock_paths
from builder.pipeline import locked_plan
from builder.smoke.run import CONTAINER_DIR, GpuAccess, HostFacts, container_argv, gpu_access, here_argv
from builder.smoke.spec import IMAGE_RUNNER, RUNNER, locked_versions, smoke_spec
from builder.upstream.options import UpstreamOptions
from builder.validate import load_catalogue
from tests.conftest import ROOT, run_cli
from tests.standins import h200_upstreams
from tests.test_render import attach_locks, copy_catalogue

LOCKS = ROOT / "tests" / "fixtures" / "locks"
MAIE = ("maie-jetson", "orin-nano-super/jp6.2-cu126")
H200 = ("reference-h200", "h200/ubuntu24.04-cu130")


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    """The real catalogue with the committed lock snapshots re-attached to it (as tests/test_render.py does)."""
    root = copy_catalogue(tmp_path_factory.mktemp("catalogue"))
    attach_locks(root)
    shutil.copytree(LOCKS / H200[0], root / "locks" / H200[0])
    return load_catalogue(root)


def _spec(catalogue: Catalogue, stack_name: str, target: str, **options: object) -> dict[str, object]:
    stack = catalogue.stack(stack_name).model
    locks = catalogue.root / "locks"
    plan, lock = locked_plan(catalogue, stack, target, locks, UpstreamOptions(default_cache_dir()), None)
    return smoke_spec(stack, plan, lock, **options)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the spec (pure)


def test_the_spec_holds_the_lock_the_device_and_the_stacks_checks(catalogue: Catalogue) -> None:
    spec = _spec(catalogue, *MAIE)
    lock = read_lock(lock_paths(catalogue.root / "locks", *MAIE))
    assert spec["versions"] == locked_versions(lock)
    versions = spec["versions"]
    assert isinstance(versions, dict) and versions["torch"] == "2.8.0" and versions["ctranslate2"] == "4.7.1"
    assert {"torch", "vllm", "ctranslate2", "faster_whisper"} <= set(spec["imports"])  # type: ignore[call-overload]
    assert spec["device"] == {
        "id": "orin-nano-super", "kind": "jetson", "compute_capability": "8.7", "memory_gb": 8.0,
        "unified_memory": True, "default_power_mode": "25W",
        "power_modes": [
            {"name": "15W", "memory_bandwidth_gbps": 68.3}, {"name": "25W", "memory_bandwidth_gbps": 102.4},
            {"name": "MAXN_SUPER", "memory_bandwidth_gbps": 102.4}, {"name": "7W", "memory_bandwidth_gbps": 68.3},
        ],
    }  # fmt: skip
    assert spec["power_mode"] == "25W"  # the stack's runtime.power_mode
    assert spec["checks"] == [
        {"name": "asr-real-time-factor", "metric": "asr_real_time_factor", "max": 0.18,
         "model": "faster-whisper, int8_float16"},
        {"name": "llm-decode", "metric": "llm_decode_tokens_per_s", "min": 30, "model": "Qwen3-4B-AWQ through vLLM, batch 1"},
        {"name": "peak-memory", "metric": "peak_memory_gb", "max": 7},
    ]  # fmt: skip
    assert spec["lock_checksum"] == lock.checksum


def test_the_runner_reads_the_spec_builder_writes(catalogue: Catalogue) -> None:
    from builder.smoke import runner  # imports without torch, as it must inside images that lack it

    parsed = runner.parse_spec(_spec(catalogue, *MAIE, power_mode="MAXN_SUPER"))
    assert parsed.device is not None and parsed.device.bandwidth("15W") == 68.3
    assert parsed.power_mode == "MAXN_SUPER"
    assert [(c.name, c.min, c.max) for c in parsed.checks] == [
        ("asr-real-time-factor", None, 0.18),
        ("llm-decode", 30.0, None),
        ("peak-memory", None, 7.0),
    ]
    h200 = runner.parse_spec(_spec(catalogue, *H200))
    assert {c.name: c.roofline_min for c in h200.checks}["llama-2-7b-int4-decode"] == 0.30
    shape = runner.find_shape(h200.checks[0].model or "")
    assert shape is not None and shape.name == "llama-2-7b"
    assert runner.quant_from_text(h200.checks[1].model or "") == "bf16"


def test_a_power_mode_the_device_lacks_is_refused(catalogue: Catalogue) -> None:
    with pytest.raises(UsageError, match=r"--power-mode '60W' is not a power mode of orin-nano-super \(its modes: 15W"):
        _spec(catalogue, *MAIE, power_mode="60W")


def test_a_model_no_check_names_is_refused(catalogue: Catalogue) -> None:
    assert _spec(catalogue, *MAIE, models={"Qwen3-4B-AWQ": "/models/q"})["models"] == {"Qwen3-4B-AWQ": "/models/q"}
    with pytest.raises(UsageError, match="--model llama: no smoke check of maie-jetson names it"):
        _spec(catalogue, *MAIE, models={"llama": "/m"})


# ---------------------------------------------------------------- how the runner is started (pure)


@pytest.mark.parametrize(
    ("engine", "host", "flags"),
    [
        ("docker", HostFacts(tegra=True, nvidia_devices=False, cdi=False), ("--runtime", "nvidia")),
        ("docker", HostFacts(tegra=False, nvidia_devices=True, cdi=True), ("--gpus", "all")),
        ("docker", HostFacts(tegra=False, nvidia_devices=False, cdi=False), ()),
        ("podman", HostFacts(tegra=False, nvidia_devices=True, cdi=True), ("--device", "nvidia.com/gpu=all")),
        ("podman", HostFacts(tegra=True, nvidia_devices=False, cdi=False), ()),
    ],
)
def test_gpu_access_per_engine_and_host(engine: str, host: HostFacts, flags: tuple[str, ...]) -> None:
    assert gpu_access(engine, host).flags == flags  # type: ignore[arg-type]


def test_host_facts_read_the_files_that_say_so(tmp_path: Path) -> None:
    assert HostFacts.read(tmp_path) == HostFacts(False, False, False)
    (tmp_path / "etc/cdi").mkdir(parents=True)
    (tmp_path / "etc/cdi/nvidia.yaml").write_text("cdiVersion: 0.5.0\n")
    (tmp_path / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.3\n")
    assert HostFacts.read(tmp_path) == HostFacts(True, False, True)


def test_the_container_runs_offline_with_the_images_own_runner(tmp_path: Path) -> None:
    argv = container_argv(
        "docker", GpuAccess(("--gpus", "all"), "test"), "reg.lan/x@sha256:" + "a" * 64, tmp_path,
        {"qwen": Path("/srv/models/qwen")}, "linux/arm64",
    )  # fmt: skip
    assert argv[:7] == ["docker", "run", "--rm", "--gpus", "all", "--network", "none"]
    assert argv[argv.index("--platform") : argv.index("--platform") + 2] == ["--platform", "linux/arm64"]
    assert f"{tmp_path}:{CONTAINER_DIR}" in argv and "/srv/models/qwen:/models/qwen:ro" in argv
    script = argv[argv.index("-c") + 1]
    assert script.startswith(f"r={IMAGE_RUNNER};") and f"{CONTAINER_DIR}/runner.py" in script
    assert argv[-6:] == ["--spec", "/smoke/spec.json", "--out", "/smoke/smoke.json", "--work-dir", "/tmp/smoke-work"]
    here = here_argv(tmp_path, "/usr/bin/python3")
    assert here[:2] == ["/usr/bin/python3", str(RUNNER)] and here[-1] == str(tmp_path / "work")


@pytest.mark.integration
def test_the_runner_runs_where_torch_is_missing(tmp_path: Path) -> None:
    """An image without torch still gets its versions and imports checked; the rest is 'not run', exit 3."""
    import importlib.metadata
    import subprocess
    import sys

    spec = {
        "versions": {"packaging": importlib.metadata.version("packaging"), "pyyaml": "0.0.1"},
        "imports": ["json", "no_such_module"],
        "checks": [{"name": "llm", "metric": "llm_decode_tokens_per_s", "min": 1, "model": "Qwen3-4B int4"}],
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    shutil.copy(RUNNER, tmp_path / "runner.py")
    block = "import runpy, sys; sys.modules['torch'] = None; sys.argv[0] = 'runner.py'; runpy.run_path('runner.py', run_name='__main__')"
    done = subprocess.run(
        [sys.executable, "-c", block, "--spec", "spec.json", "--out", "smoke.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    checks = {c["name"]: c for c in json.loads((tmp_path / "smoke.json").read_text())["checks"]}
    assert checks["version:packaging"]["status"] == "pass" and checks["version:pyyaml"]["status"] == "fail"
    assert checks["import:json"]["status"] == "pass" and checks["import:no_such_module"]["status"] == "fail"
    assert checks["llm"]["status"] == "not run" and checks["llm"]["reason"] == "no GPU: torch is not importable"


# ---------------------------------------------------------------- the H200 reference stack's lock


def _portable(lock_dir: Path, index_url: str) -> None:
    """The lock as committed: the stand-in index's loopback address replaced by standin.example, and
    without the digests of what the resolver was offered (they hash that address)."""
    paths = lock_paths(lock_dir, *H200)
    pylock = paths.pylock.read_text().replace(index_url.removesuffix("simple/"), "https://standin.example/")
    image = ImageLock.model_validate(
        json.loads(paths.image_lock.read_text().replace(index_url.removesuffix("simple/"), "https://standin.example/"))
    )
    packages = [decision.model_copy(update={"candidates": None}) for decision in image.packages]
    write_lock(paths, image.model_copy(update={"pylock_sha256": sha256_text(pylock), "packages": packages}), pylock)


@pytest.mark.integration
def test_the_reference_h200_lock_is_what_locking_gives(tmp_path: Path) -> None:
    """The committed lock the H200 run used is reproducible: lock against the stand-ins again
    (BUILDER_UPDATE_LOCKS=1 rewrites it)."""
    with h200_upstreams(tmp_path / "up") as up:
        locked = run_cli(
            "lock", H200[0], "--root", str(ROOT), "--lock-dir", str(tmp_path / "locks"), *up.lock_args(),
            "--index", f"default={up.index.url}", "--cache-dir", str(tmp_path / "cache"),
        )  # fmt: skip
        assert locked.code == 0, locked.err
        _portable(tmp_path / "locks", up.index.url)
    made = lock_paths(tmp_path / "locks", *H200).directory
    committed = lock_paths(LOCKS, *H200).directory
    if os.environ.get("BUILDER_UPDATE_LOCKS"):
        shutil.rmtree(committed, ignore_errors=True)
        shutil.copytree(made, committed)
    assert {p.name: p.read_text() for p in made.iterdir()} == {p.name: p.read_text() for p in committed.iterdir()}
    lock = read_lock(lock_paths(LOCKS, *H200))
    assert {d.package: d.version for d in lock.image.packages} == {"torch": "2.11.0", "triton": "3.6.0"}
    assert locked_versions(lock) == {"torch": "2.11.0", "triton": "3.6.0"}  # nothing else of the device is pinned


# ---------------------------------------------------------------- `build smoke --here` here (no GPU)


@pytest.mark.integration
def test_here_without_a_gpu_fails_a_version_that_differs_from_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This machine's torch (a CPU build, or none) is not the locked 2.11.0: exit 1 with the numbers;
    the GPU checks are reported as not run, and smoke.json is written all the same, its section
    appended to a CI job's summary."""
    summary = tmp_path / "step-summary.md"
    summary.write_text("### an earlier step\n\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    done = run_cli(
        "smoke", *H200[:1], "--target", H200[1], "--here", "--root", str(ROOT), "--lock-dir", str(LOCKS),
        "--out", str(tmp_path / "out"), "--json",
    )  # fmt: skip
    assert done.code == 1, done.err
    report = json.loads(done.out)
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["version:torch"]["status"] == "fail" and checks["version:torch"]["threshold"] == "== 2.11.0"
    assert f"error: smoke check version:torch failed: {checks['version:torch']['value']}" in done.err
    assert checks["memory-bandwidth"]["status"] == "not run" and "no GPU" in checks["memory-bandwidth"]["reason"]
    assert checks["llama-2-7b-int4-decode"]["status"] == "not run"
    assert report["builder"]["mode"] == "here" and report["builder"]["lock-checksum"].startswith("sha256:")
    on_disk = json.loads((tmp_path / "out" / "smoke.json").read_text())
    assert on_disk["checks"] == report["checks"] and (tmp_path / "out" / "smoke.log").is_file()
    assert "Traceback" not in done.err
    page = summary.read_text()
    assert (
        page.startswith("### an earlier step")
        and "### smoke: reference-h200 on h200/ubuntu24.04-cu130: no gpu ❌" in page
    )
    assert f"| version:torch | ❌ fail | {checks['version:torch']['value']} | == 2.11.0 |" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--here", "--power-mode", "60W"], "--power-mode '60W' is not a power mode of h200 (its modes: 700W)"),
        (
            ["--here", "--model", "llama-2-7b=/nonexistent/dir"],
            "--model llama-2-7b=/nonexistent/dir: no such directory",
        ),
        (["--here", "--model", "llama"], "--model expects NAME=VALUE, got 'llama'"),
        (["--here", "--sign-key", "cosign.key"], "--sign-key attaches the result to an image: it needs --image"),
        (["--image", "maie:v1"], "IMAGE 'maie:v1' is not an image reference"),
    ],
)
def test_bad_smoke_inputs_are_one_line_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    done = run_cli(
        "smoke", H200[0], "--target", H200[1], *args, "--root", str(ROOT), "--lock-dir", str(LOCKS),
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert done.code == 2, done.err
    assert message in done.err and len(done.err.strip().splitlines()) <= 2  # the error, and maybe a hint
    assert not (tmp_path / "out").exists()


def test_no_lock_is_a_failed_check(tmp_path: Path) -> None:
    done = run_cli("smoke", H200[0], "--target", H200[1], "--here", "--root", str(ROOT), "--lock-dir", str(tmp_path))
    assert done.code == 1 and "no lock for reference-h200 on h200/ubuntu24.04-cu130" in done.err
