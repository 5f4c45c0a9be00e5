"""GPT-2 in depth: text-generation pipeline, greedy generation, padding, checkpoints."""

from test.common.models import priority_models as pm

pytestmark = pm.PRIORITY_MODELS["gpt2"].marks


class TestGPT2(pm.DecoderOnlyLMTests):
    spec = pm.PRIORITY_MODELS["gpt2"]
