"""Runtime settings from the environment (Kubernetes env / Secret), read once per worker."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bentoml.exceptions import BentoMLConfigException
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.key_list import parse_key_list

ENV_PREFIX = "MODERATION_"


class SettingsError(BentoMLConfigException):
    """A MODERATION_* variable is unusable: `bentoml serve` says which in one line and exits 1."""


class Settings(BaseModel):
    """Input limits, API keys and the per-key rate limit; each field is MODERATION_<FIELD>."""

    model_config = ConfigDict(frozen=True)

    max_inputs: int = Field(default=64, ge=1, le=1024, description="Texts per request.")
    max_input_chars: int = Field(default=20_000, ge=1, description="Characters per text.")
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, description="Request body size.")
    body_timeout_s: float = Field(
        default=10.0, gt=0, le=50, description="Time to receive a whole body (then 408)."
    )
    request_timeout_s: float = Field(
        default=50.0,
        gt=0,
        le=55,
        description="Time to answer (then 504); under BentoML's 60 s traffic timeout.",
    )
    key_requests_per_minute: int = Field(
        default=0, ge=0, description="Per-API-key limit of this process (then 429); 0 = none."
    )
    key_burst: int = Field(default=20, ge=1, description="Requests a key may send at once.")
    auth_disabled: bool = Field(default=False, description="Local development only.")
    api_key_hashes: tuple[str, ...] = Field(default=(), description="`sha256:<hex>` per key.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Errors name the variable; hashes from _HASHES (JSON or comma list) and _HASHES_FILE."""
        values: dict[str, object] = {
            name: environ[ENV_PREFIX + name.upper()]
            for name in (
                "max_inputs",
                "max_input_chars",
                "max_body_bytes",
                "body_timeout_s",
                "request_timeout_s",
                "key_requests_per_minute",
                "key_burst",
            )
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
                for problem in error.errors()
            )
            raise SettingsError(problems) from error
