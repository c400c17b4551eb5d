"""Plan and render: golden outputs, hadolint, the pixi and compose schemas, a toolchain-free runtime."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

from builder.errors import BuilderError
from builder.lock.inputs import checksums, input_files, overall
from builder.lock.model import ImageLock, LockInputs, current_lock, read_lock, sha256_text, write_lock
from builder.lock.paths import lock_paths
from builder.plan.stages import _waves, make_plan
from builder.render.files import HADOLINT_IGNORES, dockerfile
from builder.validate import load_catalogue
from tests.conftest import ROOT, run_cli
from tests.standins import JetsonUpstreams, jetson_upstreams

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

FIXTURE_LOCKS = ROOT / "tests" / "fixtures" / "locks"
GOLDEN = ROOT / "tests" / "golden"
SCHEMAS = ROOT / "tests" / "fixtures" / "schemas"
GOLDEN_CASES = [
    ("maie-jetson", "orin-nano-super/jp6.2-cu126"),
    ("forge-rtx-pro", "rtx-pro-4000-blackwell/ubuntu24.04-cu128"),
]
EVERY = [
    ("maie-jetson", "orin-nano-super/jp6.2-cu126"),
    ("vla-orin", "orin-nano-super/jp6.2.1-cu126"),
    ("forge-thor", "agx-thor/jp7.0-cu130"),
    ("forge-rtx-pro", "rtx-pro-4000-blackwell/ubuntu24.04-cu128"),
]
TOOLCHAIN = re.compile(r"\b(build-essential|gcc|g\+\+|clang|cmake|ninja|nvcc|[\w.+-]+-dev)\b")


def copy_catalogue(root: Path) -> Path:
    for name in ("matrix", "recipes", "stacks"):
        shutil.copytree(ROOT / name, root / name)
    return root


def attach_locks(root: Path) -> None:
    """Put the committed lock snapshots under root/locks, re-attached to the current catalogue files."""
    catalogue = load_catalogue(root)
    for stack, target in GOLDEN_CASES:
        directory = root / "locks" / stack / target
        shutil.copytree(FIXTURE_LOCKS / stack / target, directory)
        image = ImageLock.model_validate_json((directory / "image-lock.json").read_text())
        files = checksums(root, input_files(catalogue, catalogue.stacks[stack].model, target))
        image = image.model_copy(update={"inputs": LockInputs(checksum=overall(files), files=files)}).sealed()
        (directory / "image-lock.json").write_text(image.to_text())


@pytest.fixture
def locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = copy_catalogue(tmp_path / "catalogue")
    attach_locks(root)
    monkeypatch.chdir(root)
    return root


def tree(directory: Path) -> dict[str, bytes]:
    """Every file but the smoke runner, which is builder's own file (checked byte for byte apart)."""
    files = {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}
    runner = files.pop("smoke/runner.py", None)
    assert runner in (None, (ROOT / "builder" / "smoke" / "runner.py").read_bytes())
    return files


def stage(dockerfile: str, name: str) -> str:
    """The text of one stage, from its FROM line to the next."""
    match = re.search(rf"^FROM \S+ AS {re.escape(name)}\n(.*?)(?=^FROM |\Z)", dockerfile, re.M | re.S)
    assert match, f"no stage {name}"
    return match.group(0)


# ---------------------------------------------------------------- golden files


@pytest.mark.parametrize(("stack", "target"), GOLDEN_CASES)
def test_render_matches_golden_files(locked: Path, tmp_path: Path, stack: str, target: str) -> None:
    out = tmp_path / "out"
    result = run_cli("render", stack, "--target", target, "--out", str(out))
    assert result.code == 0, result.err
    golden = GOLDEN / stack / target.replace("/", "__")
    if os.environ.get("BUILDER_UPDATE_GOLDEN"):
        shutil.rmtree(golden, ignore_errors=True)
        shutil.copytree(out, golden, ignore=shutil.ignore_patterns("runner.py"))  # builder's own file
    assert tree(out) == tree(golden), "render output changed: rerun with BUILDER_UPDATE_GOLDEN=1 if intended"


