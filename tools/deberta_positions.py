"""DeBERTa-v2/v3 relative-position attention over only the positions a sequence has, for export.

In every layer, DeBERTa-v3 (KoalaAI/Text-Moderation's architecture) scores each token against all
2 x 256 relative-position embeddings, copies those scores per text of the batch, and then gathers
the L x L of them that an L-token sequence can use. For a 20-token text 472 of every 512 scores
are thrown away. Here each layer takes only the window of embeddings its gathers read:
span = the largest bucketed |relative position| + 1, rows att_span - span .. att_span + span - 1
of the projected embeddings, and the gather indices shifted by the same amount. The scores are the
same numbers (on one CPU thread, the int8 forward of the benchmark's median text took a fifth less
time, and its texts a tenth fewer CPU seconds: docs/performance.md). The projections of all the
embeddings stay constant (ONNX Runtime folds them at load); only the window depends on the input.

Used while tracing (tools/onnx_export.py); the export is then checked against the unpatched model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import MethodType

import torch
from transformers.models.deberta_v2.modeling_deberta_v2 import (
    DisentangledSelfAttention,
    build_relative_position,
    build_rpos,
    scaled_size_sqrt,
)


@contextmanager
def windowed_position_attention(model: torch.nn.Module) -> Iterator[int]:
    """Within the block, each of `model`'s DeBERTa-v2 relative-attention layers scores only the
    relative positions its input has; yields how many layers that is."""
    layers = [
        module
        for module in model.modules()
        if isinstance(module, DisentangledSelfAttention) and module.relative_attention
    ]
    for layer in layers:
        layer.disentangled_attention_bias = MethodType(_windowed_bias, layer)  # type: ignore[method-assign]
    try:
        yield len(layers)
    finally:
        for layer in layers:
            del layer.disentangled_attention_bias


def _windowed_bias(
    self: DisentangledSelfAttention,
    query_layer: torch.Tensor,
    key_layer: torch.Tensor,
    relative_pos: torch.Tensor | None,
    rel_embeddings: torch.Tensor,
    scale_factor: int,
) -> torch.Tensor | int:
    """DisentangledSelfAttention.disentangled_attention_bias (transformers' own), step for step,
    with each position score matrix cut to the window of positions its gather reads."""
    if relative_pos is None:
        relative_pos = build_relative_position(
            query_layer,
            key_layer,
            bucket_size=self.position_buckets,
            max_position=self.max_relative_positions,
        )
    if relative_pos.dim() == 2:
        relative_pos = relative_pos.unsqueeze(0).unsqueeze(0)
    elif relative_pos.dim() == 3:
        relative_pos = relative_pos.unsqueeze(1)
    elif relative_pos.dim() != 4:
        raise ValueError(f"Relative position ids must be of dim 2 or 3 or 4. {relative_pos.dim()}")
    relative_pos = relative_pos.to(device=query_layer.device, dtype=torch.long)
    # transformers passes these two in this order (they only matter for cross-attention)
    r_pos = build_rpos(
        query_layer, key_layer, relative_pos, self.max_relative_positions, self.position_buckets
    )
    att_span = self.pos_ebd_size
    span = torch.clamp(torch.maximum(relative_pos.abs().max(), r_pos.abs().max()) + 1, max=att_span)
    # A tensor range, not a Python slice: the tracer would freeze a slice's bounds.
    window = torch.arange(att_span - span, att_span + span, device=query_layer.device)
    rel_embeddings = rel_embeddings[0 : att_span * 2, :].unsqueeze(0)
    batch = query_layer.size(0) // self.num_attention_heads

    def position_scores(
        content: torch.Tensor,
        project: Callable[[torch.Tensor], torch.Tensor],
        relative: torch.Tensor,
    ) -> torch.Tensor:
        """`content` against the window of projected positions, each score taken at its
        relative position (shifted into the window) and scaled, as transformers does."""
        projected = self.transpose_for_scores(project(rel_embeddings), self.num_attention_heads)
        positions = projected.index_select(1, window).repeat(batch, 1, 1)
        scores = torch.bmm(content, positions.transpose(-1, -2))
        index = torch.minimum(torch.clamp(relative + span, min=0), span * 2 - 1)
        scores = torch.gather(
            scores,
            dim=-1,
            index=index.squeeze(0).expand([content.size(0), content.size(1), relative.size(-1)]),
        )
        return scores / scaled_size_sqrt(positions, scale_factor).to(dtype=scores.dtype)

    score: torch.Tensor | int = 0
    if "c2p" in self.pos_att_type:
        keys = self.key_proj if self.share_att_key else self.pos_key_proj
        score += position_scores(query_layer, keys, relative_pos)
    if "p2c" in self.pos_att_type:
        queries = self.query_proj if self.share_att_key else self.pos_query_proj
        score += position_scores(key_layer, queries, -r_pos).transpose(-1, -2)
    return score
