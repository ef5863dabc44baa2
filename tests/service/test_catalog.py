import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from service.catalog import (
    CATALOG_ENV,
    DEFAULT_CATALOG_PATH,
    Catalog,
    load_catalog,
    model_attribute,
)
from service.categories import CATEGORIES


def entry(name: str, **overrides: object) -> dict[str, object]:
    return {
        "name": name,
        "backend": "transformers",
        "tag": f"{name}:v1",
        "labels": {"toxic": "harassment", "ok": None},
        **overrides,
    }


def test_shipped_catalog_serves_the_offline_default_at_the_installed_package_version() -> None:
    catalog = load_catalog(DEFAULT_CATALOG_PATH)
    default = catalog.default
    assert default.name == "profanity-check"
    assert default.tag == f"profanity-check:{metadata.version('alt-profanity-check')}"
    assert default.covered_categories == {"harassment"}
    assert default.description  # what it detects is stated


def test_catalog_env_variable_overrides_the_shipped_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"default_model": "a", "models": [entry("a")]}))
    monkeypatch.setenv(CATALOG_ENV, str(path))
    assert load_catalog().default_model == "a"


def test_find_resolves_names_aliases_and_the_default() -> None:
    catalog = Catalog.model_validate(
        {"default_model": "a", "models": [entry("a"), entry("b", aliases=["bee"])]}
    )
    assert catalog.find(None).name == "a"
    assert catalog.find("b").name == "b"
    assert catalog.find("bee").name == "b"
    assert catalog.find("c") is None


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ({"default_model": "a", "models": [entry("a"), entry("a")]}, "clashes with"),
        ({"default_model": "a", "models": [entry("a"), entry("b", aliases=["a"])]}, "clashes"),
        ({"default_model": "z", "models": [entry("a")]}, "not a model in the catalog"),
        ({"default_model": "a", "models": []}, "at least 1"),
        (
            {"default_model": "a", "models": [entry("a", thresholds={"violence": 0.5})]},
            "no label maps to",
        ),
        ({"default_model": "a", "models": [entry("a", labels={"x": "rudeness"})]}, "rudeness"),
        ({"default_model": "a", "models": [entry("a", tag="a")]}, "tag"),
        (
            {"default_model": "a", "models": [entry("a", default_threshold=1.5)]},
            "default_threshold",
        ),
        (
            {"default_model": "a", "models": [entry("a", validated=["fp16"])]},
            "setting 'fp16' is not available for backend 'transformers' on cpu",
        ),
        (
            {"default_model": "a", "models": [entry("a", validated=["fp64"])]},
            "validated",
        ),
        (
            {"default_model": "a", "models": [entry("a", validated=[])]},
            "at least 1",
        ),
        (
            {"default_model": "a", "models": [entry("a", backend="onnx", validated=["bf16"])]},
            "setting 'bf16' is not available for backend 'onnx'",
        ),
        (
            {"default_model": "a", "models": [entry("a", backend="onnx", validated=["gpu:fp16"])]},
            "setting 'gpu:fp16' is not available for backend 'onnx' on gpu",
        ),
        (
            {"default_model": "a", "models": [entry("a", backend="sklearn", precision="int8")]},
            "setting 'int8' is not available for backend 'sklearn'",
        ),
    ],
)
def test_invalid_catalogs_are_rejected_with_the_reason(
    tmp_path: Path, document: dict[str, object], complaint: str
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ValueError, match=complaint) as raised:
        load_catalog(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("models", "complaint"),
    [
        ([entry("a-b"), entry("a.b")], "model 'a.b' clashes with model 'a-b'"),
        ([entry("a-b"), entry("a_b")], "model 'a_b' clashes with model 'a-b'"),
        (
            [entry("a.b"), entry("x", aliases=["a_b"])],
            "alias 'a_b' of 'x' clashes with model 'a.b'",
        ),
        (
            [entry("x", aliases=["a-b"]), entry("a_b")],
            "model 'a_b' clashes with alias 'a-b' of 'x'",
        ),
        ([entry("x", aliases=["y"]), entry("z", aliases=["y"])], "alias 'y' of 'z' clashes with"),
        ([entry("x", aliases=["x.y", "x_y"])], "alias 'x_y' of 'x' clashes with alias 'x.y' of"),
    ],
)
def test_names_and_aliases_that_differ_only_in_punctuation_are_rejected_naming_both(
    models: list[dict[str, object]], complaint: str
) -> None:
    default = models[0]["name"]
    with pytest.raises(ValueError, match=re.escape(complaint)):
        Catalog.model_validate({"default_model": default, "models": models})


# valid model names from a small alphabet, so that near-collisions are common
@given(st.lists(st.from_regex(r"[ab][ab._-]{0,2}", fullmatch=True), min_size=2, max_size=4))
def test_catalog_accepts_exactly_the_names_the_service_keeps_apart(names: list[str]) -> None:
    """The oracle is the service's own per-model attribute naming (service/catalog.py)."""
    attributes = {model_attribute(name) for name in names}
    document = {"default_model": names[0], "models": [entry(name) for name in names]}
    if len(attributes) == len(names):
        Catalog.model_validate(document)
    else:
        with pytest.raises(ValueError, match="clashes with"):
            Catalog.model_validate(document)


def test_threshold_falls_back_to_the_model_default() -> None:
    spec = Catalog.model_validate(
        {
            "default_model": "a",
            "models": [
                entry(
                    "a",
                    labels={"t": "harassment", "v": "violence"},
                    thresholds={"violence": 0.9},
                    default_threshold=0.3,
                )
            ],
        }
    ).default
    assert spec.threshold("violence") == 0.9
    assert spec.threshold("harassment") == 0.3


def test_categories_are_the_openai_moderation_categories() -> None:
    from openai.types.moderation import CategoryScores

    openai_names = {field.alias or name for name, field in CategoryScores.model_fields.items()}
    assert set(CATEGORIES) == openai_names
