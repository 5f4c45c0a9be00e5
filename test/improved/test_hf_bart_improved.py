"""BART in depth: summarization through generate(), generation, padding, checkpoints."""

from test.common.models import priority_models as pm

pytestmark = pm.PRIORITY_MODELS["bart"].marks


class TestBart(pm.Seq2SeqLMTests):
    spec = pm.PRIORITY_MODELS["bart"]
