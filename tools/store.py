"""Model-store command: puts the models the catalog names into the BentoML model store.

`python -m tools.store ensure-default` stores the offline default model (alt-profanity-check's
scikit-learn pipeline, shipped inside the PyPI package) unless it is already there. It never
touches the network. `python -m tools.store import --source <hub id|dir>` stores a Hugging Face
classifier (tools/model_import.py); only a Hub source needs the network. The service references
those models as `service.store.LocalModel`.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata, resources

import bentoml
import joblib
from bentoml.exceptions import NotFound
from sklearn.pipeline import Pipeline

from service.backends import SKLEARN_PIPELINE_FILE
from tools.model_import import run_import

PROFANITY_PACKAGE = "alt-profanity-check"
PROFANITY_MODEL_NAME = "profanity-check"


def profanity_check_tag() -> bentoml.Tag:
    """The store tag of the offline default: the model's name at the installed package version."""
    return bentoml.Tag(PROFANITY_MODEL_NAME, metadata.version(PROFANITY_PACKAGE))


def ensure_default() -> bentoml.Tag:
    """Store alt-profanity-check's vectorizer + classifier as one scikit-learn pipeline, once."""
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
    parser = argparse.ArgumentParser(prog="python -m tools.store", description=__doc__)
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
