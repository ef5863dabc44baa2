"""Request and response bodies: the OpenAI Moderation API shape, plus the error body."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.categories import CATEGORIES, Category


class ModerationRequest(BaseModel):
    """`input`: one text or a list of texts; `model`: a catalog name, absent for the default."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"input": ["I love you", "I will hurt you"]}]},
    )

    input: (
        Annotated[str, StringConstraints(strict=True)]
        | list[Annotated[str, StringConstraints(strict=True)]]
    ) = Field(description="Text(s) to classify.")
    model: str | None = Field(default=None, description="Model name; see GET /v1/models.")

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else self.input


def moderation_request_schema(*, max_inputs: int, max_input_chars: int) -> dict[str, Any]:
    """The request's JSON schema with the server's configured limits, for the OpenAPI document.

    The handler checks the limits itself (each with its own error code), so they are documented
    here rather than enforced by the model.
    """
    schema = ModerationRequest.model_json_schema()
    text = {"type": "string", "maxLength": max_input_chars}
    schema["properties"]["input"]["anyOf"] = [
        text,
        {"type": "array", "items": text, "minItems": 1, "maxItems": max_inputs},
    ]
    return schema


class ModerationResult(BaseModel):
    flagged: bool
    categories: dict[Category, bool]
    category_scores: dict[Category, float]
    category_applied_input_types: dict[Category, list[Literal["text"]]] = Field(
        default_factory=lambda: {category: ["text"] for category in CATEGORIES},
        description="Which input types each score applies to; text only here.",
    )


class ModerationResponse(BaseModel):
    id: str
    model: str
    results: list[ModerationResult]


class ModelCard(BaseModel):
    """One loaded model, in the OpenAI model-list shape plus what this service adds."""

    id: str = Field(description="The name to pass as `model`.")
    object: Literal["model"] = "model"
    created: int = Field(description="When the model was stored (Unix seconds).")
    owned_by: str = Field(description="Where the model came from.")
    tag: str = Field(description="BentoML model-store tag that is loaded.")
    backend: str
    default: bool = Field(description="Used when a request names no model.")
    aliases: list[str]
    categories: list[Category] = Field(description="Categories this model really scores.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
    app_version: str = Field(description="Version of the service code.")
    api_version: str = Field(description="Version of the public API (the path prefix).")
    bento: str | None = Field(
        description="The Bento serving (`moderation:<version>`); null when served from source."
    )


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """The OpenAI error body, so clients raise their usual typed exceptions."""

    error: ErrorDetail
