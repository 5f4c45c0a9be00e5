"""CLIP in depth: zero-shot image classification pipeline, checkpoints."""

from test.common.models import priority_models as pm

pytestmark = pm.PRIORITY_MODELS["clip"].marks


class TestClip(pm.VisionTests):
    spec = pm.PRIORITY_MODELS["clip"]
