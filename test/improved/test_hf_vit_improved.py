"""ViT in depth: image-classification pipeline, checkpoints."""

from test.common.models import priority_models as pm

pytestmark = pm.PRIORITY_MODELS["vit"].marks


class TestViT(pm.VisionTests):
    spec = pm.PRIORITY_MODELS["vit"]