def test_rendering_twice_is_byte_identical(locked: Path, tmp_path: Path) -> None:
    stack, target = GOLDEN_CASES[0]
    assert run_cli("render", stack, "--target", target, "--out", str(tmp_path / "a")).code == 0
    assert run_cli("render", stack, "--target", target, "--out", str(tmp_path / "b")).code == 0
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert run_cli("render", stack, "--target", target, "--out", str(tmp_path / "a")).code == 0  # replaces in place
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging directories left


# ---------------------------------------------------------------- what the Dockerfile promises


def test_runtime_stage_has_no_toolchain_and_checks_hashes(locked: Path, tmp_path: Path) -> None:
    stack, target = GOLDEN_CASES[0]
    assert run_cli("render", stack, "--target", target, "--out", str(tmp_path / "out")).code == 0
    dockerfile = (tmp_path / "out" / "Dockerfile").read_text()
    lock = json.loads((locked / "locks" / stack / target / "image-lock.json").read_text())
    runtime_digest = lock["base-images"]["runtime"]["digest"]
    assert f"FROM nvcr.io/nvidia/l4t-tensorrt@{runtime_digest} AS base-runtime" in dockerfile
    runtime = stage(dockerfile, "runtime") + stage(dockerfile, "app")
    assert not TOOLCHAIN.search(runtime), TOOLCHAIN.search(runtime)
    assert "base-devel" not in runtime
    assert "--no-install-recommends" in runtime and "rm -rf /var/lib/apt/lists/*" in runtime
    assert "pip install --no-cache-dir --no-index --require-hashes --no-deps --only-binary=:all: -r" in runtime
    assert "sha256sum --check --strict /wheels/ctranslate2.sha256" in runtime
    mounted = "--mount=type=bind,from=wheels-ctranslate2,source=/wheels/ctranslate2,target=/wheels/ctranslate2 "
    assert mounted in runtime and "--mount=type=bind,source=requirements.txt," in runtime
    assert not re.search(r"^(COPY|ADD)\b", stage(dockerfile, "runtime"), re.M)  # nothing copied only to be deleted
    assert re.search(r"^USER 10001:10001$", stage(dockerfile, "app"), re.M)
    builder = stage(dockerfile, "build-ctranslate2")
    assert "FROM base-devel AS build-ctranslate2" in builder
    assert (
        "--mount=type=cache,target=/root/.cache/ccache" in builder
        and "--mount=type=cache,target=/root/.cache/pip" in builder
    )
    assert "MAX_JOBS=3" in builder and "ARG BUILDKIT_SBOM_SCAN_STAGE=true" in builder
    assert f"checkout --quiet --detach {lock['packages'][4]['commit']}" in builder
    requirements = (tmp_path / "out" / "requirements.txt").read_text().splitlines()
    assert all(
        re.fullmatch(r"[a-z0-9._-]+ @ https://\S+\.whl --hash=sha256:[0-9a-f]{64}", line) for line in requirements
    )
    assert not any(line.startswith("ctranslate2 ") for line in requirements)  # built, not downloaded


def test_secrets_are_mounted_never_baked(locked: Path, tmp_path: Path) -> None:
    stack, target = GOLDEN_CASES[0]
    assert run_cli("render", stack, "--target", target, "--out", str(tmp_path / "out")).code == 0
    dockerfile = (tmp_path / "out" / "Dockerfile").read_text()
    assert "--mount=type=secret,id=ca-bundle,required=false" in dockerfile
    assert "--mount=type=secret,id=netrc,target=/root/.netrc,required=false" in dockerfile
    assert not re.search(r"^(ARG|ENV)\b.*(PASSWORD|TOKEN=|SECRET|CERT)", dockerfile, re.M)
    assert not re.search(r"^(COPY|ADD)\b.*(\.pem|\.crt|netrc)", dockerfile, re.M)
    # the CA only ever lives for the one RUN that uses it
    for run in re.findall(r"^RUN .*?(?<!\\)\n", dockerfile, re.M | re.S):
        if "99builder-ca;" in run:
            assert "rm -f /etc/apt/apt.conf.d/99builder-ca" in run or "/etc/apt/apt.conf.d/99builder-ca \\" in run


