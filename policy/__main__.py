"""Entry point of the policy pack, run by the Pulumi CLI (`--policy-pack policy`).

The CLI runs this directory as a script: make the repository root importable (`policy`,
`infra`), as infra/__main__.py does for the program.
"""

import sys
from pathlib import Path

if not __package__:
    _policy_dir = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _policy_dir]
    sys.path.insert(0, str(_policy_dir.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policy.rules import policies

# Serves the policies to the CLI until it stops this process.
PolicyPack(
    name="moderation-secure-defaults",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policies(),
)
