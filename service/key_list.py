"""The one API-key-hash list format, shared by the server's environment and the Pulumi config.

Both accept either form, so a value pasted from one into the other works: a JSON list
(`["sha256:...", "sha256:..."]`) or a comma-separated list (`sha256:...,sha256:...`).
Dependency-free, so that the Pulumi program can import it without loading the service.
"""

from __future__ import annotations

import json


def parse_key_list(text: str) -> list[str]:
    """The items of a JSON list or of a comma-separated list, stripped, empty items dropped."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as error:
            raise ValueError(f"not a valid JSON list: {error.msg}") from error
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ValueError("a JSON key list must hold strings only")
    else:
        items = stripped.split(",")
    return [item.strip() for item in items if item.strip()]
