"""DistilBERT in depth: fill-mask pipeline, attention-mask padding, checkpoints."""

from test.common.models import priority_models as pm

pytestmark = pm.PRIORITY_MODELS["distilbert"].marks


class TestDistilBert(pm.MaskedLMTests):
    spec = pm.PRIORITY_MODELS["distilbert"]
