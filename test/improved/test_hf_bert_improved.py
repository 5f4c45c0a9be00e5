"""BERT in depth: fill-mask pipeline, attention-mask padding, checkpoints."""

from test.common.models import priority_models as pm

pytestmark = pm.PRIORITY_MODELS["bert"].marks


class TestBert(pm.MaskedLMTests):
    spec = pm.PRIORITY_MODELS["bert"]
