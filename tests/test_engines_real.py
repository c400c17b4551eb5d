"""The engines' argv builders run for real: docker (BuildKit) and buildah build a stage with a secret
mount, and the secret never reaches the image."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from builder.build.engines import BuildRequest, select_engine
from builder.errors import BuildFailed
from builder.process import run_logged

pytestmark = pytest.mark.integration
SECRET = "s3cr3t-value-1234"
DOCKERFILE = """\
FROM builder-test/busybox:1 AS runtime
RUN --mount=type=secret,id=token,required=false cat /run/secrets/token > /tmp/seen && test -s /tmp/seen && rm /tmp/seen
RUN test ! -e /run/secrets/token
"""


@pytest.fixture(scope="module")
def base_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A one-binary image (Debian's static busybox), so no registry or network is needed."""
    root = tmp_path_factory.mktemp("busybox")
    (root / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "rootfs" / "bin" / "busybox")
    for tool in ("sh", "cat", "test", "rm"):
        (root / "rootfs" / "bin" / tool).symlink_to("busybox")
    (root / "rootfs" / "tmp").mkdir(mode=0o1777)
    with tarfile.open(root / "rootfs.tar", "w") as archive:
        archive.add(root / "rootfs", arcname=".")
    docker = select_engine("docker")
    subprocess.run(
        [docker.client, "import", str(root / "rootfs.tar"), "builder-test/busybox:1"], check=True, capture_output=True
    )
    buildah = select_engine("buildah")
    subprocess.run(
        [buildah.client, "--storage-driver", "vfs", "pull", "docker-daemon:builder-test/busybox:1"],
        check=True,
        capture_output=True,
    )
    return "builder-test/busybox:1"


@pytest.mark.parametrize("engine_name", ["docker", "buildah"])
def test_engine_builds_with_a_secret_that_stays_out_of_the_image(
    base_image: str, tmp_path: Path, engine_name: str
) -> None:
    engine = select_engine(engine_name)  # type: ignore[arg-type]
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "token").write_text(SECRET)
    tag = f"builder-test/secret-check:{engine_name}"
    request = BuildRequest(
        context=tmp_path / "ctx",
        target="runtime",
        platform="linux/amd64",
        tags=(tag,),
        secrets={"token": tmp_path / "token"},
        iidfile=tmp_path / "iid",
    )
    log = tmp_path / "build.log"
    try:
        run_logged(engine.build_argv(request), engine.build_env(), log, "runtime", print, engine.transient_failures)
    except BuildFailed:
        pytest.fail(log.read_text()[-2000:])
    assert (tmp_path / "iid").read_text().startswith("sha256:")
    archive = tmp_path / "image.tar"
    if engine_name == "docker":
        subprocess.run([engine.client, "save", "-o", str(archive), tag], check=True)
    else:
        subprocess.run(
            [engine.client, "--storage-driver", "vfs", "push", tag, f"oci-archive:{archive}"],
            check=True,
            capture_output=True,
        )
    assert SECRET.encode() not in _all_bytes(archive)


def _all_bytes(archive: Path) -> bytes:
    """The archive's bytes with every nested layer tarball opened (gzip layers included)."""
    import gzip
    import io

    data = archive.read_bytes()
    chunks = [data]
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            handle = outer.extractfile(member)
            if handle is None:
                continue
            content = handle.read()
            if content[:2] == b"\x1f\x8b":
                content = gzip.decompress(content)
            chunks.append(content)
            if tarfile.is_tarfile(io.BytesIO(content)):
                with tarfile.open(fileobj=io.BytesIO(content)) as inner:
                    for item in inner.getmembers():
                        nested = inner.extractfile(item)
                        if nested is not None:
                            chunks.append(nested.read())
    return b"".join(chunks)
