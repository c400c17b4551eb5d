"""The `build` command line: parses arguments, calls the library, formats errors and exits."""

from __future__ import annotations

import argparse
import json
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from builder import __version__
from builder.build import StackBuildOptions, build_target, index_build_args, machine_secrets
from builder.catalogue import Catalogue, load_catalogue
from builder.engines import emulation_problem, host_arch, select_engine
from builder.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_OK,
    BuilderError,
    CheckFailed,
    UpstreamUnavailable,
    UsageError,
    display_path,
)
from builder.http import default_cache_dir
from builder.lock import Drift, LockOptions, World, check_target, lock_target, target_of
from builder.models import Stack
from builder.plan import plan_decisions, render_plan
from builder.render import load_lock, render_files, write_tree
from builder.report import make_reporter
from builder.schema import write_schemas
from builder.stages import Plan, make_plan, render_stages
from builder.views import matrix_rows, render_matrix, render_stack, stack_json
from builder.wheelcache import WheelCache

# host[:port]/path as image references spell it (lower case), optionally http:// for a plain-HTTP registry
REPOSITORY = re.compile(r"(http://)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+")


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors share the one error path."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, hint=f"see '{self.prog} --help'")


def _common() -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument("--root", type=Path, default=argparse.SUPPRESS, help="catalogue directory (default: .)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(
        prog="build",
        description="Declarative, locked, verifiable AI container builds for Jetson and x86 CUDA.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"build {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    validate = commands.add_parser("validate", parents=[common], help="check every YAML file of the catalogue")
    validate.add_argument("--json", action="store_true", help="print a JSON summary")
    validate.set_defaults(run=_validate)

    matrix = commands.add_parser("matrix", parents=[common], help="list cells per stack (a CI matrix with --json)")
    matrix.add_argument("--stack", help="only this stack's targets")
    matrix.add_argument("--json", action="store_true", help='print {"include": [...]} for GitHub Actions')
    matrix.set_defaults(run=_matrix)

    schema = commands.add_parser("schema", parents=[common], help="write the JSON Schemas of the catalogue files")
    schema.add_argument("--out", type=Path, help="directory to write to (default: ROOT/schemas)")
    schema.set_defaults(run=_schema)

    world = _Parser(add_help=False)
    world.add_argument(
        "--index",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="use URL for the named index ('default': the machine's pip configuration); {path} is the cell's path",
    )
    world.add_argument(
        "--image-mirror",
        action="append",
        default=[],
        metavar="SRC=DST",
        help="fetch images of registry SRC from DST (host[:port] or http(s)://host[:port])",
    )
    world.add_argument(
        "--git-mirror",
        action="append",
        default=[],
        metavar="SRC=DST",
        help="fetch git repositories starting with SRC from DST instead",
    )
    world.add_argument("--offline", action="store_true", help="use only the cache; fail naming what is missing")
    world.add_argument("--lock-dir", type=Path, help="where locks live (default: ROOT/locks)")
    world.add_argument(
        "--cache-dir", type=Path, help="download cache (default: $BUILDER_CACHE_DIR or ~/.cache/builder)"
    )

    lock = commands.add_parser(
        "lock", parents=[common, world], help="resolve and write pylock.toml and image-lock.json"
    )
    lock.add_argument("stack", metavar="STACK")
    lock.add_argument("--target", action="append", default=[], metavar="T", help="a target of the stack (default: all)")
    lock.add_argument(
        "--check", action="store_true", help="exit 1 if the lock is missing or its inputs or upstreams changed"
    )
    lock.add_argument("--upgrade", action="store_true", help="re-resolve the environment even if nothing changed")
    lock.add_argument("--json", action="store_true", help="print what was locked as JSON")
    lock.set_defaults(run=_lock)

    plan = commands.add_parser("plan", parents=[common, world], help="how each heavy package is obtained on a target")
    plan.add_argument("stack", metavar="STACK")
    plan.add_argument("--target", required=True, metavar="T")
    plan.add_argument("--json", action="store_true", help="print the decisions and stages as JSON")
    plan.add_argument("--build-memory", type=float, metavar="GB", help="memory for source builds (default: the cell's)")
    plan.set_defaults(run=_plan)

    render = commands.add_parser(
        "render", parents=[common, world], help="write Dockerfile, bake, compose, pixi and context"
    )
    render.add_argument("stack", metavar="STACK")
    render.add_argument("--target", required=True, metavar="T")
    render.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory (replaced whole)")
    render.add_argument(
        "--build-memory", type=float, metavar="GB", help="memory for source builds (default: the cell's)"
    )
    render.set_defaults(run=_render)

    stack = commands.add_parser(
        "stack", parents=[common, world], help="build, tag and push a stack's images (the main job)"
    )
    stack.add_argument("stack", metavar="STACK")
    stack.add_argument(
        "--target", action="append", default=[], metavar="T", help="a target of the stack (default: all)"
    )
    stack.add_argument("--engine", choices=("auto", "docker", "buildah"), default="auto", help="container engine")
    stack.add_argument("--registry", metavar="REPO", help="image repository for the tags (host[:port]/path)")
    stack.add_argument("--push", action="store_true", help="push both tags to --registry; the digest is the identity")
    stack.add_argument("--update-lock", action="store_true", help="re-lock a stale or missing lock instead of refusing")
    stack.add_argument("--out", type=Path, metavar="DIR", help="results, logs, contexts (default: ROOT/out)")
    stack.add_argument("--publish-wheels", metavar="URL", help="upload newly built wheels to this PEP 503 index")
    stack.add_argument(
        "--build-memory", type=float, metavar="GB", help="memory for source builds (default: the cell's)"
    )
    stack.add_argument("--json", action="store_true", help="print the results as JSON")
    stack.set_defaults(run=_stack)

    show = commands.add_parser("show", parents=[common], help="human summary of a stack")
    show.add_argument("stack", metavar="STACK")
    show.add_argument("--json", action="store_true", help="print the stack and per-target choices as JSON")
    show.set_defaults(run=_show)
    return parser


def _root(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "root", Path()))


def _catalogue(args: argparse.Namespace) -> Catalogue:
    return load_catalogue(_root(args))


def _print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def _validate(args: argparse.Namespace) -> int:
    catalogue = _catalogue(args)
    counts = {
        "devices": len(catalogue.devices),
        "cells": len(catalogue.cells),
        "recipes": len(catalogue.recipes),
        "stacks": len(catalogue.stacks),
    }
    if args.json:
        _print_json({"ok": True, **counts})
    else:
        summary = ", ".join(f"{count} {kind}" for kind, count in counts.items())
        sys.stdout.write(f"ok: {summary}\n")
    return EXIT_OK


def _matrix(args: argparse.Namespace) -> int:
    catalogue = _catalogue(args)
    if args.json:
        _print_json({"include": matrix_rows(catalogue, args.stack)})
    else:
        sys.stdout.write(render_matrix(catalogue, args.stack))
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else _root(args) / "schemas"
    for path in write_schemas(out):
        sys.stdout.write(f"wrote {display_path(path)}\n")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    catalogue = _catalogue(args)
    if args.json:
        _print_json(stack_json(catalogue, args.stack))
    else:
        sys.stdout.write(render_stack(catalogue, args.stack))
    return EXIT_OK


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, target = value.partition("=")
        if not sep or not key or not target:
            raise UsageError(f"{flag} expects NAME=VALUE, got '{value}'")
        pairs[key] = target
    return pairs


def _options(args: argparse.Namespace) -> LockOptions:
    return LockOptions(
        lock_dir=args.lock_dir if args.lock_dir is not None else _root(args) / "locks",
        cache_dir=args.cache_dir if args.cache_dir is not None else default_cache_dir(),
        index_overrides=_pairs(args.index, "--index"),
        image_mirrors=_pairs(args.image_mirror, "--image-mirror"),
        git_mirrors=_pairs(args.git_mirror, "--git-mirror"),
        offline=args.offline,
    )


def _lock(args: argparse.Namespace) -> int:
    catalogue = _catalogue(args)
    stack = catalogue.stack(args.stack).model
    targets = args.target or list(stack.targets)
    with World(_options(args)) as world:
        return _lock_targets(args, catalogue, stack, targets, world)


def _lock_targets(
    args: argparse.Namespace, catalogue: Catalogue, stack: Stack, targets: list[str], world: World
) -> int:
    if args.check:
        stale = {target: check_target(catalogue, stack.name, target, world) for target in targets}
        changes = [f"{target}: {change}" for target, found in stale.items() for change in found]
        if changes:
            raise Drift(f"the lock of {stack.name}", changes)
        for target in targets:
            sys.stdout.write(f"lock of {stack.name} on {target} is current\n")
        return EXIT_OK
    reporter = make_reporter(sys.stderr)
    results = []
    for target in targets:
        with reporter.group(f"lock {stack.name} on {target}"):
            results.append(lock_target(catalogue, stack.name, target, world, reporter.step, upgrade=args.upgrade))
    if args.json:
        _print_json(
            [
                {
                    "target": r.target,
                    "directory": str(r.paths.directory),
                    "changed": r.changed,
                    "image_lock": r.image_lock,
                }
                for r in results
            ]
        )
        return EXIT_OK
    for result in results:
        sources = sum(1 for d in result.decisions if d.kind == "source")
        state = "written" if result.changed else "unchanged"
        sys.stdout.write(
            f"locked {stack.name} on {result.target}: {len(result.decisions)} heavy packages "
            f"({sources} source build{'' if sources == 1 else 's'}) -> {display_path(result.paths.directory)} ({state})\n"
        )
    return EXIT_OK


def _locked_plan(args: argparse.Namespace, catalogue: Catalogue) -> tuple[Plan, dict[str, Any]]:
    stack = catalogue.stack(args.stack).model
    target_of(catalogue, stack, args.target)
    options = _options(args)
    image_lock, pylock = load_lock(catalogue, stack, args.target, options.lock_dir)
    plan = make_plan(
        catalogue, stack, args.target, image_lock, pylock, args.build_memory,
        image_mirrors=options.image_mirrors, git_mirrors=options.git_mirrors,
    )  # fmt: skip
    return plan, image_lock


def _plan(args: argparse.Namespace) -> int:
    catalogue = _catalogue(args)
    with World(_options(args)) as world:
        decisions, origin = plan_decisions(catalogue, args.stack, args.target, world)
    plan: Plan | None = None
    if origin.startswith("lock "):
        plan, _ = _locked_plan(args, catalogue)
    if args.json:
        stages = plan.to_json() if plan else None
        _print_json(
            {"stack": args.stack, "target": args.target, "from": origin, "packages": decisions, "stages": stages}
        )
    else:
        sys.stdout.write(render_plan(decisions, origin))
        sys.stdout.write(
            render_stages(plan) if plan else "stages: lock the stack first ('build lock') to plan its stages\n"
        )
    return EXIT_OK


def _render(args: argparse.Namespace) -> int:
    catalogue = _catalogue(args)
    plan, image_lock = _locked_plan(args, catalogue)
    stack = catalogue.stack(args.stack).model
    files = render_files(plan, catalogue, stack, image_lock)
    write_tree(args.out, files)
    sys.stdout.write(
        f"rendered {stack.name} for {args.target} into {display_path(args.out)}: "
        f"{len(plan.builders)} builder stage(s), {len(plan.runtime)} locked wheels, {len(files)} files\n"
    )
    return EXIT_OK


def _stack(args: argparse.Namespace) -> int:
    if args.push and not args.registry:
        raise UsageError("--push needs --registry REPO to push to")
    if args.registry and not REPOSITORY.fullmatch(args.registry):
        raise UsageError(
            f"--registry '{args.registry}' is not an image repository", hint="e.g. registry.lan:5000/team/maie"
        )
    if args.publish_wheels and not args.publish_wheels.startswith(("http://", "https://")):
        raise UsageError(f"--publish-wheels '{args.publish_wheels}' is not an http(s) URL of a PEP 503 index")
    catalogue = _catalogue(args)
    stack = catalogue.stack(args.stack).model
    targets = args.target or list(stack.targets)
    for target in targets:
        target_of(catalogue, stack, target)
    options = _options(args)
    reporter = make_reporter(sys.stderr)
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    with World(options) as world:
        locks = {
            target: _current_lock(catalogue, stack, target, world, reporter.step, args.update_lock)
            for target in targets
        }
        engine = select_engine(args.engine)
        build_options = StackBuildOptions(
            out_dir=args.out if args.out is not None else _root(args) / "out",
            registry=args.registry,
            push=args.push,
            publish_wheels=args.publish_wheels,
            build_args=index_build_args(world),
            secrets=machine_secrets(),
        )
        cache = WheelCache(options.cache_dir)
        for target, (image_lock, pylock) in locks.items():
            with reporter.group(f"build {stack.name} on {target} with {engine.name}"):
                plan = make_plan(
                    catalogue, stack, target, image_lock, pylock, args.build_memory,
                    image_mirrors=options.image_mirrors, git_mirrors=options.git_mirrors,
                )  # fmt: skip
                problem = emulation_problem(plan.platform.oci_arch, host_arch())
                if problem is not None:
                    reporter.step(f"skipped {target}: {problem}")
                    skipped.append({"target": target, "reason": problem})
                    continue
                results.append(
                    build_target(engine, catalogue, stack, plan, image_lock, world, cache, build_options, reporter.step)
                )
    if not results:
        reasons = "; ".join(f"{s['target']}: {s['reason']}" for s in skipped)
        raise UpstreamUnavailable(f"no target of {stack.name} can be built on this host ({reasons})")
    if args.json:
        _print_json({"results": results, "skipped": skipped})
        return EXIT_OK
    for result in results:
        wheels = ", ".join(
            f"{name} {'cached' if w['cache_hit'] else 'built'}" for name, w in result["wheel_cache"].items()
        )
        sys.stdout.write(
            f"built {result['stack']} on {result['target']}: {result['image']['reference']} "
            f"({result['image']['stored']}; {result['sizes']['added_bytes'] / 1e6:.1f} MB above the base; "
            f"{result['seconds']:.0f} s{'; ' + wheels if wheels else ''})\n"
        )
    for skip in skipped:
        sys.stdout.write(f"skipped {skip['target']}: {skip['reason']}\n")
    return EXIT_OK


def _current_lock(
    catalogue: Catalogue, stack: Stack, target: str, world: World, progress: Callable[[str], None], update: bool
) -> tuple[dict[str, Any], str]:
    """The lock to build from; a stale or missing one is refused, or re-locked with --update-lock."""
    try:
        return load_lock(catalogue, stack, target, world.options.lock_dir)
    except CheckFailed:
        if not update:
            raise
    lock_target(catalogue, stack.name, target, world, progress)
    return load_lock(catalogue, stack, target, world.options.lock_dir)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        run: Callable[[argparse.Namespace], int] = args.run
        return run(args)
    except BuilderError as error:
        if debug:
            traceback.print_exc()
        for line in error.lines():
            sys.stderr.write(f"{line}\n")
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as error:
        if debug:
            traceback.print_exc()
        where = f" {error.filename}:" if error.filename else ""
        sys.stderr.write(f"error:{where} {error.strerror or error}\n")
        return EXIT_BAD_INPUT
    except Exception as error:  # a bug: say so in one line, keep the traceback behind --debug
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)\n")
        return EXIT_INTERNAL


def entrypoint() -> None:
    sys.exit(main())
