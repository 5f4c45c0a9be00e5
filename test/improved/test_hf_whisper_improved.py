"""Whisper in depth: speech recognition pipeline, greedy generation, checkpoints."""

from test.common.models import priority_models as pm

pytestmark = pm.PRIORITY_MODELS["whisper"].marks


class TestWhisper(pm.SpeechSeq2SeqTests):
    spec = pm.PRIORITY_MODELS["whisper"]
