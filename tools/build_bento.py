"""Build the versioned Bento `moderation:<version>` offline: `make bento`.

A new model is a new Bento version, so the build packs one model catalog (--catalog, else
MODERATION_CATALOG, else service/catalog.yaml) as the Bento's own service/catalog.yaml: served
with `bentoml serve moderation:<version>` or as an image, a Bento serves exactly the models it was
built with. Those models must already be in the local model store (checked first, before BentoML
would try its cloud). The Bento is labelled with what an operator needs to trace it: app and API
version, git commit, catalog digest and model tags. The last line printed is the new tag.

It then exports the Bento's image build context (the Bento, its models from the store and the
Dockerfile BentoML generates) to `build/images/<name>-<version>/`, which `pulumi up` builds and
pushes (infra/image.py). `python -m tools.build_bento --export-only <tag>` re-exports a Bento
that is already in the store.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import bentoml
from bentoml._internal.container import construct_containerfile
from bentoml.exceptions import NotFound

from service.catalog import CATALOG_ENV, Catalog, catalog_path, load_catalog
from service.version import API_VERSION, APP_VERSION

REPO_ROOT = Path(__file__).resolve().parents[1]
# What the build context needs besides service/; see bentofile.yaml.
BUILD_FILES = (
    "bentofile.yaml",
    "requirements/service.txt",
    "bentofile.gpu.yaml",
    "requirements/gpu/service.txt",
)
GPU_BENTOFILE = "bentofile.gpu.yaml"  # the GPU track's image: CUDA runtime, torch's CUDA build
TAG_PREFIX = "__tag__:"  # how `bentoml build --output tag` marks the tag
IMAGE_CONTEXTS = REPO_ROOT / "build" / "images"  # infra/image.py builds from here


class BuildError(RuntimeError):
    """A build that cannot succeed as asked; the message says what to do."""


def git_commit() -> str:
    """HEAD, with `-dirty` when what the Bento packs differs from it; `unknown` without git."""
    git = shutil.which("git")
    if git is None:
        return "unknown"
    packed = ["service", *BUILD_FILES]
    try:
        commit = _run(git, "rev-parse", "HEAD", cwd=REPO_ROOT).stdout.strip()
        changes = _run(git, "status", "--porcelain", "--", *packed, cwd=REPO_ROOT).stdout
    except subprocess.CalledProcessError:
        return "unknown"
    return f"{commit}-dirty" if changes.strip() else commit


def _run(
    *command: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a fixed argument list (no shell, nothing from the user) and capture its output."""
    return subprocess.run(  # noqa: S603
        command, cwd=cwd, env=env, capture_output=True, text=True, check=check
    )


def resolved_model_tags(catalog: Catalog) -> dict[str, str]:
    """Catalog model name -> exact store tag; every model must be in the local store."""
    tags, missing = {}, []
    for spec in catalog.models:
        try:
            tags[spec.name] = str(bentoml.models.get(spec.tag).tag)
        except NotFound:
            missing.append(f"{spec.name} ({spec.tag})")
    if missing:
        raise BuildError(
            f"not in the model store ({os.environ.get('BENTOML_HOME', '~/bentoml')}): "
            f"{', '.join(missing)}. Store them first: `python -m tools.store ensure-default` "
            "for the offline default, `make import-model SOURCE=...` for Hugging Face models."
        )
    return tags


def bento_labels(catalog_file: Path, model_tags: dict[str, str]) -> dict[str, str]:
    return {
        "app-version": APP_VERSION,
        "api-version": API_VERSION,
        "git-commit": git_commit(),
        "catalog-sha256": hashlib.sha256(catalog_file.read_bytes()).hexdigest(),
        "models": ",".join(f"{name}={tag}" for name, tag in model_tags.items()),
    }


def stage_build_context(catalog_file: Path, directory: Path) -> None:
    """The repository's service code and build files, with `catalog_file` as the catalog."""
    shutil.copytree(
        REPO_ROOT / "service",
        directory / "service",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copyfile(catalog_file, directory / "service" / "catalog.yaml")
    for name in BUILD_FILES:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / name, directory / name)


def build(catalog_file: Path, version: str | None = None, gpu: bool = False) -> str:
    """Build the Bento (`gpu`: for the GPU node pool, bentofile.gpu.yaml) and return its tag."""
    catalog = load_catalog(catalog_file)
    labels = bento_labels(catalog_file, resolved_model_tags(catalog))
    with tempfile.TemporaryDirectory(prefix="moderation-bento-") as context:
        stage_build_context(catalog_file, Path(context))
        command = [sys.executable, "-m", "bentoml", "build", "--output", "tag"]
        command += [f"--label={key}={value}" for key, value in labels.items()]
        command += ["--version", version] if version else []
        command += ["--bentofile", GPU_BENTOFILE] if gpu else []
        # The staged copy alone is importable, and its catalog is the default one it serves.
        # BentoML would otherwise post usage statistics: the build makes no network call.
        env = {"BENTOML_DO_NOT_TRACK": "True", **os.environ, "PYTHONPATH": context}
        env.pop(CATALOG_ENV, None)
        completed = _run(*command, cwd=Path(context), env=env, check=False)
    if completed.returncode != 0:
        raise BuildError(f"bentoml build failed:\n{completed.stderr}{completed.stdout}")
    tag_lines = [line for line in completed.stdout.splitlines() if line.startswith(TAG_PREFIX)]
    if not tag_lines:
        raise BuildError(f"bentoml build printed no tag:\n{completed.stdout}")
    return tag_lines[-1].removeprefix(TAG_PREFIX)


def export_image_context(tag: str, contexts: Path = IMAGE_CONTEXTS) -> Path:
    """Write the image build context of Bento `tag` to `<contexts>/<name>-<version>/`: what
    `bentoml containerize` would hand the builder (BuildKit Dockerfile at env/docker/)."""
    bento = bentoml.get(tag)
    destination = contexts / f"{bento.tag.name}-{bento.tag.version}"
    with construct_containerfile(bento, enable_buildkit=True) as (context, _dockerfile):
        shutil.rmtree(destination, ignore_errors=True)
        shutil.copytree(context, destination)
    return destination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.build_bento", description=__doc__)
    parser.add_argument(
        "--catalog",
        type=Path,
        default=None,
        help=f"model catalog to pack (default: ${CATALOG_ENV}, else service/catalog.yaml)",
    )
    parser.add_argument("--version", help="Bento version (default: generated by BentoML)")
    parser.add_argument(
        "--gpu", action="store_true", help=f"the GPU track's Bento ({GPU_BENTOFILE}: CUDA image)"
    )
    parser.add_argument(
        "--export-only", metavar="TAG", help="only export the image context of this stored Bento"
    )
    args = parser.parse_args(argv)
    catalog_file = (args.catalog or catalog_path()).resolve()
    try:
        tag = args.export_only or build(catalog_file, args.version, args.gpu)
        context = export_image_context(tag)
    except (BuildError, ValueError, OSError, NotFound) as error:
        print(f"make bento failed: {error}", file=sys.stderr)
        return 2
    print(f"Image build context: {context.relative_to(REPO_ROOT)} (pulumi up builds it)")
    if not args.export_only:
        print(
            f"Built from catalog {catalog_file}. Serve it locally without keys: "
            f"MODERATION_AUTH_DISABLED=1 .venv/bin/bentoml serve {tag} (to require keys, set "
            "MODERATION_API_KEY_HASHES instead: docs/deploy.md#api-keys)"
        )
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
