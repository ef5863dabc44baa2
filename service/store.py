"""Model-store helper CLI: puts the models the catalog names into the BentoML model store.

`python -m service.store ensure-default` stores the offline default model (alt-profanity-check's
scikit-learn pipeline, shipped inside the PyPI package) unless it is already there. It never
touches the network. `python -m service.store import --source <hub id|dir>` stores a Hugging Face
classifier (service/model_import.py); only a Hub source needs the network. `LocalModel` is how
the services reference those models: a missing one fails `bentoml serve` naming these commands.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata, resources

import attrs
import bentoml
from bentoml.exceptions import NotFound

from service.model_import import run_import

PROFANITY_PACKAGE = "alt-profanity-check"
PROFANITY_MODEL_NAME = "profanity-check"


def missing_model_message(tag: bentoml.Tag | str) -> str:
    """What to run when a catalog model is not in the local model store."""
    return (
        f"model {tag} is not in the BentoML model store "
        f"({os.environ.get('BENTOML_HOME', '~/bentoml')}). Store it first: "
        "`make serve` / `python -m service.store ensure-default` for the offline default, "
        "`make import-model SOURCE=<hub id or dir> REVISION=<commit>` for a Hugging Face model "
        "(docs/models.md); or point MODERATION_CATALOG at a catalog whose models are stored."
    )


@attrs.frozen
class LocalModel(bentoml.models.BentoModel):
    """A catalog model that is served from the local store only.

    BentoML's BentoModel falls back to pulling a missing model from BentoCloud, which fails with
    "No cloud context default found": a dead end for this kit. This one names the fix instead.
    """

    def resolve(self, base_path: str | None = None) -> bentoml.Model:
        if self.stored is None:
            raise NotFound(missing_model_message(self.tag))
        return super().resolve(base_path)


def profanity_check_tag() -> bentoml.Tag:
    """The store tag of the offline default: the model's name at the installed package version."""
    return bentoml.Tag(PROFANITY_MODEL_NAME, metadata.version(PROFANITY_PACKAGE))


def ensure_default() -> bentoml.Tag:
    """Store alt-profanity-check's vectorizer + classifier as one scikit-learn pipeline, once."""
    # Imported here: the services import this module for LocalModel, and need none of these.
    import joblib
    from sklearn.pipeline import Pipeline

    from service.backends import SKLEARN_PIPELINE_FILE

    tag = profanity_check_tag()
    try:
        return bentoml.models.get(tag).tag
    except NotFound:
        pass
    data = resources.files("profanity_check") / "data"
    pipeline = Pipeline(
        [
            ("tfidf", joblib.load(data / "vectorizer.joblib")),
            ("classifier", joblib.load(data / "model.joblib")),
        ]
    )
    class_names = {0: "clean", 1: "profane"}
    with bentoml.models.create(
        tag,
        labels={"source": f"pypi:{PROFANITY_PACKAGE}", "revision": tag.version or ""},
        metadata={
            "id2label": {str(index): class_names[index] for index in pipeline.classes_},
            "backend": "sklearn",
        },
    ) as model:
        joblib.dump(pipeline, model.path_of(SKLEARN_PIPELINE_FILE))
    return model.tag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.store", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("ensure-default", help="store the offline default model if absent")
    importer = commands.add_parser(
        "import", help="store a Hugging Face classifier from the Hub or a local directory"
    )
    importer.add_argument("--source", required=True, help="Hub id or local directory")
    importer.add_argument("--revision", help="Hub commit/branch/tag to pin (default: main)")
    importer.add_argument("--name", help="model-store name (default: from the source)")
    args = parser.parse_args(argv)
    if args.command == "import":
        return run_import(args.source, args.revision, args.name)
    if args.command == "ensure-default":
        print(ensure_default())
    return 0


if __name__ == "__main__":
    sys.exit(main())
