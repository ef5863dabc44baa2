"""How the service references its models in the local BentoML model store.

`LocalModel` is what the service class names for every catalog model: a missing one fails
`bentoml serve` naming the commands that store it (tools/store.py), never a cloud pull.
"""

from __future__ import annotations

import os

import attrs
import bentoml
from bentoml.exceptions import NotFound


def missing_model_message(tag: bentoml.Tag | str) -> str:
    """What to run when a catalog model is not in the local model store."""
    return (
        f"model {tag} is not in the BentoML model store "
        f"({os.environ.get('BENTOML_HOME', '~/bentoml')}). Store it first: "
        "`make serve` / `python -m tools.store ensure-default` for the offline default, "
        "`make import-model SOURCE=<hub id or dir> REVISION=<commit>` for a Hugging Face model "
        "(docs/models.md); or point MODERATION_CATALOG at a catalog whose models are stored."
    )


@attrs.frozen
class LocalModel(bentoml.models.BentoModel):
    """A catalog model that is served from the local store only.

    BentoML's BentoModel falls back to pulling a missing model from BentoCloud, which fails with
    "No cloud context default found": a dead end for this kit. This one names the fix instead.
    """

    def resolve(self, base_path: str | None = None) -> bentoml.Model:
        if self.stored is None:
            raise NotFound(missing_model_message(self.tag))
        return super().resolve(base_path)