def test_labels_bake_and_compose(locked: Path, tmp_path: Path) -> None:
    stack, target = GOLDEN_CASES[0]
    assert run_cli("render", stack, "--target", target, "--out", str(tmp_path / "out")).code == 0
    out = tmp_path / "out"
    dockerfile = (out / "Dockerfile").read_text()
    lock = json.loads((locked / "locks" / stack / target / "image-lock.json").read_text())
    for label in (
        f'builder.lock-checksum="{lock["inputs"]["checksum"]}"',
        'builder.jetpack="6.2"',
        'builder.cuda="12.6"',
        'builder.target="orin-nano-super/jp6.2-cu126"',
        "org.opencontainers.image.base.digest=",
        'GPU_MEMORY_UTILIZATION="0.85"',
    ):
        assert label in dockerfile
    bake = json.loads((out / "docker-bake.json").read_text())
    assert set(bake["target"]) == {"build-ctranslate2", "runtime", "app"}
    assert bake["target"]["build-ctranslate2"]["args"] == {"BUILDKIT_SBOM_SCAN_STAGE": "true"}
    assert all(t["platforms"] == ["linux/arm64"] for t in bake["target"].values())
    assert bake["target"]["app"]["contexts"] == {"build-ctranslate2": "target:build-ctranslate2"}
    assert all(t["cache-from"] and t["cache-to"] for t in bake["target"].values())
    service = yaml.safe_load((out / "compose.yaml").read_text())["services"]["maie-jetson"]
    assert service["runtime"] == "nvidia"
    assert service["environment"]["MAX_NUM_SEQS"] == "1"
    assert "import ctranslate2, faster_whisper" in service["healthcheck"]["test"][-1]


@pytest.mark.parametrize(("stack", "target"), GOLDEN_CASES)
def test_outputs_match_pixi_and_compose_schemas(locked: Path, tmp_path: Path, stack: str, target: str) -> None:
    assert run_cli("render", stack, "--target", target, "--out", str(tmp_path / "out")).code == 0
    validate_outputs(tmp_path / "out")


def validate_outputs(out: Path) -> None:
    compose_schema = json.loads((SCHEMAS / "compose-spec.schema.json").read_text())
    jsonschema.validate(
        yaml.safe_load((out / "compose.yaml").read_text()), compose_schema, cls=jsonschema.Draft7Validator
    )
    if (out / "pixi.toml").exists():
        pixi_schema = json.loads((SCHEMAS / "pixi-manifest.schema.json").read_text())
        jsonschema.validate(tomllib.loads((out / "pixi.toml").read_text()), pixi_schema, cls=jsonschema.Draft7Validator)


# ---------------------------------------------------------------- plans and refusals


def test_plan_shows_stages_keys_and_estimates(locked: Path) -> None:
    stack, target = GOLDEN_CASES[0]
    text = run_cli("plan", stack, "--target", target).out
    assert re.search(r"build-ctranslate2  wave 1: https://github.com/OpenNMT/CTranslate2 v4.7.1 \([0-9a-f]{12}\), "
                     r"MAX_JOBS=3 NVCC_THREADS=1, ~20 min, ~6 GB peak, key sha256:[0-9a-f]{12}", text)  # fmt: skip
    assert "estimate: 20 min of source builds in 1 wave(s), peak 6 GB of 6 GB build memory" in text
    assert "the image build waits for the last wave: it leaves no room for the runtime stage" in text
    roomy = run_cli("plan", stack, "--target", target, "--build-memory", "24").out
    assert "the image build starts with the last wave (BuildKit engines)" in roomy
    data = json.loads(run_cli("plan", stack, "--target", target, "--json").out)
    assert data["stages"]["waves"] == [["build-ctranslate2"]]
    assert data["stages"]["builders"][0]["max_jobs"] == 3
    small = json.loads(run_cli("plan", stack, "--target", target, "--json", "--build-memory", "4").out)
    assert small["stages"]["builders"][0]["max_jobs"] == 2  # 4 GB at 2 GB per compile job


def test_a_build_that_cannot_fit_fails_with_the_numbers(locked: Path, tmp_path: Path) -> None:
    stack, target = GOLDEN_CASES[0]
    result = run_cli("render", stack, "--target", target, "--out", str(tmp_path / "out"), "--build-memory", "1.5")
    assert result.code == 2
    assert result.errors == [
        "error: ctranslate2 cannot be built on orin-nano-super/jp6.2-cu126: one compile job needs 2 GB, "
        "the build memory is 1.5 GB (cell build_memory_gb 6; --build-memory overrides it)"
    ]
    assert not (tmp_path / "out").exists()


