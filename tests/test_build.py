"""`build stack`'s pure helpers, and its engine runner against real processes (logs, failure tails, Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from builder.build.runner import image_tags, insecure_registry, machine_secrets, read_digest
from builder.errors import BuildFailed
from builder.lock.model import current_lock
from builder.plan.stages import make_plan
from builder.process import LoggedCommand, run_logged, run_logged_together
from builder.render.files import bake, dockerfile
from builder.validate import load_catalogue
from tests.conftest import ROOT, run_cli
from tests.test_render import locked

__all__ = ["locked"]  # a fixture: the real catalogue with its committed locks attached


def test_insecure_means_plain_http_or_loopback() -> None:
    assert insecure_registry("127.0.0.1:5555/sandbox")
    assert insecure_registry("localhost:5000/x")
    assert insecure_registry("http://registry.lan:5000/team/maie")
    assert not insecure_registry("registry.lan:5000/team/maie")
    assert not insecure_registry("ghcr.io/team/maie")


def test_machine_secrets_take_the_ca_bundle_and_netrc(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / ".netrc").write_text("machine index.lan login u password p\n")
    found = machine_secrets({"SSL_CERT_FILE": str(bundle), "HOME": str(tmp_path)})
    assert found == {"ca-bundle": bundle, "netrc": tmp_path / ".netrc"}
    assert "netrc" not in machine_secrets({"HOME": str(tmp_path / "nobody")})


def test_read_digest_from_a_digest_file_or_docker_push_output(tmp_path: Path) -> None:
    digest = "sha256:" + "ab" * 32
    log = tmp_path / "push.log"
    log.write_text(f"The push refers to repository [127.0.0.1:5555/x]\nt: digest: {digest} size: 1570\n")
    assert read_digest(tmp_path / "missing", log) == digest
    (tmp_path / "digest").write_text(digest.replace("ab", "cd") + "\n")
    assert read_digest(tmp_path / "digest", log) == digest.replace("ab", "cd")


# The runner is exercised in a child process: it really starts, logs, fails and interrupts commands.
RUNNER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from builder.process import LoggedCommand, run_logged, run_logged_together
    from builder.cli import main
    from builder.cli.interrupts import hand_to_main
    hand_to_main()  # as builder's entry point does: Ctrl-C works even where SIGINT came in ignored (nohup &)
    argv, log = sys.argv[2:], Path(sys.argv[1])
    try:
        run_logged(argv, {"PATH": "/usr/bin:/bin"}, log, "build-x", print)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    except Exception as error:
        print("\\n".join(error.lines()))
        sys.exit(error.exit_code)
    """
)


def _runner(log: Path, *argv: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(log), *argv], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )


@pytest.mark.integration
def test_a_failing_step_prints_the_tail_of_its_log_and_its_path(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "build-x.log"
    script = "for i in $(seq 1 40); do echo line-$i; done; echo compiler exploded >&2; exit 7"
    child = _runner(log, "bash", "-c", script)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 1, out
    first, *tail = out.splitlines()
    assert first == f"error: build-x failed (exit 7); full log: {log}"
    assert tail[-1] == "  | compiler exploded" and tail[0] == "  | line-22" and len(tail) == 20
    assert "line-1\n" in log.read_text()  # the whole output is kept


FLAKY = "seal: Device or resource busy"
# Fails with FLAKY until the counter file holds `n` tries, then succeeds.
FLAKY_STEP = (
    'n=$(($(cat {count} 2>/dev/null || echo 0) + 1)); echo $n > {count}; [ $n -ge {n} ] || {{ echo "{said}"; exit 1; }}'
)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("said", "succeeds_on", "tries", "passes"),
    [
        (FLAKY, 2, 2, True),  # a known transient failure is tried again
        (FLAKY, 9, 3, False),  # but not forever
        ("out of disk space", 2, 1, False),  # any other failure is final
    ],
)
def test_known_transient_engine_failures_are_tried_again(
    tmp_path: Path, said: str, succeeds_on: int, tries: int, passes: bool
) -> None:
    count, log = tmp_path / "count", tmp_path / "build-x.log"
    lines: list[str] = []
    argv = ["bash", "-c", FLAKY_STEP.format(count=count, n=succeeds_on, said=said)]
    if passes:
        run_logged(argv, {"PATH": "/usr/bin:/bin"}, log, "build-x", lines.append, (FLAKY,))
    else:
        with pytest.raises(BuildFailed):
            run_logged(argv, {"PATH": "/usr/bin:/bin"}, log, "build-x", lines.append, (FLAKY,))
    assert int(count.read_text()) == tries
    assert log.read_text().count("$ bash -c") == tries  # every try is kept in the one log
    assert len(lines) == tries - 1 and all("known transient failure" in line for line in lines)


@pytest.mark.integration
def test_commands_run_together_and_a_failure_does_not_stop_the_others(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    commands = [
        LoggedCommand(["bash", "-c", "sleep 1; echo one"], env, tmp_path / "one.log", "build-one"),
        LoggedCommand(["bash", "-c", "echo two; exit 4"], env, tmp_path / "two.log", "build-two"),
        LoggedCommand(["bash", "-c", "sleep 1; echo three"], env, tmp_path / "three.log", "build-three"),
    ]
    started = time.monotonic()
    one, two, three = run_logged_together(commands, print)
    assert time.monotonic() - started < 1.9  # at once, not one after the other
    assert one.failure is None and three.failure is None
    assert one.started < three.finished and three.started < one.finished  # they overlapped
    assert two.failure is not None and two.failure.lines()[0] == (
        f"error: build-two failed (exit 4); full log: {tmp_path / 'two.log'}"
    )
    assert "one" in (tmp_path / "one.log").read_text() and "three" in (tmp_path / "three.log").read_text()


@pytest.mark.integration
def test_ctrl_c_stops_the_engine_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    child = _runner(tmp_path / "x.log", "bash", "-c", f"sleep 300 & echo $! > {marker}; wait")
    deadline = time.monotonic() + 30
    while not marker.exists() or not marker.read_text().strip():
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.1)
    grandchild = int(marker.read_text())
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 130 and "interrupted" in out
    stat = Path(f"/proc/{grandchild}/stat")
    assert not stat.exists() or stat.read_text().split()[2] == "Z"  # the engine's own children are gone too


