"""RoBERTa in depth: fill-mask pipeline, attention-mask padding, checkpoints."""

from test.common.models import priority_models as pm

pytestmark = pm.PRIORITY_MODELS["roberta"].marks


class TestRoberta(pm.MaskedLMTests):
    spec = pm.PRIORITY_MODELS["roberta"]
