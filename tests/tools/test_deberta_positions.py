"""tools/deberta_positions.py: DeBERTa's relative-position attention over only the positions an
input has gives transformers' own scores, at every length, with shared and separate position
projections, and really multiplies fewer positions."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from bench.deberta import TINY, build_tiny_deberta
from tools.deberta_positions import windowed_position_attention

# TINY buckets relative positions beyond 8 tokens (16 buckets) and holds 128 positions, so these
# cross the bucketing's linear and logarithmic parts and reach the widest window.
LENGTHS = (1, 2, 7, 8, 9, 16, 17, 40, 127, 128)
SHAPES = {
    "separate position projections": TINY,
    "shared like DeBERTa-v3": replace(TINY, share_att_key=True, norm_rel_ebd="layer_norm"),
}


@pytest.fixture(scope="module", params=list(SHAPES))
def model(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> torch.nn.Module:
    directory = build_tiny_deberta(tmp_path_factory.mktemp("deberta"), shape=SHAPES[request.param])
    return AutoModelForSequenceClassification.from_pretrained(Path(directory)).eval()


@pytest.mark.parametrize("length", LENGTHS)
def test_windowed_attention_scores_as_transformers_does(
    model: torch.nn.Module, length: int
) -> None:
    generator = torch.Generator().manual_seed(length)
    input_ids = torch.randint(5, model.config.vocab_size, (2, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, max(1, length // 2) :] = 0  # a padded second text
    with torch.inference_mode():
        expected = model(input_ids=input_ids, attention_mask=attention_mask).logits
        with windowed_position_attention(model) as layers:
            windowed = model(input_ids=input_ids, attention_mask=attention_mask).logits
        restored = model(input_ids=input_ids, attention_mask=attention_mask).logits
    assert layers == model.config.num_hidden_layers
    assert torch.allclose(windowed, expected, atol=1e-5), (windowed - expected).abs().max()
    assert torch.equal(restored, expected)


def test_windowed_attention_multiplies_only_the_positions_the_input_has(
    model: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each position score product takes 2 x 5 position rows for 5 tokens, not all 2 x 16."""
    position_rows: list[int] = []
    bmm = torch.bmm

    def recording_bmm(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        position_rows.append(right.size(-1))
        return bmm(left, right)

    monkeypatch.setattr(torch, "bmm", recording_bmm)
    with torch.inference_mode(), windowed_position_attention(model):
        model(input_ids=torch.full((1, 5), 5), attention_mask=torch.ones(1, 5, dtype=torch.long))
    # per layer: query x key, c2p, p2c, then probabilities x value (whose right side is 16 wide)
    head_size = model.config.hidden_size // model.config.num_attention_heads
    per_layer = [5, 10, 10, head_size]
    assert position_rows == per_layer * model.config.num_hidden_layers
