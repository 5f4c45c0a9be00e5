"""T5 in depth: summarization through generate(), generation, padding, checkpoints."""

from test.common.models import priority_models as pm

pytestmark = pm.PRIORITY_MODELS["t5"].marks


class TestT5(pm.Seq2SeqLMTests):
    spec = pm.PRIORITY_MODELS["t5"]
