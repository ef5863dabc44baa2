"""The per-key token bucket (service/rate_limit.py) on a fake clock, and its settings."""

from __future__ import annotations

import pytest

from service.rate_limit import KeyRateLimiter, retry_after
from service.settings import Settings, SettingsError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_gets_its_burst_then_one_request_per_interval() -> None:
    clock = FakeClock()
    limiter = KeyRateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.acquire("key-a") for _ in range(3)] == [None, None, None]
    wait = limiter.acquire("key-a")
    assert wait == pytest.approx(1.0)
    clock.now += 0.5
    assert limiter.acquire("key-a") == pytest.approx(0.5)  # refused requests take no token
    clock.now += 0.5
    assert limiter.acquire("key-a") is None
    assert limiter.acquire("key-a") is not None


def test_keys_have_separate_buckets_and_idle_ones_refill_only_to_the_burst() -> None:
    clock = FakeClock()
    limiter = KeyRateLimiter(per_minute=6, burst=2, clock=clock)
    assert limiter.acquire("key-a") is None and limiter.acquire("key-a") is None
    assert limiter.acquire("key-a") is not None
    assert limiter.acquire("key-b") is None  # another key, another bucket
    clock.now += 3600
    assert [limiter.acquire("key-a") is None for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize(("wait", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60")])
def test_retry_after_is_whole_seconds_rounded_up(wait: float, header: str) -> None:
    assert retry_after(wait) == header


def test_limit_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "MODERATION_KEY_REQUESTS_PER_MINUTE": "600",
            "MODERATION_KEY_BURST": "50",
            "MODERATION_BODY_TIMEOUT_S": "2.5",
        }
    )
    assert (settings.key_requests_per_minute, settings.key_burst) == (600, 50)
    assert settings.body_timeout_s == 2.5
    assert Settings.from_env({}).key_requests_per_minute == 0  # off unless configured
    with pytest.raises(SettingsError, match="MODERATION_KEY_BURST"):
        Settings.from_env({"MODERATION_KEY_BURST": "0"})


def test_a_cost_counts_as_that_many_tokens_and_one_over_the_burst_leaves_a_debt() -> None:
    """The per-key character limit: a request's characters, not one token a request."""
    clock = FakeClock()
    limiter = KeyRateLimiter(per_minute=6000, burst=6000, clock=clock)
    assert limiter.acquire("key-a", 4000) is None
    assert limiter.acquire("key-a", 4000) == pytest.approx(20.0)  # 2,000 left, 100 a second
    clock.now += 60
    assert limiter.acquire("key-a", 10_000) is None  # larger than the burst: passes when full
    assert limiter.acquire("key-a", 1) == pytest.approx(40.01)  # and leaves the key in debt
