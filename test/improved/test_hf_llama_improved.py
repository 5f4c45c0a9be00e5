"""LLaMA in depth: text-generation pipeline, greedy generation, padding, checkpoints."""

from test.common.models import priority_models as pm

pytestmark = pm.PRIORITY_MODELS["llama"].marks


class TestLlama(pm.DecoderOnlyLMTests):
    spec = pm.PRIORITY_MODELS["llama"]
