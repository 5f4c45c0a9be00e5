"""Greedy generation, and comparing two greedy runs honestly.

Two greedy runs of one model (with and without the KV cache, a sequence alone and in a
left-padded batch) must pick the same tokens.  Tiny random models have near ties: two
candidate tokens whose logits differ by less than float32 rounding, where the runs may
rightly disagree.  So a difference in tokens is accepted only where it is such a tie:
up to the first differing step the logits of both runs must agree within a tolerance,
and at that step the two chosen tokens' logits must be closer than the runs' own
logits differ.  A cache that attends to the wrong positions moves the logits far
beyond that, and is caught.
"""

from __future__ import annotations

import copy
from typing import Any

NEW_TOKENS = 4
#: Logits of two greedy runs, float32: max |a - b| <= ATOL + RTOL * max |b|.
LOGITS_ATOL = 1e-4
LOGITS_RTOL = 1e-4
#: Inputs the prompt of a generation leaves out: generate builds the decoder's itself.
NOT_PROMPT = ("decoder_input_ids", "decoder_attention_mask", "labels")


def greedy_config(model: Any) -> Any:
    """The model's generation config, greedy, exactly NEW_TOKENS new tokens (no EOS)."""
    config = copy.deepcopy(model.generation_config)
    config.do_sample = False
    config.num_beams = 1
    config.max_new_tokens = NEW_TOKENS
    config.min_new_tokens = None
    config.max_length = None
    config.eos_token_id = None
    config.output_logits = True
    config.return_dict_in_generate = True
    if config.pad_token_id is None:
        config.pad_token_id = 0
    if model.config.is_encoder_decoder and config.decoder_start_token_id is None:
        # A tiny config has no generation defaults: start the decoder as the model's
        # config says, else from the pad token, as T5 does.
        start = getattr(model.config, "decoder_start_token_id", None)
        config.decoder_start_token_id = config.pad_token_id if start is None else start
    return config


def prompt_of(inputs: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in inputs.items() if name not in NOT_PROMPT}


def generate(model: Any, prompt: dict[str, Any], device: str, *, use_cache: bool) -> Any:
    """(new tokens (batch, NEW_TOKENS), logits per step (NEW_TOKENS, batch, vocab))."""
    import torch

    from test.common.models.model_inputs import to_device

    with torch.no_grad():
        result = model.generate(
            **to_device(prompt, device),
            generation_config=greedy_config(model),
            use_cache=use_cache,
        )
    sequences = result.sequences
    new = sequences[:, -len(result.logits) :] if result.logits else sequences[:, :0]
    return new.cpu(), torch.stack([step.float().cpu() for step in result.logits])


def disagreement(
    tokens_a: Any, logits_a: Any, tokens_b: Any, logits_b: Any, what: str
) -> str | None:
    """Why two greedy runs of one sequence disagree beyond a near tie, or None.

    tokens: (steps,), logits: (steps, vocab)."""
    steps = min(len(tokens_a), len(tokens_b))
    for step in range(steps):
        a, b = logits_a[step], logits_b[step]
        difference = (a - b).abs().max().item()
        allowed = LOGITS_ATOL + LOGITS_RTOL * b.abs().max().item()
        if difference > allowed:
            return (
                f"{what}: the logits of step {step} differ by {difference:.3g} "
                f"(allowed {allowed:.3g})"
            )
        if tokens_a[step] != tokens_b[step]:
            margin = abs(a[tokens_a[step]] - a[tokens_b[step]]).item()
            if margin > 2 * difference + 1e-7:
                return (
                    f"{what}: step {step} chose token {int(tokens_a[step])} against "
                    f"{int(tokens_b[step])} with a logit margin of {margin:.3g}, beyond "
                    f"the runs' difference {difference:.3g}"
                )
            return None  # a near tie: later steps continue from different tokens
    return None
