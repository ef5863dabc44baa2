"""Batching, queue and timeout settings: read from MODERATION_*, errors name the variable."""

from __future__ import annotations

import pytest

from service.settings import Settings, SettingsError


def test_batching_queue_and_timeout_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "MODERATION_MAX_BATCH_TEXTS": "16",
            "MODERATION_MAX_BATCH_CHARS": "8192",
            "MODERATION_MAX_QUEUED_REQUESTS": "32",
            "MODERATION_MAX_QUEUED_TEXTS": "512",
            "MODERATION_REQUEST_TIMEOUT_S": "58",
        }
    )
    assert (settings.max_batch_texts, settings.max_batch_chars) == (16, 8192)
    assert (settings.max_queued_requests, settings.max_queued_texts) == (32, 512)
    assert settings.request_timeout_s == 58


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODERATION_MAX_QUEUED_REQUESTS": "0"}, "MODERATION_MAX_QUEUED_REQUESTS: "),
        ({"MODERATION_REQUEST_TIMEOUT_S": "soon"}, "MODERATION_REQUEST_TIMEOUT_S: "),
        (
            {"MODERATION_MAX_INPUTS": "128", "MODERATION_MAX_QUEUED_TEXTS": "100"},
            "MODERATION_MAX_QUEUED_TEXTS: 100 is below MODERATION_MAX_INPUTS 128",
        ),
    ],
    ids=["queue", "timeout", "largest-request-cannot-queue"],
)
def test_unusable_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)
