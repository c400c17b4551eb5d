from __future__ import annotations

import io
import re

import pytest

from builder.progress import GithubReporter, PlainReporter, RichReporter, make_reporter


def test_plain_lines() -> None:
    out = io.StringIO()
    reporter = PlainReporter(out)
    with reporter.group("orin-nano-super/jp6.2-cu126"):
        reporter.step("deciding 10 heavy packages")
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["== orin-nano-super/jp6.2-cu126", "deciding 10 heavy packages"]
    assert re.fullmatch(r"== orin-nano-super/jp6\.2-cu126: done in \d+\.\d s", lines[2])


def test_github_groups_fold_and_failures_are_annotated() -> None:
    out = io.StringIO()
    reporter = GithubReporter(out)
    with pytest.raises(RuntimeError), reporter.group("build-vllm"):
        reporter.step("compiling")
        raise RuntimeError("boom")
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["::group::build-vllm", "compiling", "::endgroup::"]
    assert lines[3].startswith("::error::build-vllm failed after ")


def test_choice_of_reporter() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(make_reporter(io.StringIO(), {"GITHUB_ACTIONS": "true"}), GithubReporter)
    assert isinstance(make_reporter(Tty(), {}), RichReporter)
    assert type(make_reporter(Tty(), {"TERM": "dumb"})) is PlainReporter
    assert type(make_reporter(io.StringIO(), {})) is PlainReporter


def test_rich_reports_groups() -> None:
    out = io.StringIO()
    with RichReporter(out).group("runtime"):
        pass
    assert re.search(r"ok runtime \(\d+\.\d s\)", out.getvalue())
