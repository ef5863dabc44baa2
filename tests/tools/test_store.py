from importlib import metadata

import bentoml
import joblib

from service.backends import SKLEARN_PIPELINE_FILE
from tools.store import ensure_default, main


def test_ensure_default_stores_profanity_check_once_with_its_provenance() -> None:
    version = metadata.version("alt-profanity-check")
    first = ensure_default()
    assert str(first) == f"profanity-check:{version}"
    assert main(["ensure-default"]) == 0  # second run: already there, nothing new
    assert [str(model.tag) for model in bentoml.models.list("profanity-check")] == [str(first)]

    stored = bentoml.models.get(first)
    assert stored.info.labels == {"source": "pypi:alt-profanity-check", "revision": version}
    assert stored.info.metadata["id2label"] == {"0": "clean", "1": "profane"}


def test_stored_default_model_is_the_trained_classifier() -> None:
    pipeline = joblib.load(bentoml.models.get(ensure_default()).path_of(SKLEARN_PIPELINE_FILE))
    clean, profane = pipeline.predict_proba(["have a lovely day", "shut up you stupid idiot"])[:, 1]
    assert clean < 0.5 < profane
