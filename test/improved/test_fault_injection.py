"""Every injected fault of test/common/correctness/faults.py really changes what a model computes.

A fault that changed nothing would count as "missed" by scripts/inject_faults.py and
make the suite look weaker than it is (or, worse, a broken fault would hide a gap).
Each fault is applied, a tiny model is built and run under it, and its output must
differ from the same model's without the fault.
"""

from __future__ import annotations

import pytest

from test.common.correctness import faults
from test.common.plugins.model_source import TINY, record_model_weights

pytestmark = [pytest.mark.model_test, pytest.mark.model]


@pytest.fixture(autouse=True)
def _record_tiny_weights(request: pytest.FixtureRequest) -> None:
    record_model_weights(request.node, TINY)


#: An architecture whose code each fault reaches.
SUBJECTS = {
    "gelu-tanh": "bert",
    "silu-as-gelu": "llama",
    "attention-scale": "bert",
    "mask-ignored": "bert",
    "layernorm-no-bias": "bert",
    "layernorm-eps": "bert",
    "rmsnorm-eps": "llama",
    "rope-frequency": "llama",
    "dropout-in-eval": "bert",
    "loading-drops-norms": "bert",
    "weights-untied": "t5",
}


def _output(model_type: str) -> object:
    import torch

    from test.common.models import model_inputs, tiny_models
    from test.common.models.registry import load_registry

    tiny = tiny_models.build_tiny_model(model_type)
    recipe = model_inputs.recipe_for(tiny.model, load_registry()[model_type].inputs)
    batch, _, _ = model_inputs.padded_text_batch(recipe)
    torch.manual_seed(0)
    with torch.no_grad():
        return model_inputs.primary_output(tiny.model(**batch, use_cache=False), recipe.output)


def test_every_fault_has_a_subject() -> None:
    assert set(SUBJECTS) == set(faults.FAULTS)


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_the_fault_changes_the_output(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    model_type = SUBJECTS[name]
    clean = _output(model_type)
    faults.FAULTS[name].apply(monkeypatch)
    if name == "rope-frequency":
        # Rotary forwards are decorated when their modeling module is imported, which
        # in a fresh process (scripts/inject_faults.py) happens under the fault; here
        # llama is imported already, so its forward is decorated again.
        from transformers import modeling_rope_utils
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        undecorated = LlamaRotaryEmbedding.forward.__wrapped__
        redecorated = modeling_rope_utils.dynamic_rope_update(undecorated)
        monkeypatch.setattr(LlamaRotaryEmbedding, "forward", redecorated)
    faulty = _output(model_type)
    assert clean.shape == faulty.shape
    assert not torch.allclose(clean, faulty, atol=1e-6, rtol=1e-5), f"{name} changed nothing"
