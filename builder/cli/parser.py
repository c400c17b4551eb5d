"""The argument parser: every command and option, each shared option defined once."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from builder import __version__
from builder.errors import UsageError


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors share the one error path."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, hint=f"see '{self.prog} --help'")


def gigabytes(text: str) -> float:
    """A positive, finite number of GB."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of GB") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive, finite number of GB")
    return value


def _options() -> dict[str, _Parser]:
    """Option groups that several commands share, each defined here once."""
    common = _Parser(add_help=False)
    common.add_argument("--root", type=Path, default=argparse.SUPPRESS, help="catalogue directory (default: .)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    lock_dir = _Parser(add_help=False)
    lock_dir.add_argument("--lock-dir", type=Path, help="where locks live (default: ROOT/locks)")

    upstream = _Parser(add_help=False, parents=[lock_dir])
    upstream.add_argument(
        "--index",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="use URL for the named index ('default': the machine's pip configuration); {path} is the cell's path",
    )
    upstream.add_argument(
        "--image-mirror",
        action="append",
        default=[],
        metavar="SRC=DST",
        help="fetch images of registry SRC from DST (host[:port] or http(s)://host[:port])",
    )
    upstream.add_argument(
        "--git-mirror",
        action="append",
        default=[],
        metavar="SRC=DST",
        help="fetch git repositories starting with SRC from DST instead",
    )
    upstream.add_argument("--offline", action="store_true", help="use only the cache; fail naming what is missing")
    upstream.add_argument(
        "--cache-dir", type=Path, help="download cache (default: $BUILDER_CACHE_DIR or ~/.cache/builder)"
    )

    stack = _Parser(add_help=False)
    stack.add_argument("stack", metavar="STACK")

    targets = _Parser(add_help=False)
    targets.add_argument(
        "--target", action="append", default=[], metavar="T", help="a target of the stack (default: all)"
    )

    target = _Parser(add_help=False)
    target.add_argument("--target", required=True, metavar="T", help="a target of the stack")

    image = _Parser(add_help=False)
    image.add_argument(
        "image", metavar="IMAGE", help="REGISTRY/REPO@sha256:..., REGISTRY/REPO:TAG or oci:PATH[:TAG|@sha256:...]"
    )

    memory = _Parser(add_help=False)
    memory.add_argument(
        "--build-memory", type=gigabytes, metavar="GB", help="memory for source builds (default: the cell's)"
    )
    return {
        "common": common,
        "lock-dir": lock_dir,
        "upstream": upstream,
        "stack": stack,
        "targets": targets,
        "target": target,
        "memory": memory,
        "image": image,
    }


def build_parser() -> argparse.ArgumentParser:
    shared = _options()
    common = shared["common"]
    parser = _Parser(
        prog="build",
        description="Declarative, locked, verifiable AI container builds for Jetson and x86 CUDA.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"build {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def command(name: str, help_text: str, *groups: str) -> _Parser:
        sub: _Parser = commands.add_parser(name, parents=[common, *(shared[g] for g in groups)], help=help_text)
        return sub

    validate = command("validate", "check every YAML file of the catalogue")
    validate.add_argument("--json", action="store_true", help="print a JSON summary")

    matrix = command("matrix", "list cells per stack (a CI matrix with --json)")
    matrix.add_argument(
        "--stack", action="append", default=[], metavar="S", help="only this stack's targets (repeat for several)"
    )
    matrix.add_argument(
        "--changed",
        type=Path,
        metavar="FILE",
        help="only cells whose inputs are among the paths FILE lists (one a line, as `git diff --name-only` prints)",
    )
    matrix.add_argument("--json", action="store_true", help='print {"include": [...]} for GitHub Actions')

    schema = command("schema", "write the JSON Schemas of the catalogue files")
    schema.add_argument("--out", type=Path, help="directory to write to (default: ROOT/schemas)")

    show = command("show", "human summary of a stack", "stack")
    show.add_argument("--json", action="store_true", help="print the stack and per-target choices as JSON")

    lock = command("lock", "resolve and write pylock.toml and image-lock.json", "stack", "targets", "upstream")
    lock.add_argument(
        "--check", action="store_true", help="exit 1 if the lock is missing or its inputs or upstreams changed"
    )
    lock.add_argument("--upgrade", action="store_true", help="re-resolve the environment even if nothing changed")
    lock.add_argument("--json", action="store_true", help="print what was locked as JSON")

    plan = command("plan", "how each heavy package is obtained on a target", "stack", "target", "upstream", "memory")
    plan.add_argument("--json", action="store_true", help="print the decisions and stages as JSON")

    render = command(
        "render", "write Dockerfile, bake, compose, pixi and context", "stack", "target", "upstream", "memory"
    )
    render.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory (replaced whole)")

    stack = command(
        "stack", "build, tag and push a stack's images (the main job)", "stack", "targets", "upstream", "memory"
    )
    stack.add_argument("--engine", choices=("auto", "docker", "buildah"), default="auto", help="container engine")
    stack.add_argument("--registry", metavar="REPO", help="image repository for the tags (host[:port]/path)")
    stack.add_argument("--push", action="store_true", help="push both tags to --registry; the digest is the identity")
    stack.add_argument("--update-lock", action="store_true", help="re-lock a stale or missing lock instead of refusing")
    stack.add_argument("--out", type=Path, metavar="DIR", help="results, logs, contexts (default: ROOT/out)")
    stack.add_argument("--publish-wheels", metavar="URL", help="upload newly built wheels to this PEP 503 index")
    stack.add_argument(
        "--sign-key",
        type=Path,
        metavar="KEY",
        help="sign and attest (SBOMs, provenance) with this key, beside the pushed image or in its OCI layout",
    )
    stack.add_argument(
        "--force", action="store_true", help="build even when the last build's image still stands for these inputs"
    )
    stack.add_argument(
        "--builder", metavar="NAME", help="build on this buildx builder (remote BuildKit, several nodes, kubernetes)"
    )
    stack.add_argument("--json", action="store_true", help="print the results as JSON")

    keygen = command("keygen", "write an ECDSA P-256 key pair in cosign's formats (COSIGN_PASSWORD or a prompt)")
    keygen.add_argument("--out", type=Path, default=Path("cosign"), metavar="PREFIX", help="PREFIX.key, PREFIX.pub")

    sign = command("sign", "sign an image's manifest digest, as cosign sign does", "image")
    sign.add_argument("--key", type=Path, metavar="KEY", help="a cosign private key (password: COSIGN_PASSWORD)")
    sign.add_argument("--keyless", action="store_true", help="sign with the cosign CLI and the CI's OIDC identity")
    sign.add_argument(
        "--format", choices=("simple", "bundle"), default="simple", help="the .sig tag (default) or a bundle referrer"
    )
    sign.add_argument("--json", action="store_true", help="print what was written as JSON")

    attest = command("attest", "attach a signed in-toto attestation, as cosign attest does", "image")
    attest.add_argument("--key", type=Path, required=True, metavar="KEY")
    attest.add_argument(
        "--type", required=True, metavar="T", help="spdxjson, cyclonedx, slsaprovenance1, or a predicate type URI"
    )
    attest.add_argument("--predicate", type=Path, required=True, metavar="FILE", help="the predicate, JSON")
    attest.add_argument("--json", action="store_true", help="print what was written as JSON")

    verify = command(
        "verify", "check an image's signature and attestations offline against a public key", "image", "lock-dir"
    )
    verify.add_argument("--key", type=Path, metavar="PUB", help="the public key (cosign.pub)")
    verify.add_argument(
        "--keyless", action="store_true", help="check Sigstore keyless signatures and attestations with the cosign CLI"
    )
    verify.add_argument(
        "--certificate-identity-regexp", metavar="RE", help="with --keyless: the signer identities (URIs) accepted"
    )
    verify.add_argument(
        "--certificate-oidc-issuer",
        metavar="URL",
        help="with --keyless: the OIDC issuer (default: GitHub Actions', https://token.actions.githubusercontent.com)",
    )
    verify.add_argument(
        "--certificate-github-workflow-repository",
        metavar="OWNER/REPO",
        help="with --keyless: the repository whose workflow run must have signed",
    )
    verify.add_argument("--require", metavar="LIST", help="attestations that must be there: sbom,provenance,smoke")
    verify.add_argument("--json", action="store_true", help="print every check as JSON")

    smoke = command("smoke", "prove on this machine's GPU that the image works and is fast", "stack", "lock-dir")
    smoke.add_argument("--target", required=True, metavar="T", help="the target whose device and lock to check")
    where = smoke.add_mutually_exclusive_group(required=True)
    where.add_argument("--image", metavar="IMAGE", help="run the runner inside IMAGE (registry reference or oci:PATH)")
    where.add_argument("--here", action="store_true", help="run the runner in this Python environment")
    smoke.add_argument(
        "--model", action="append", default=[], metavar="NAME=DIR", help="a real checkpoint for the checks naming NAME"
    )
    smoke.add_argument("--power-mode", metavar="M", help="the power mode to expect (default: the stack's)")
    smoke.add_argument("--out", type=Path, metavar="DIR", help="write DIR/smoke.json (default: out/<stack>/<target>/)")
    smoke.add_argument(
        "--engine", choices=("auto", "docker", "podman"), default="auto", help="what runs --image (default: auto)"
    )
    smoke.add_argument("--sign-key", type=Path, metavar="KEY", help="attach the result to the image as an attestation")
    smoke.add_argument("--json", action="store_true", help="print the report as JSON")

    report = command("report", "report.html and report.md with plots from results, smoke runs and locks", "stack",
                     "targets", "lock-dir")  # fmt: skip
    report.add_argument(
        "--out", type=Path, metavar="DIR", help="write DIR/report.html, DIR/report.md (default: RESULTS/STACK/report)"
    )
    report.add_argument("--results", type=Path, metavar="DIR", help="what build stack --out wrote (default: ROOT/out)")
    report.add_argument(
        "--benchmark", type=Path, metavar="FILE", help="rebuild benchmark figures (benchmarks/rebuild.py --json FILE)"
    )
    report.add_argument("--json", action="store_true", help="print the files written as JSON")

    bundle = command(
        "bundle",
        "one tar for a site without a network: the signed image, attestations, wheels, lock, SBOMs "
        "(and: bundle verify FILE --key PUB, bundle import FILE --registry REPO)",
        "stack",
        "target",
        "upstream",
    )
    bundle.add_argument("--out", required=True, type=Path, metavar="FILE.tar", help="the bundle to write")
    bundle.add_argument(
        "--results", type=Path, metavar="DIR", help="where build stack wrote its results (default: ROOT/out)"
    )
    bundle.add_argument("--json", action="store_true", help="print what the bundle holds as JSON")

    bundle_verify = commands.add_parser("bundle-verify", prog="build bundle verify", parents=[common])
    bundle_verify.add_argument("bundle", type=Path, metavar="FILE.tar")
    bundle_verify.add_argument("--key", type=Path, required=True, metavar="PUB", help="the public key (cosign.pub)")
    bundle_verify.add_argument("--json", action="store_true", help="print every check as JSON")

    bundle_import = commands.add_parser("bundle-import", prog="build bundle import", parents=[common])
    bundle_import.add_argument("bundle", type=Path, metavar="FILE.tar")
    bundle_import.add_argument(
        "--registry", required=True, metavar="REPO", help="push to this repository (host[:port]/path)"
    )
    bundle_import.add_argument("--wheels-index", metavar="URL", help="upload the wheels to this PEP 503 index")
    bundle_import.add_argument(
        "--key", type=Path, metavar="PUB", help="verify the bundle against this public key before pushing anything"
    )
    bundle_import.add_argument("--json", action="store_true", help="print what was pushed as JSON")

    sbom = command("sbom", "write an image's SPDX and CycloneDX SBOMs, joined with its lock", "image", "lock-dir")
    sbom.add_argument("--stack", metavar="S", help="join with the lock of this stack (with --target)")
    sbom.add_argument("--target", metavar="T", help="the target of --stack whose lock to join with")
    sbom.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="write DIR/sbom.spdx.json and DIR/sbom.cdx.json"
    )
    sbom.add_argument("--json", action="store_true", help="print the image, digest, paths and counts as JSON")
    return parser


BUNDLE_ACTIONS = ("verify", "import")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line parsed; `bundle verify` and `bundle import` are commands of their own."""
    if "bundle" in argv:
        at = argv.index("bundle")
        if at + 1 < len(argv) and argv[at + 1] in BUNDLE_ACTIONS:
            argv = [*argv[:at], f"bundle-{argv[at + 1]}", *argv[at + 2 :]]
    return build_parser().parse_args(argv)
