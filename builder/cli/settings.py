"""What the parsed command line means, as frozen values the commands take (never a Namespace)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from builder.errors import UsageError
from builder.fsutil import default_cache_dir
from builder.upstream.options import UpstreamOptions, with_credentials


@dataclass(frozen=True)
class Common:
    root: Path
    json: bool

    @classmethod
    def of(cls, args: argparse.Namespace) -> Common:
        return cls(Path(getattr(args, "root", Path())), bool(getattr(args, "json", False)))


@dataclass(frozen=True)
class Locking:
    """Where locks live and how the upstreams are reached: shared by lock, plan, render and stack."""

    lock_dir: Path
    upstream: UpstreamOptions

    @classmethod
    def of(cls, args: argparse.Namespace, root: Path) -> Locking:
        return cls(
            lock_dir=lock_dir(args, root),
            upstream=with_credentials(
                cache_dir=args.cache_dir if args.cache_dir is not None else default_cache_dir(),
                index_overrides=pairs(args.index, "--index"),
                image_mirrors=pairs(args.image_mirror, "--image-mirror"),
                git_mirrors=pairs(args.git_mirror, "--git-mirror"),
                offline=args.offline,
            ),
        )


def lock_dir(args: argparse.Namespace, root: Path) -> Path:
    """--lock-dir, else ROOT/locks."""
    return args.lock_dir if args.lock_dir is not None else root / "locks"


def pairs(values: list[str], flag: str) -> dict[str, str]:
    found = {}
    for value in values:
        key, sep, target = value.partition("=")
        if not sep or not key or not target:
            raise UsageError(f"{flag} expects NAME=VALUE, got '{value}'")
        found[key] = target
    return found


def print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