def test_render_refuses_a_stale_or_missing_lock(locked: Path, tmp_path: Path) -> None:
    stack, target = GOLDEN_CASES[0]
    recipe = locked / "recipes/vllm.yaml"
    recipe.write_text(recipe.read_text() + "\n")
    stale = run_cli("render", stack, "--target", target, "--out", str(tmp_path / "out"))
    assert stale.code == 1
    assert stale.errors == [
        f"error: the lock for {stack} on {target} is out of date: input recipes/vllm.yaml changed since the lock "
        f"(hint: run 'build lock {stack} --target {target}')"
    ]
    missing = run_cli("render", "vla-orin", "--target", "orin-nano-super/jp6.2.1-cu126", "--out", str(tmp_path / "out"))
    assert missing.code == 1
    assert missing.errors[0].startswith("error: no lock for vla-orin on orin-nano-super/jp6.2.1-cu126 at ")


def test_waves_respect_dependencies_and_memory() -> None:
    stages = [("a", [], 4.0), ("b", [], 3.0), ("c", ["a"], 2.0), ("d", [], 2.0)]
    assert _waves(stages, 6.0) == [["a", "d"], ["b", "c"]]
    assert _waves(stages, 20.0) == [["a", "b", "d"], ["c"]]
    with pytest.raises(BuilderError, match="cycle"):
        _waves([("x", ["y"], 1.0), ("y", ["x"], 1.0)], 8.0)


def test_later_waves_wait_for_earlier_ones_in_the_dockerfile(locked: Path, tmp_path: Path) -> None:
    stack, target = GOLDEN_CASES[0]
    # Pretend the index lacked torchcodec: a second source build, locked as `build lock` would lock it.
    lock = read_lock(lock_paths(locked / "locks", stack, target))
    source = {"kind": "source", "source": "https://github.com/pytorch/torchcodec", "ref": "v0.7.0", "commit": "a" * 40}
    packages = [
        d.model_copy(update={**source, "filename": None, "url": None, "sha256": None})
        if d.recipe == "torchcodec"
        else d
        for d in lock.image.packages
    ]
    head, *blocks = lock.pylock.split("\n[[packages]]\n")
    blocks = [b for b in blocks if not b.startswith('name = "torchcodec"')]
    vcs = 'vcs = { type = "git", url = "https://github.com/pytorch/torchcodec", requested-revision = "v0.7.0"'
    pylock = (
        "\n[[packages]]\n".join([head, *blocks])
        + f'\n[[packages]]\nname = "torchcodec"\nversion = "0.7.0"\n{vcs}, commit-id = "{"a" * 40}" }}\n'
    )
    builds = {**lock.build_pylocks, "torchcodec": lock.build_pylocks["ctranslate2"]}
    image = lock.image.model_copy(update={"packages": packages, "pylock_sha256": sha256_text(pylock)})
    write_lock(lock.paths, image, pylock, builds)
    data = json.loads(run_cli("plan", stack, "--target", target, "--json").out)["stages"]
    assert data["waves"] == [["build-ctranslate2"], ["build-torchcodec"]]  # 6 GB + 6 GB > 6 GB
    assert data["estimated_peak_gb"] == 6
    assert run_cli("render", stack, "--target", target, "--out", str(tmp_path / "out")).code == 0
    dockerfile = (tmp_path / "out" / "Dockerfile").read_text()
    assert "COPY --from=build-ctranslate2 /wheels/ctranslate2.sha256 /tmp/after/" in stage(
        dockerfile, "build-torchcodec"
    )
    wide = json.loads(run_cli("plan", stack, "--target", target, "--json", "--build-memory", "24").out)["stages"]
    assert wide["waves"] == [["build-ctranslate2", "build-torchcodec"]]


# ---------------------------------------------------------------- real tools


