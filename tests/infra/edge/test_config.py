"""Edge, release and API-key settings: a bad value fails before any resource, naming its key."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from infra.config import parse_stack_config
from tests.infra.plans import config_error, stack_config

CANARY = {
    "bento": "moderation:0.2.0",
    "image": "europe-west1-docker.pkg.dev/p/moderation/moderation@sha256:" + "1" * 64,
    "weight": 10,
}


def _set_canary(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        config["moderation:release"]["canary"] = {**CANARY, **fields}

    return change


def test_a_canary_is_accepted_with_bento_image_and_weight() -> None:
    config = copy.deepcopy(stack_config("prod"))
    _set_canary()(config)
    assert parse_stack_config(config).release.canary.weight == 10


@pytest.mark.parametrize("weight", [-1, 101])
def test_canary_weight_must_be_a_percentage(weight: int) -> None:
    assert "moderation:release.canary.weight" in config_error("dev", _set_canary(weight=weight))


@pytest.mark.parametrize("missing", ["bento", "weight"])
def test_canary_needs_bento_image_and_weight(missing: str) -> None:
    def change(config: dict[str, Any]) -> None:
        _set_canary()(config)
        del config["moderation:release"]["canary"][missing]

    message = config_error("dev", change)
    assert f"moderation:release.canary.{missing}: is required but missing" in message


def test_canary_must_be_another_bento_than_stable() -> None:
    message = config_error("prod", _set_canary(bento="moderation:0.1.0"))
    assert "canary.bento is the stable Bento moderation:0.1.0" in message


@pytest.mark.parametrize(
    ("hashes", "problem"),
    [
        ([], "at least 1 item"),
        (["sha256:" + "g" * 64], "should match pattern"),
        (["5" * 64], "should match pattern"),
        (["sha256:" + "a" * 64] * 2, "duplicates"),
    ],
)
def test_api_key_hashes_are_checked_without_echoing_them(hashes: list[str], problem: str) -> None:
    message = config_error("dev", lambda c: c.update({"moderation:apiKeyHashes": hashes}))
    assert "moderation:apiKeyHashes" in message
    assert problem in message
    assert all(value.removeprefix("sha256:") not in message for value in hashes)


def test_api_key_hashes_are_required() -> None:
    message = config_error("prod", lambda c: c.pop("moderation:apiKeyHashes"))
    assert "moderation:apiKeyHashes: is required but missing" in message


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("domains",), ["not a domain"]),
        (("domains",), []),
        (("logSampleRate",), 0),
        (("armor", "perIp", "intervalSec"), 45),
        (("armor", "perIp", "count"), 0),
        (("armor", "denyIpRanges"), ["10.0.0.1/8"]),
        (("armor", "denyRegionCodes"), ["france"]),
    ],
)
def test_bad_edge_values_name_their_key(path: tuple[str, ...], value: Any) -> None:
    def change(config: dict[str, Any]) -> None:
        section = config["moderation:edge"]
        for part in path[:-1]:
            section = section[part]
        section[path[-1]] = value

    assert f"moderation:edge.{'.'.join(path)}" in config_error("dev", change)


@pytest.mark.parametrize(
    ("setting", "value", "problem"),
    [
        ("ipBanDurationSec", None, "edge.armor.ipBanDurationSec must be set in prod"),
        ("adaptiveProtection", False, "edge.armor.adaptiveProtection must be true in prod"),
    ],
)
def test_prod_must_ban_abusive_ips_and_run_adaptive_protection(
    setting: str, value: Any, problem: str
) -> None:
    message = config_error("prod", lambda c: c["moderation:edge"]["armor"].update({setting: value}))
    assert problem in message


def test_draining_must_end_before_pods_are_killed() -> None:
    def change(config: dict[str, Any]) -> None:
        config["moderation:workload"]["terminationGraceSeconds"] = 20
        config["moderation:edge"]["connectionDrainingSec"] = 30

    assert "edge.connectionDrainingSec 30 is above workload.terminationGraceSeconds 20" in (
        config_error("dev", change)
    )


@pytest.mark.parametrize(
    ("workload", "edge", "problem"),
    [
        (
            {"terminationGraceSeconds": 70},
            {"backendTimeoutSec": 60},
            "workload.terminationGraceSeconds 70 is below workload.preStopSeconds 10 + "
            "edge.backendTimeoutSec 60 + 5 s to exit",
        ),
        (
            {"preStopSeconds": 30, "terminationGraceSeconds": 90},
            {"backendTimeoutSec": 60},
            "workload.terminationGraceSeconds 90 is below workload.preStopSeconds 30",
        ),
        ({}, {"backendTimeoutSec": 2}, "edge.backendTimeoutSec 2 leaves the service no time"),
    ],
    ids=["edge-timeout", "pre-stop", "no-time-for-the-service"],
)
def test_shutdown_must_fit_in_the_grace_period(
    workload: dict[str, int], edge: dict[str, int], problem: str
) -> None:
    def change(config: dict[str, Any]) -> None:
        config["moderation:workload"].update(workload)
        config["moderation:edge"].update(edge)

    assert problem in config_error("dev", change)


def test_a_shadow_must_be_another_bento_than_stable() -> None:
    def set_shadow(config: dict[str, Any]) -> None:
        config["moderation:release"]["shadow"] = {
            "bento": "moderation:0.1.0",
            "image": CANARY["image"],
        }

    assert "shadow.bento is the stable Bento moderation:0.1.0" in config_error("dev", set_shadow)


def test_a_shadow_takes_no_weight() -> None:
    """Its answers never reach clients: there is no share of traffic to give it."""
    message = config_error("dev", lambda c: c["moderation:release"].update(shadow=CANARY))
    assert "moderation:release.shadow.weight: is not a known setting" in message
