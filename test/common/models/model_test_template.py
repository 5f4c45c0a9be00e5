"""TEMPLATE for a priority model file: copy it, do not import it.

How to add a model (details in docs/PRIORITY_MODELS.md):
1. Add a row to `PRIORITY_MODELS` in test/common/models/priority_models.py: name, model
   type, the transformers class with the task head, the pipeline task, a REAL hub
   checkpoint id (used by --model-source hub), the modality marker, and the kind of
   generation ("decoder", "seq2seq", "speech" or None).  If the model type has no
   offline tokenizer yet, add it to FAMILY_OF_MODEL_TYPE in preprocessing.py.
2. Copy this file to test/improved/test_hf_<name>_improved.py (or run
   `python -m test.common.models.model_test_template NAME ClassName Bundle > that-file`).
3. Set ROW to the row's name, name the class, and pick the check bundle that fits:
   MaskedLMTests, DecoderOnlyLMTests, Seq2SeqLMTests, VisionTests or
   SpeechSeq2SeqTests, or combine the single check classes (PipelineTests,
   AttentionMaskTests, GenerationTests, BatchedGenerationTests ...) on top of
   PriorityModelTests.  Behaviour belongs in priority_models.py, never here.
4. Run it: pytest test/improved/test_hf_<name>_improved.py --run-model-tests --device cpu
"""

from __future__ import annotations

import sys

from test.common.models import priority_models as pm

ROW = "bert"  # TEMPLATE: the name of your PRIORITY_MODELS row

pytestmark = pm.PRIORITY_MODELS[ROW].marks


class TestTemplateModel(pm.MaskedLMTests):  # TEMPLATE: class name and check bundle
    spec = pm.PRIORITY_MODELS[ROW]


BUNDLES = (
    "MaskedLMTests",
    "DecoderOnlyLMTests",
    "Seq2SeqLMTests",
    "VisionTests",
    "SpeechSeq2SeqTests",
)
_HEADER_END = '"""\n\nfrom __future__ import annotations\n'


def fill_template(row: str, class_name: str, bundle: str) -> str:
    """The template's text filled in for `row`: a ready test module."""
    if bundle not in BUNDLES:
        raise ValueError(f"unknown check bundle {bundle!r}; choose one of {BUNDLES}")
    if row not in pm.PRIORITY_MODELS:
        raise KeyError(f"add a PRIORITY_MODELS row named {row!r} first")
    with open(__file__, encoding="utf-8") as stream:
        text = stream.read()
    body = text[text.index(_HEADER_END) + len(_HEADER_END) : text.index("\n\nBUNDLES = ")]
    body = body.replace("import sys\n\n", "")
    replacements = {
        'ROW = "bert"  # TEMPLATE: the name of your PRIORITY_MODELS row': f'ROW = "{row}"',
        "class TestTemplateModel(pm.MaskedLMTests):  # TEMPLATE: class name and check bundle": (
            f"class {class_name}(pm.{bundle}):"
        ),
    }
    for old, new in replacements.items():
        body = body.replace(old, new)
    return (
        f'"""{row}: priority model checks '
        f'(from test/common/models/model_test_template.py)."""\n{body}\n'
    )


if __name__ == "__main__":  # pragma: no cover - command-line entry
    sys.stdout.write(fill_template(*sys.argv[1:4]))