def test_tags_are_a_moving_target_tag_and_an_immutable_lock_tag(locked: Path) -> None:
    catalogue = load_catalogue(locked)
    stack = catalogue.stacks["maie-jetson"].model
    target = "orin-nano-super/jp6.2-cu126"
    plan = make_plan(catalogue, stack, target, current_lock(catalogue, stack, target, locked / "locks"))
    moving, immutable = image_tags(plan, stack, "127.0.0.1:5555/team/maie")
    checksum = plan.lock_checksum.removeprefix("sha256:")[:12]
    assert moving == "127.0.0.1:5555/team/maie:orin-nano-super-jp6.2-cu126"
    assert immutable == f"127.0.0.1:5555/team/maie:orin-nano-super-jp6.2-cu126-{checksum}"
    assert image_tags(plan, stack, None)[0].startswith("maie-jetson:orin-nano-super-jp6.2-cu126")


@pytest.mark.integration
def test_the_real_catalogue_fails_cleanly_where_upstreams_are_unreachable(locked: Path) -> None:
    """No NGC here: the build stops before the engine starts, exit 3, naming the registry."""
    result = run_cli("stack", "maie-jetson", "--target", "orin-nano-super/jp6.2-cu126", "--out", str(locked / "out"))
    assert result.code == 3, result.err
    assert len(result.errors) == 1 and "nvcr.io" in result.errors[0], result.err
    assert not (locked / "out" / "maie-jetson" / "orin-nano-super" / "jp6.2-cu126" / "result.json").exists()


def test_stack_refuses_a_stale_lock_and_bad_flags(locked: Path) -> None:
    builder = run_cli("stack", "maie-jetson", "--engine", "buildah", "--builder", "fleet")
    assert builder.code == 2 and "--builder fleet names a buildx builder" in builder.err
    (locked / "stacks" / "maie-jetson.yaml").write_text(
        (locked / "stacks" / "maie-jetson.yaml").read_text() + "# edited after locking\n"
    )
    stale = run_cli("stack", "maie-jetson", "--target", "orin-nano-super/jp6.2-cu126", "--engine", "docker")
    assert (
        stale.code == 1
        and "the lock for maie-jetson on orin-nano-super/jp6.2-cu126 is out of date: input stacks/maie-jetson.yaml changed since the lock"
        in stale.err
    )
    push = run_cli("stack", "maie-jetson", "--push")
    assert push.code == 2 and "--push needs --registry" in push.err
    engine = run_cli("stack", "maie-jetson", "--engine", "podman")
    assert engine.code == 2 and "invalid choice: 'podman'" in engine.err
    for bad in ("Registry.LAN/Team", "registry.lan:5000", "registry.lan/team maie", "https://registry.lan/x"):
        refused = run_cli("stack", "maie-jetson", "--registry", bad)
        assert refused.code == 2 and f"--registry '{bad}' is not an image repository" in refused.err
    publish = run_cli("stack", "maie-jetson", "--publish-wheels", "/srv/wheels")
    assert publish.code == 2 and "is not an http(s) URL" in publish.err
    unknown = run_cli("stack", "maie-jetson", "--target", "orin-nano-super/jp9-cu999")
    assert unknown.code == 2, unknown.err


def test_build_failed_is_a_failed_check(tmp_path: Path) -> None:
    assert BuildFailed("x", tmp_path / "none.log", 1).exit_code == 1
    assert BuildFailed("x", tmp_path / "none.log", 1).lines() == [
        f"error: x failed (exit 1); full log: {tmp_path / 'none.log'}"
    ]


def test_a_cached_source_build_is_mounted_from_the_context(locked: Path) -> None:
    catalogue = load_catalogue(locked)
    stack = catalogue.stacks["maie-jetson"].model
    target = "orin-nano-super/jp6.2-cu126"
    plan = make_plan(catalogue, stack, target, current_lock(catalogue, stack, target, locked / "locks"))
    recipe = plan.builders[0].recipe
    built = dockerfile(plan, catalogue, stack)
    cached = dockerfile(plan, catalogue, stack, frozenset({recipe}))
    assert "git clone" in built and "git clone" not in cached
    # Built, the wheels stage copies them from the builder stage; cached, from the context. No
    # builder stage is left when the cache has the wheels.
    assert f"FROM scratch AS wheels-{recipe}\nCOPY --from=build-{recipe} /wheels/ /wheels/\n" in built
    assert f"FROM scratch AS wheels-{recipe}\nCOPY prebuilt/{recipe}/wheels/ /wheels/\n" in cached
    assert f"AS build-{recipe}" not in cached and f"--from=build-{recipe}" not in cached
    # The runtime stage is the same text either way (so BuildKit's cache holds across the two): it
    # mounts the wheels stage and checks them against their sums.
    runtime = built[built.index("AS runtime") :]
    assert runtime == cached[cached.index("AS runtime") :]
    for suffix in ("", ".sha256"):
        assert (
            f"--mount=type=bind,from=wheels-{recipe},source=/wheels/{recipe}{suffix},target=/wheels/{recipe}{suffix}"
            in runtime
        )
    assert bake(plan, stack, frozenset({recipe}))["group"]["builders"]["targets"] == []  # no stage to bake
