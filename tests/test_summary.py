"""The job summary: markdown from result.json, `build verify --json`, smoke.json and `lock --check`
(every number shown is the number given), appended to $GITHUB_STEP_SUMMARY by the commands; and
`build verify --keyless` (cosign's commands and verdicts; the refusals that need no cosign)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builder.cli.stepsummary import append_step_summary
from builder.summary import build_summary, cell, code, lock_summary, smoke_summary, verify_summary
from builder.verify import SMOKE, Identity, keyless_checks, keyless_commands
from tests.conftest import run_cli

DIGEST = "sha256:" + "ab" * 32
RESULT: dict[str, Any] = {
    "stack": "maie-jetson",
    "target": "orin-nano-super/jp6.2-cu126",
    "platform": "linux/arm64",
    "engine": {"name": "docker", "version": "26.1.5"},
    "lock-checksum": "sha256:" + "cd" * 32,
    "image": {
        "repository": "registry.example:5000/team/maie",
        "tags": ["registry.example:5000/team/maie:orin-nano-super-jp6.2-cu126"],
        "digest": DIGEST,
        "reference": f"registry.example:5000/team/maie@{DIGEST}",
        "stored": "registry",
    },
    "sizes": {"layers_bytes": 4_321_987_654, "base_bytes": 3_000_123_456, "added_bytes": 1_321_864_198, "layers": 17},
    "stages": [
        {"name": "build-ctranslate2", "seconds": 0.0, "cached": True, "log": None, "engine_cached_steps": 0},
        {"name": "build-vllm", "seconds": 1834.57, "cached": False, "log": "x.log", "engine_cached_steps": 0},
        {"name": "runtime+app", "seconds": 312.25, "cached": False, "log": "y.log", "engine_cached_steps": 3},
    ],
    "wheel_cache": {
        "ctranslate2": {"key": "sha256:" + "11" * 32, "cache_hit": True, "wheels": ["ct2.whl"], "published": False},
        "vllm": {"key": "sha256:" + "22" * 32, "cache_hit": False, "wheels": ["vllm.whl"], "published": True},
    },
    "started": "2026-01-02T03:04:05Z",
    "finished": "2026-01-02T03:40:00Z",
    "seconds": 2153.49,
    "sbom": {
        "paths": {"spdx": "out/m/t/sbom/sbom.spdx.json", "cyclonedx": "out/m/t/sbom/sbom.cdx.json"},
        "packages": 412,
        "locked": 131,
        "missing": [],
    },
    "provenance": {"path": "out/m/t/provenance.json", "predicateType": "https://slsa.dev/provenance/v1"},
    "signature": {"where": "sha256-" + "ab" * 32 + ".sig", "manifest": "sha256:" + "ef" * 32, "added": True},
    "attestations": [{"type": "spdxjson"}, {"type": "cyclonedx"}, {"type": "slsaprovenance1"}],
}
SMOKE_REPORT: dict[str, Any] = {
    "format": "builder-smoke/1",
    "stack": "maie-jetson",
    "target": "orin-nano-super/jp6.2-cu126",
    "image": DIGEST,
    "device": {"name": "Orin", "capability": "8.7", "total_bytes": 8_000_000_000},
    "power_mode": {"active": "25W", "how": "nvpmodel -q", "required": "25W"},
    "checks": [
        {"name": "llm-decode", "status": "pass", "value": 31.482913, "unit": "tok/s", "threshold": ">= 30",
         "how": "Qwen3-4B int4", "path": "int4-tinygemm+compile+cudagraph"},
        {"name": "memory-bandwidth", "status": "fail", "value": 61.25, "unit": "GB/s", "threshold": ">= 86.7"},
        {"name": "asr-rtf", "status": "not run", "reason": "faster_whisper is not importable"},
    ],
    "summary": {"passed": 1, "failed": 1, "not_run": 1, "failed_checks": ["memory-bandwidth"], "result": "fail"},
    "exit_code": 1,
}  # fmt: skip


def rows(markdown: str) -> list[list[str]]:
    return [
        [part.strip() for part in line.strip("|").split(" | ")]
        for line in markdown.splitlines()
        if line.startswith("|")
    ]


def test_build_summary_shows_the_numbers_of_result_json() -> None:
    text = build_summary(RESULT)
    assert text.startswith("### maie-jetson on orin-nano-super/jp6.2-cu126\n")
    assert f"`{RESULT['image']['reference']}`" in text
    sizes = RESULT["sizes"]
    assert "| image size | 4,321,987,654 B (4322.0 MB) in 17 layers (compressed) |" in text
    assert f"| runtime base | {sizes['base_bytes']:,} B (3000.1 MB) |" in text
    assert f"| added above the base | {sizes['added_bytes']:,} B (1321.9 MB) |" in text
    assert "| build time | 2153.49 s (2026-01-02T03:04:05Z to 2026-01-02T03:40:00Z) |" in text
    stages = {row[0]: row[1:] for row in rows(text) if row[0].startswith("`")}
    assert stages == {
        "`build-ctranslate2`": ["0.00 s", "wheel cache hit"],
        "`build-vllm`": ["1834.57 s", "built"],
        "`runtime+app`": ["312.25 s", "built (3 engine cache hits)"],
    }
    assert "Wheel cache: 1 of 2 source build(s) from the cache." in text
    assert "| vllm | built, published | `sha256:222222222222` | vllm.whl |" in text
    assert "| ctranslate2 | hit |" in text
    assert "- SBOMs: 412 packages, 131 locked, every locked package in the image" in text
    assert f"- signature: `{RESULT['signature']['where']}`" in text
    assert "- attestations: `spdxjson`, `cyclonedx`, `slsaprovenance1`" in text
    assert "- provenance: `out/m/t/provenance.json`" in text


def test_build_summary_of_an_unsigned_build_with_no_source_build() -> None:
    result = {**RESULT, "wheel_cache": {}, "attestations": [], "sbom": {**RESULT["sbom"], "missing": ["x 1"]}}
    del result["signature"]
    text = build_summary(result)
    assert "Wheel cache" not in text and "attestations" not in text
    assert "- signature: not signed by `build stack`" in text
    assert "1 locked missing from the image" in text


def test_verify_summary_lists_every_check_with_its_verdict() -> None:
    checks = [
        {"name": "signature", "ok": True, "detail": f"1 signature(s) by this key over {DIGEST}"},
        {"name": "smoke", "ok": False, "detail": f"no valid smoke attestation ({SMOKE})"},
    ]
    text = verify_summary({"image": f"r/x@{DIGEST}", "digest": DIGEST, "ok": False, "checks": checks})
    assert text.splitlines()[0] == f"### verify `r/x@{DIGEST}`: failed ❌"
    assert rows(text)[2:] == [
        ["signature", "✅ ok", f"1 signature(s) by this key over {DIGEST}"],
        ["smoke", "❌ failed", f"no valid smoke attestation ({SMOKE})"],
    ]
    passed = verify_summary({"image": "r/x", "digest": DIGEST, "ok": True, "checks": checks[:1]})
    assert "passed ✅" in passed.splitlines()[0]


def test_smoke_summary_shows_each_value_against_its_threshold() -> None:
    text = smoke_summary(SMOKE_REPORT)
    assert text.splitlines()[0] == "### smoke: maie-jetson on orin-nano-super/jp6.2-cu126: fail ❌"
    assert "Device: Orin (compute capability 8.7); power mode: 25W (required 25W)" in text
    table = {row[0]: row[1:] for row in rows(text)[2:]}
    assert table["llm-decode"] == [
        "✅ pass", "31.482913 tok/s", ">= 30", "int4-tinygemm+compile+cudagraph", "Qwen3-4B int4"
    ]  # fmt: skip
    assert table["memory-bandwidth"][:3] == ["❌ fail", "61.25 GB/s", ">= 86.7"]
    assert table["asr-rtf"] == ["⚪ not run", "", "", "", "faster_whisper is not importable"]
    assert text.rstrip().endswith("1 passed, 1 failed, 1 not run (exit 1)")


def test_smoke_summary_without_a_gpu() -> None:
    report = {**SMOKE_REPORT, "device": None, "summary": {**SMOKE_REPORT["summary"], "result": "no gpu"}}
    text = smoke_summary(report)
    assert "no gpu ❌" in text.splitlines()[0] and "Device: no GPU" in text


def test_lock_summary_names_every_change() -> None:
    stale = lock_summary("demo", [], ["nano/jp6.2-cu126: torch 2.8.0 was re-uploaded", "card/x: no lock"])
    assert stale.splitlines() == [
        "### lock of demo: out of date ❌",
        "",
        "- nano/jp6.2-cu126: torch 2.8.0 was re-uploaded",
        "- card/x: no lock",
        "",
        "Run `build lock demo` and commit the lock.",
    ]
    assert lock_summary("demo", ["nano/jp6.2-cu126"], []).splitlines()[0] == "### lock of demo: current ✅"


def test_text_stays_inside_its_table_cell() -> None:
    assert cell("a | b\nc") == "a \\| b c"
    assert code("x`y") == "`` x`y ``" and code("plain") == "`plain`"
    text = verify_summary({"image": "i", "digest": "d", "ok": False, "checks": [{"name": "n", "ok": False, "detail": "a|b\nc"}]})  # fmt: skip
    assert rows(text)[2] == ["n", "❌ failed", "a\\|b c"]


# ---------------------------------------------------------------- appending to $GITHUB_STEP_SUMMARY


def test_sections_are_appended_never_truncating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("an earlier step's section\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    append_step_summary("### one")
    append_step_summary("### two\n\n")
    assert summary.read_text() == "an earlier step's section\n### one\n\n### two\n\n"


def test_no_variable_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.chdir(tmp_path)
    append_step_summary("### one")
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_summary_is_a_one_line_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))  # a directory
    append_step_summary("### one")
    err = capsys.readouterr().err
    assert err.startswith(f"warning: cannot append to the job summary {tmp_path}") and err.count("\n") == 1


def test_lock_check_writes_what_changed_into_the_summary(
    catalogue_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run_cli("lock", "demo", "--check", "--offline")
    assert result.code == 1
    text = summary.read_text()
    assert text.startswith("### lock of demo: out of date ❌")
    for line in result.errors:  # every change printed is in the summary too
        change = line.removeprefix("error: the lock of demo is out of date: ").split(" (hint:")[0]
        assert f"- {change}" in text


def test_matrix_changed_lists_only_the_cells_a_change_touches(catalogue_dir: Path, tmp_path: Path) -> None:
    def cells(*paths: str) -> list[tuple[str, str]]:
        listing = tmp_path / "changed.txt"
        listing.write_text("".join(f"{path}\n" for path in paths))
        result = run_cli("matrix", "--json", "--changed", str(listing))
        assert result.code == 0, result.err
        return [(row["stack"], row["target"]) for row in json.loads(result.out)["include"]]

    every = [(row["stack"], row["target"]) for row in json.loads(run_cli("matrix", "--json").out)["include"]]
    assert len(every) == 2
    assert cells() == [] and cells("README.md", "builder/cli/parser.py") == []
    assert cells("stacks/demo.yaml") == every
    nano = [cell for cell in every if cell[1].startswith("nano/")]
    assert cells("matrix/nano/device.yaml") == nano
    assert cells(f"locks/demo/{nano[0][1]}/pylock.toml") == nano
    assert cells(f"locks/demo/{nano[0][1]}") == nano
    missing = run_cli("matrix", "--changed", str(tmp_path / "absent.txt"))
    assert missing.code == 2 and "absent.txt: no such file" in missing.err


def test_matrix_takes_several_stacks(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import ROOT

    rows_ = json.loads(run_cli("matrix", "--json", "--root", str(ROOT), "--stack", "forge-thor", "--stack", "vla-orin").out)  # fmt: skip
    assert sorted({row["stack"] for row in rows_["include"]}) == ["forge-thor", "vla-orin"]
    wrong = run_cli("matrix", "--root", str(ROOT), "--stack", "forge-thro")
    assert wrong.code == 2 and "did you mean 'forge-thor'" in wrong.err


# ---------------------------------------------------------------- build verify --keyless

IDENTITY = Identity("^https://github\\.com/", "https://token.actions.githubusercontent.com", "owner/repo")


def test_keyless_verify_runs_cosign_once_per_predicate_type() -> None:
    commands = keyless_commands("cosign", f"r/x@{DIGEST}", ["smoke", "sbom", "provenance"], IDENTITY)
    options = [
        "--certificate-identity-regexp", "^https://github\\.com/",
        "--certificate-oidc-issuer", "https://token.actions.githubusercontent.com",
        "--certificate-github-workflow-repository", "owner/repo",
    ]  # fmt: skip
    assert commands == [
        ("signature", ["cosign", "verify", *options, f"r/x@{DIGEST}"]),
        ("provenance", ["cosign", "verify-attestation", "--type", "slsaprovenance1", *options, f"r/x@{DIGEST}"]),
        ("sbom", ["cosign", "verify-attestation", "--type", "spdxjson", *options, f"r/x@{DIGEST}"]),
        ("sbom", ["cosign", "verify-attestation", "--type", "cyclonedx", *options, f"r/x@{DIGEST}"]),
        ("smoke", ["cosign", "verify-attestation", "--type", SMOKE, *options, f"r/x@{DIGEST}"]),
    ]


def test_keyless_checks_pass_a_requirement_when_any_of_its_types_verified() -> None:
    checks = keyless_checks(
        DIGEST,
        [
            ("signature", "signature", True, ""),
            ("sbom", "spdxjson", False, "no matching attestations"),
            ("sbom", "cyclonedx", True, ""),
            ("smoke", SMOKE, False, "no matching attestations"),
        ],
        IDENTITY,
    )
    assert [(c.name, c.ok) for c in checks] == [("signature", True), ("sbom", True), ("smoke", False)]
    assert checks[0].detail.startswith(f"a keyless signature over {DIGEST} (identity ~ ^https://github")
    assert checks[1].detail.startswith("attested (cyclonedx), keyless")
    assert checks[2].detail == f"no valid keyless smoke attestation ({SMOKE}): {SMOKE}: no matching attestations"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--key", "k.pub", "--keyless"], "give --key PUB, or --keyless"),
        ([], "give --key PUB, or --keyless"),
        (["--keyless"], "--keyless needs --certificate-identity-regexp RE"),
        (["--key", "k.pub", "--certificate-oidc-issuer", "https://x"], "--certificate-oidc-issuer only apply with --keyless"),
    ],
)  # fmt: skip
def test_keyless_usage_errors(args: list[str], message: str) -> None:
    result = run_cli("verify", "127.0.0.1:9/x/y:v1", *args)
    assert result.code == 2 and len(result.errors) == 1 and message in result.err


def test_keyless_verify_needs_the_cosign_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = run_cli("verify", "127.0.0.1:9/x/y:v1", "--keyless", "--certificate-identity-regexp", ".")
    assert result.code == 3 and "tool 'cosign' is not installed" in result.err


# ---------------------------------------------------------------- build verify on a real registry


@pytest.mark.integration
def test_verify_appends_its_verdict_to_the_job_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.standins import Registry
    from tests.test_trust import push_labeled

    monkeypatch.setenv("COSIGN_PASSWORD", "summary test")
    assert run_cli("keygen", "--out", str(tmp_path / "cosign")).code == 0
    summary = tmp_path / "summary.md"
    summary.write_text("### build stack's section\n\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    with Registry.serve(tmp_path_factory.mktemp("summary-registry")) as registry:
        digest = push_labeled(registry.url, "summary/app", "v1", {})
        image = f"{registry.address}/summary/app:v1"
        assert run_cli("sign", image, "--key", str(tmp_path / "cosign.key")).code == 0
        passed = run_cli("verify", image, "--key", str(tmp_path / "cosign.pub"), "--json")
        failed = run_cli("verify", image, "--key", str(tmp_path / "cosign.pub"), "--require", "smoke")
    assert passed.code == 0 and failed.code == 1
    reported = json.loads(passed.out)
    sections = summary.read_text().split("### ")
    assert sections[1] == "build stack's section\n\n"  # the earlier step's section is kept
    assert sections[2].startswith(f"verify `{reported['image']}`: passed ✅")
    assert f"| signature | ✅ ok | 1 signature(s) by this key over {digest} |" in sections[2]
    assert sections[3].startswith(f"verify `{reported['image']}`: failed ❌")
    assert f"| smoke | ❌ failed | no valid smoke attestation ({SMOKE}) |" in sections[3]
    assert "summary test" not in summary.read_text()
