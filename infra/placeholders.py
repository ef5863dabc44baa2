"""Placeholder values in a stack's config: fine for `make plan`, fatal for a real deploy.

The committed stack files must validate and plan offline, so they hold values that look real but
are not anyone's: an all-zeros image digest, the example billing account, `example.com` names,
the documentation IP ranges (RFC 5737, RFC 3849). `make plan` lists them as a warning; under the
real Pulumi engine (`pulumi preview` / `pulumi up`) the program refuses to run until each is
replaced, naming every key, before a single resource is declared.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.settings import get_monitor

DOCUMENTATION_NETWORKS = tuple(
    ipaddress.ip_network(cidr)
    for cidr in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
_ZERO_DIGEST = re.compile(r"sha256:0{64}\b")
_EXAMPLE_BILLING_ACCOUNT = re.compile(r"^0{6}-0{6}-0{6}$")
# `example` as a whole name part: example.com, api.moderation.example.com, a@example.org, the
# moderation-example-com DNS zone, example.pagerduty.com.
_EXAMPLE_NAME = re.compile(r"(^|[.@-])example([.-]|$)")


@dataclass(frozen=True)
class Placeholder:
    key: str  # `moderation:budget.billingAccount`, `moderation:edge.domains[0]`
    value: str
    why: str

    def __str__(self) -> str:
        return f"{self.key}: {self.value!r} ({self.why})"


def _why(value: str, examples: frozenset[str]) -> str | None:
    if value in examples:
        return "the documented example of a secret setting"
    if _ZERO_DIGEST.search(value):
        return "all-zeros image digest: push your image and use its digest"
    if _EXAMPLE_BILLING_ACCOUNT.match(value):
        return "example billing account: `gcloud billing accounts list`"
    if _EXAMPLE_NAME.search(value.lower()):
        return "example name: use a domain or address you control"
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None
    if any(network.overlaps(documentation) for documentation in DOCUMENTATION_NETWORKS):
        return "documentation IP range: use your real egress range"
    return None


def _leaves(key: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for name, item in value.items():
            yield from _leaves(f"{key}.{name}", item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _leaves(f"{key}[{index}]", item)
    else:
        yield key, value


def find_placeholders(
    values: Mapping[str, Any], secret_examples: Mapping[str, Any] | None = None
) -> list[Placeholder]:
    """Every placeholder in decoded stack config (`{"moderation:edge": {...}, ...}`), in order."""
    examples = frozenset(
        str(leaf)
        for key, value in (secret_examples or {}).items()
        for _, leaf in _leaves(key, value)
    )
    found = []
    for key, value in values.items():
        for path, leaf in _leaves(key, value):
            why = _why(str(leaf), examples) if isinstance(leaf, str) else None
            if why is not None:
                found.append(Placeholder(path, leaf, why))
    return found


def under_mocks() -> bool:
    """True when `pulumi.runtime.set_mocks` stands in for the engine (`make plan`, the tests)."""
    return isinstance(get_monitor(), MockMonitor)


def describe(found: list[Placeholder]) -> str:
    return "\n  ".join(map(str, found))
