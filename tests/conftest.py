from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "catalogue"
QUICKSTART_INNER = "BUILDER_QUICKSTART_INNER"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(QUICKSTART_INNER):
        skip = pytest.mark.skip(reason="inside the README quick-start test: unit tests only")
        for item in items:
            if item.get_closest_marker("integration"):
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with an empty builder cache: no memo or download of another test answers it."""
    monkeypatch.setenv("BUILDER_CACHE_DIR", str(tmp_path_factory.mktemp("builder-cache")))


@pytest.fixture(autouse=True)
def _no_processes_or_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests cannot start processes or connect anywhere; integration tests say so with a marker."""
    if request.node.get_closest_marker("integration"):
        return

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a unit test tried to start a process or open a connection; mark it 'integration'")

    monkeypatch.setattr(subprocess.Popen, "__init__", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(socket.socket, "connect_ex", forbidden)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def errors(self) -> list[str]:
        """stderr without progress lines: the error lines only."""
        return [line for line in self.err.splitlines() if line.startswith("error:") or ": error: " in line]


def run_cli(*args: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def catalogue_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A writable copy of the fixture catalogue, as the working directory."""
    root = tmp_path / "catalogue"
    shutil.copytree(FIXTURE, root)
    monkeypatch.chdir(root)
    yield root
