"""Import a Hugging Face text-classification model into the BentoML model store.

Downloading from the Hub needs the internet, so it happens only here, in an explicit command
(`make import-model`), never while a Bento builds or serves. A local directory (a
`save_pretrained` output, or a Hub snapshot copied from a connected machine) imports the same
way: that is the offline path, and the one the tests take.

Every stored model records where it came from (label `source`), the exact revision (label
`revision`: the Hub commit, or a content digest for a local directory) and its label map
(metadata `id2label`), so a Bento that packs it says precisely what it serves.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import bentoml
import yaml

# Weights and exports for other runtimes, which the torch backend never reads.
_FOREIGN_HUB_FILES = [
    "*.onnx",
    "onnx/*",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.tflite",
    "tf_model*",
    "flax_model*",
    "coreml/*",
    "openvino/*",
]
_TAG_NAME = re.compile(r"^[a-z0-9]([-._a-z0-9]*[a-z0-9])?$")


class ModelImportError(RuntimeError):
    """An import that cannot succeed as asked; the message tells the user what to do."""


class HubUnreachableError(ModelImportError):
    """The Hugging Face Hub could not be reached (offline machine, proxy, outage)."""


@dataclass(frozen=True)
class ModelFiles:
    """A model directory on disk plus the provenance recorded with it in the store."""

    directory: Path
    source: str
    revision: str


def default_store_name(source: str) -> str:
    """A store name from a Hub id or directory: `KoalaAI/Text-Moderation` -> `text-moderation`."""
    base = Path(source).resolve().name if Path(source).is_dir() else source.rsplit("/", 1)[-1]
    name = re.sub(r"[^a-z0-9._-]+", "-", base.lower()).strip("-._")
    if not _TAG_NAME.match(name):
        raise ModelImportError(f"cannot derive a model name from {source!r}: pass --name")
    return name


def directory_digest(directory: Path) -> str:
    """`sha256:<hex>` over every file's relative path and bytes: the revision of a local model."""
    digest = hashlib.sha256()
    for path in sorted(
        p for p in directory.rglob("*") if p.is_file() and not _is_hidden(p, directory)
    ):
        header = f"{path.relative_to(directory).as_posix()}\0{path.stat().st_size}\0"
        digest.update(header.encode())
        with path.open("rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _is_hidden(path: Path, root: Path) -> bool:
    """Hidden entries (`.git`, the `.cache` of `hf download --local-dir`) are not model files."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def local_model_files(directory: Path, revision: str | None) -> ModelFiles:
    """A local directory; without an explicit revision its content digest pins it."""
    if not directory.is_dir():
        raise ModelImportError(f"{directory} is not a directory")
    resolved = directory.resolve()
    return ModelFiles(resolved, str(resolved), revision or directory_digest(resolved))


def download_from_hub(repo_id: str, revision: str | None) -> ModelFiles:
    """Resolve `revision` (default: the main branch) to a commit and download that snapshot."""
    import httpx2  # huggingface_hub's HTTP client
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    wanted = revision or "main"
    try:
        info = HfApi().model_info(repo_id, revision=wanted)
        has_safetensors = any(f.rfilename.endswith(".safetensors") for f in info.siblings or [])
        ignored = _FOREIGN_HUB_FILES + (["*.bin"] if has_safetensors else [])
        snapshot = snapshot_download(repo_id, revision=info.sha, ignore_patterns=ignored)
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise ModelImportError(
            f"{repo_id}@{wanted} not found on the Hub "
            f"(for a gated or private model, set HF_TOKEN): {error}"
        ) from error
    # Any other answer (a proxy's 403, a 5xx) also means the Hub is not usable from here.
    except (
        OfflineModeIsEnabled,
        LocalEntryNotFoundError,
        httpx2.TransportError,
        HfHubHTTPError,
    ) as error:
        reason = error.__cause__ or error
        raise HubUnreachableError(
            f"cannot reach the Hugging Face Hub at {constants.ENDPOINT} to fetch "
            f"{repo_id}@{wanted}: {reason}\n"
            "Importing from the Hub needs internet access. On an offline machine, download the "
            "model where the Hub is reachable (`hf` is huggingface_hub's CLI: this kit's "
            ".venv/bin/hf, or `pip install huggingface_hub`):\n"
            f"  hf download {repo_id} --revision {revision or '<commit>'} --local-dir <dir>\n"
            "copy <dir> to this machine, then import it from there:\n"
            "  make import-model SOURCE=<dir> REVISION=<commit> NAME=<name>"
        ) from error
    return ModelFiles(Path(snapshot), repo_id, str(info.sha))


def _label_map(directory: Path) -> dict[str, str]:
    """Load tokenizer and classifier once, as the service will, and return the label map.

    Loading the weights is the only check that proves the files are servable, and an import is
    rare enough to afford it.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        AutoTokenizer.from_pretrained(directory)
        model = AutoModelForSequenceClassification.from_pretrained(directory)
    except (OSError, ValueError, KeyError) as error:
        raise ModelImportError(
            f"{directory} is not a transformers sequence-classification model: {error}"
        ) from error
    return {str(index): label for index, label in sorted(model.config.id2label.items())}


def import_model(
    source: str, revision: str | None = None, name: str | None = None
) -> bentoml.Model:
    """Store the model at `source` (a local directory, else a Hub id) and return it."""
    name = name or default_store_name(source)
    if not _TAG_NAME.match(name):
        raise ModelImportError(f"invalid model name {name!r}: use lowercase letters, digits, - . _")
    source_path = Path(source)
    files = (
        local_model_files(source_path, revision)
        if source_path.is_dir()
        else download_from_hub(source, revision)
    )
    id2label = _label_map(files.directory)
    with bentoml.models.create(
        name,
        labels={"source": files.source, "revision": files.revision},
        metadata={"id2label": id2label, "backend": "transformers"},
    ) as model:
        shutil.copytree(
            files.directory,
            model.path,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(".*"),
        )
    return model


def catalog_entry(model: bentoml.Model) -> dict[str, object]:
    """A service/catalog.yaml entry for a stored model; its labels still need OpenAI categories."""
    labels = model.info.labels
    return {
        "name": model.tag.name,
        "backend": "transformers",
        "tag": str(model.tag),
        "source": labels["source"],
        "revision": labels["revision"],
        "labels": dict.fromkeys(model.info.metadata["id2label"].values()),
    }


def run_import(source: str, revision: str | None, name: str | None) -> int:
    """CLI body of `python -m tools.store import`: the tag on the last line, or a clear error."""
    try:
        model = import_model(source, revision, name)
    except ModelImportError as error:
        print(f"import failed: {error}", file=sys.stderr)
        return 2
    print(
        "Catalog entry (map each label to an OpenAI category or null, then add it to the catalog):"
    )
    print(yaml.safe_dump([catalog_entry(model)], sort_keys=False), end="")
    print(model.tag)
    return 0
