"""Opt-in image test, `make image-test` (root, buildah and debootstrap; tens of minutes): the
Bento's container image, built with buildah from the Dockerfile BentoML generates, serves /readyz
as a non-root user with CPU-only torch. Not part of `make test` (its file name keeps pytest's
collection away).

This machine has no Docker engine and no Docker Hub, and the PyTorch CPU index is out of reach, so
two things are made locally, and nothing else is changed:
- the base image the Dockerfile names (`python:3.11-slim`): Debian bookworm from debootstrap with
  python3.11, uv (the version BentoML's Dockerfile would install) and this machine's site CAs (the
  egress proxy inspects TLS), under that name;
- the PyTorch CPU index: the Bento's requirements line that names it is pointed at a directory
  holding the same `torch==2.13.0+cpu` wheel (TORCH_WHEELS, default /opt/wheels).
Debian packages and every other Python package come from their registries during the build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import bentoml
import httpx
import pytest
from bentoml._internal.container import construct_containerfile

from bench.servers import free_port, stop_server
from tests.fixtures.commands import REPO_ROOT, run_module
from tools.store import ensure_default

WORK_DIR = REPO_ROOT / "build" / "image-test"
BASE_IMAGE = "docker.io/library/python:3.11-slim"  # the name BentoML's Dockerfile starts FROM
IMAGE = "localhost/moderation:image-test"
UV_VERSION = "0.13.4"  # the uv that BentoML 1.4.40's Dockerfile installs when the base has none
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SITE_CAS = "/usr/local/share/ca-certificates"
TORCH_CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"
TORCH_WHEELS = Path(os.environ.get("TORCH_WHEELS", "/opt/wheels"))
BUILDAH_ENV = {**os.environ, "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}


def run(*command: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command with buildah's settings; fail the test with its output if it fails."""
    result = subprocess.run(
        [str(part) for part in command],
        env=BUILDAH_ENV,
        capture_output=True,
        text=True,
        check=False,
        **kwargs,
    )
    assert result.returncode == 0, f"{command[:3]} failed:\n{result.stdout[-3000:]}{result.stderr}"
    return result


def image_exists(name: str) -> bool:
    inspect = ["buildah", "inspect", "--type", "image", name]
    return (
        subprocess.run(inspect, env=BUILDAH_ENV, capture_output=True, check=False).returncode == 0
    )


def uv_binary() -> Path:
    """uv's Linux binary, from its PyPI wheel."""
    wheel_dir = WORK_DIR / "uv"
    run(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
        "--platform", "manylinux_2_17_x86_64", "-d", wheel_dir, f"uv=={UV_VERSION}")  # fmt: skip
    wheel = next(wheel_dir.glob(f"uv-{UV_VERSION}-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extract(f"uv-{UV_VERSION}.data/scripts/uv", wheel_dir)
    binary = wheel_dir / f"uv-{UV_VERSION}.data" / "scripts" / "uv"
    binary.chmod(0o755)
    return binary


def build_base_image() -> None:
    """Debian bookworm (python3.11) + uv, committed under the name the Dockerfile expects."""
    rootfs = WORK_DIR / "rootfs"
    if not (rootfs / "usr" / "bin" / "python3.11").exists():
        shutil.rmtree(rootfs, ignore_errors=True)
        # debootstrap's own default mirror.
        run("debootstrap", "--variant=minbase", "--include=python3.11,ca-certificates",
            "bookworm", rootfs)  # fmt: skip
    tarball = WORK_DIR / "rootfs.tar"
    run("tar", "-C", rootfs, "-cf", tarball, ".")
    container = run("buildah", "from", "scratch").stdout.strip()
    try:
        run("buildah", "add", container, tarball, "/")
        run("buildah", "copy", "--chmod", "0755", container, uv_binary(), "/usr/local/bin/uv")
        # This machine's site CAs (a TLS-inspecting egress proxy), trusted as an organisation's
        # base image would; uv is told to use that trust store instead of its built-in roots.
        run("buildah", "copy", container, SITE_CAS, SITE_CAS)
        run("buildah", "run", container, "--", "update-ca-certificates")
        run("buildah", "config", "--env", f"PATH={SYSTEM_PATH}", "--env", "UV_NATIVE_TLS=1",
            container)  # fmt: skip
        run("buildah", "commit", container, BASE_IMAGE)
    finally:
        run("buildah", "rm", container)
        tarball.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def bento_tag() -> str:
    """A Bento of the repository's default catalog, built as `make bento` builds it."""
    ensure_default()
    result = run_module("tools.build_bento", env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def image(bento_tag: str) -> str:
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    if not image_exists(BASE_IMAGE):
        build_base_image()
    bento = bentoml.bentos.get(bento_tag)
    # The build context `bentoml containerize` makes: the Bento, its models, the Dockerfile.
    with construct_containerfile(bento, enable_buildkit=False) as (context, dockerfile):
        requirements = Path(context, "env", "python", "requirements.txt")
        text = requirements.read_text()
        assert TORCH_CPU_INDEX in text
        requirements.write_text(text.replace(TORCH_CPU_INDEX, "--find-links /torch-wheels"))
        run("buildah", "build", "--pull=never", "--layers=false", "-f", dockerfile,
            "-v", f"{TORCH_WHEELS}:/torch-wheels:ro", "-t", IMAGE, context)  # fmt: skip
    return IMAGE


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[str]:
    name = run("buildah", "from", image).stdout.strip()
    try:
        yield name
    finally:
        run("buildah", "rm", name)


def test_image_runs_as_non_root_with_cpu_only_torch(container: str) -> None:
    assert run("buildah", "run", container, "--", "id", "-u").stdout.strip() == "1034"
    torch_version = run(
        "buildah", "run", container, "--", "/app/.venv/bin/python", "-c",
        "import torch; print(torch.__version__, torch.version.cuda)",
    ).stdout.split()  # fmt: skip
    assert torch_version == ["2.13.0+cpu", "None"]


def test_image_serves_readyz_and_reports_its_bento(container: str, bento_tag: str) -> None:
    port = free_port()
    server = subprocess.Popen(
        ["buildah", "run", "--env", f"PORT={port}", "--env", "MODERATION_AUTH_DISABLED=1",
         container, "--", "/home/bentoml/bento/env/docker/entrypoint.sh"],
        env=BUILDAH_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        status = None
        while time.monotonic() < deadline and server.poll() is None and status != 200:
            try:
                status = httpx.get(f"{base_url}/readyz", timeout=5).status_code
            except httpx.TransportError:
                time.sleep(1)
        assert status == 200, server.stdout.read().decode() if server.poll() is not None else ""
        listing = httpx.get(f"{base_url}/v1/models", timeout=30).json()
        assert listing["bento"] == bento_tag
    finally:
        stop_server(server)
