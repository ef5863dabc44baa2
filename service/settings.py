"""Runtime settings from the environment (Kubernetes env / Secret), read once per worker."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bentoml.exceptions import BentoMLConfigException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.key_list import parse_key_list

ENV_PREFIX = "MODERATION_"


class SettingsError(BentoMLConfigException):
    """A MODERATION_* variable is unusable: `bentoml serve` says which in one line and exits 1."""


# Read from MODERATION_<NAME> when set (the others have their own parsing below).
_NUMBERS = (
    "max_inputs",
    "max_input_chars",
    "max_body_bytes",
    "max_batch_texts",
    "max_batch_chars",
    "max_queued_requests",
    "max_queued_texts",
    "body_timeout_s",
    "request_timeout_s",
    "key_requests_per_minute",
    "key_burst",
    "key_chars_per_minute",
    "header_timeout_s",
    "client_error_lines_per_s",
)


class Settings(BaseModel):
    """Limits, batching, timeouts, API keys and the per-key rate limit: MODERATION_<FIELD>."""

    model_config = ConfigDict(frozen=True)

    max_inputs: int = Field(default=64, ge=1, le=1024, description="Texts per request.")
    max_input_chars: int = Field(default=20_000, ge=1, description="Characters per text.")
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, description="Request body size.")
    max_batch_texts: int = Field(default=64, ge=1, description="Texts per batch (one model).")
    max_batch_chars: int = Field(
        default=2048,
        ge=1,
        description="Characters per model call, padded (texts x longest). On a CPU lane larger "
        'calls cost more per text, not less (docs/performance.md "Lanes"); a GPU pod sets more.',
    )
    max_queued_requests: int = Field(
        default=256, ge=1, description="Requests accepted and not yet answered; then 503."
    )
    max_queued_texts: int = Field(
        default=4096, ge=1, description="Texts accepted and not yet scored; then 503."
    )
    body_timeout_s: float = Field(
        default=10.0, gt=0, le=50, description="Time to receive a whole body (then 408)."
    )
    request_timeout_s: float = Field(
        default=50.0,
        gt=0,
        le=3600,
        description="Time to answer (then 504); on GKE the edge's backendTimeoutSec - 2 s.",
    )
    key_requests_per_minute: int = Field(
        default=0, ge=0, description="Per-API-key limit of this process (then 429); 0 = none."
    )
    key_burst: int = Field(default=20, ge=1, description="Requests a key may send at once.")
    key_chars_per_minute: int = Field(
        default=0,
        ge=0,
        description="Characters a key may have scored a minute, counted after normalisation "
        "(then 429); a minute's worth at once; 0 = none.",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Time to receive a request's line and headers, and the rest of a body the "
        "API did not read (then the connection is closed).",
    )
    client_error_lines_per_s: int = Field(
        default=10,
        ge=1,
        description="JSON log lines a second per 4xx status or refusal reason; the lines past it "
        "are counted in the next one's `left_out`.",
    )
    auth_disabled: bool = Field(default=False, description="Local development only.")
    api_key_hashes: tuple[str, ...] = Field(default=(), description="`sha256:<hex>` per key.")

    @model_validator(mode="after")
    def _largest_request_fits_the_queue(self) -> Settings:
        if self.max_queued_texts < self.max_inputs:
            raise ValueError(
                f"{ENV_PREFIX}MAX_QUEUED_TEXTS: {self.max_queued_texts} is below "
                f"{ENV_PREFIX}MAX_INPUTS {self.max_inputs}: the largest request could never queue"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Errors name the variable; hashes from _HASHES (JSON or comma list) and _HASHES_FILE."""
        values: dict[str, object] = {
            name: environ[ENV_PREFIX + name.upper()]
            for name in _NUMBERS
            if environ.get(ENV_PREFIX + name.upper())
        }
        values["auth_disabled"] = environ.get(ENV_PREFIX + "AUTH_DISABLED", "") == "1"
        try:
            hashes = parse_key_list(environ.get(ENV_PREFIX + "API_KEY_HASHES", ""))
        except ValueError as error:
            raise SettingsError(f"{ENV_PREFIX}API_KEY_HASHES: {error}") from error
        if hashes_file := environ.get(ENV_PREFIX + "API_KEY_HASHES_FILE"):
            try:
                lines = Path(hashes_file).read_text(encoding="utf-8").splitlines()
            except OSError as error:
                raise SettingsError(
                    f"{ENV_PREFIX}API_KEY_HASHES_FILE: cannot read {hashes_file}: {error.strerror}"
                ) from error
            hashes += [line.strip() for line in lines if not line.strip().startswith("#")]
        values["api_key_hashes"] = tuple(item for item in hashes if item)
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = "; ".join(
                f"{ENV_PREFIX}{str(problem['loc'][0]).upper()}: {problem['msg']}"
                if problem["loc"]
                else str(problem["msg"]).removeprefix("Value error, ")
                for problem in error.errors()
            )
            raise SettingsError(problems) from error