@pytest.mark.integration
@pytest.mark.parametrize(("stack", "target"), GOLDEN_CASES)
def test_golden_dockerfiles_pass_hadolint(stack: str, target: str) -> None:
    ignores = [arg for rule in HADOLINT_IGNORES for arg in ("--ignore", rule)]
    dockerfile = GOLDEN / stack / target.replace("/", "__") / "Dockerfile"
    result = subprocess.run(["hadolint", *ignores, str(dockerfile)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_builders_mount_the_wheels_they_need_whether_built_or_cached(locked: Path, tmp_path: Path) -> None:
    """A builder stage that installs another's wheels mounts them (from that stage, or from the
    context when the wheel cache had them); a later wave waits only for a stage that is built."""
    stack, target = GOLDEN_CASES[0]
    catalogue = load_catalogue(locked)
    model = catalogue.stacks[stack].model
    plan = make_plan(catalogue, model, target, current_lock(catalogue, model, target, locked / "locks"))
    first = plan.builders[0]
    needs = dataclasses.replace(first, name="build-needs", recipe="needs", needs_built=[first.name], after=[])
    waits = dataclasses.replace(first, name="build-waits", recipe="waits", needs_built=[], after=[first.name])
    plan = dataclasses.replace(plan, builders=[first, needs, waits])
    built = dockerfile(plan, catalogue, model)
    cached = dockerfile(plan, catalogue, model, frozenset({first.recipe}))
    wheels = f"/wheels/{first.recipe}"
    # Built or cached, the mount is the same text (so the engine's cache holds across the two):
    # from the wheels stage, which copies them from the builder stage or from the context.
    source = f"from=wheels-{first.recipe},source={wheels}"
    assert f"COPY --from={first.name} /wheels/ /wheels/" in stage(built, f"wheels-{first.recipe}")
    assert f"COPY prebuilt/{first.recipe}/wheels/ /wheels/" in stage(cached, f"wheels-{first.recipe}")
    for text in (built, cached):
        installs = stage(text, "build-needs")
        assert f"--mount=type=bind,{source},target={wheels} " in installs
        assert f"--mount=type=bind,{source}.sha256,target={wheels}.sha256 " in installs
        assert f"sha256sum --check --strict {wheels}.sha256" in installs
        assert not re.search(r"^(COPY|ADD)\b", installs, re.M)
        (tmp_path / "Dockerfile").write_text(text)
        ignores = [arg for rule in HADOLINT_IGNORES for arg in ("--ignore", rule)]
        lint = subprocess.run(["hadolint", *ignores, str(tmp_path / "Dockerfile")], capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout
    assert f"COPY --from={first.name} {wheels}.sha256 /tmp/after/" in stage(built, "build-waits")
    # The runtime stage: apt and venv, the locked wheels (no wheel mounted, so they need no source
    # build), then every built wheel in one step.
    runtime = stage(built, "runtime")
    steps = re.findall(r"^RUN .*?(?=^\S|\Z)", runtime, re.M | re.S)
    assert len(steps) == 3 and "/wheels" not in steps[1] and "runtime-requirements.txt" in steps[1]
    for builder in plan.builders:
        assert f"--mount=type=bind,from=wheels-{builder.recipe},source=/wheels/{builder.recipe}," in steps[2]
        assert f"pip install --no-cache-dir --no-index --no-deps /wheels/{builder.recipe}/*.whl" in steps[2]
    assert "/tmp/after/" not in cached and f"AS {first.name}" not in cached  # nothing to wait for


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JetsonUpstreams]:
    with jetson_upstreams(tmp_path_factory.mktemp("every")) as started:
        yield started


@pytest.mark.integration
@pytest.mark.parametrize(("stack", "target"), EVERY)
def test_every_stack_and_target_locks_plans_and_renders(
    upstreams: JetsonUpstreams, tmp_path: Path, stack: str, target: str
) -> None:
    root = copy_catalogue(tmp_path / "catalogue")
    common = ["--root", str(root), *upstreams.lock_args(), "--cache-dir", str(tmp_path.parent / "every-cache")]
    locked = run_cli("lock", stack, "--target", target, *common)
    assert locked.code == 0, locked.err
    plan = run_cli("plan", stack, "--target", target, *common)
    assert plan.code == 0, plan.err
    assert "estimate:" in plan.out
    out = tmp_path / "out"
    rendered = run_cli("render", stack, "--target", target, "--out", str(out), *common)
    assert rendered.code == 0, rendered.err
    ignores = [arg for rule in HADOLINT_IGNORES for arg in ("--ignore", rule)]
    lint = subprocess.run(["hadolint", *ignores, str(out / "Dockerfile")], capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout
    validate_outputs(out)
    dockerfile = (out / "Dockerfile").read_text()
    assert not TOOLCHAIN.search(stage(dockerfile, "runtime") + stage(dockerfile, "app"))
