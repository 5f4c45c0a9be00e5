"""The task rules (test/common/checks/tasks.py) and the greedy-run comparison
(test/common/checks/generation.py), on real tiny transformers models."""

from __future__ import annotations

import pytest

from test.common.checks import generation, tasks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def torch():
    # Imported here, not at the top: a bare `pytest` collects this (slow) module.
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def transformers():
    return pytest.importorskip("transformers")


def tiny_bert(transformers, cls: type, **extra):
    config = transformers.BertConfig(
        vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, **extra,
    )  # fmt: skip
    return cls(config).eval()


@pytest.fixture(scope="module")
def ids(torch):
    return {"input_ids": torch.arange(16).reshape(2, 8) % 30 + 1}


@pytest.mark.parametrize(
    ("cls", "task"),
    [
        ("BertForSequenceClassification", "sequence-classification"),
        ("BertForTokenClassification", "token-classification"),
        ("BertForQuestionAnswering", "question-answering"),
        ("BertForMaskedLM", "masked-lm"),
        ("BertForMultipleChoice", "multiple-choice"),
    ],
)
def test_a_head_satisfies_its_task_and_trains_on_its_labels(
    cls: str, task: str, torch, transformers, ids
) -> None:
    model = tiny_bert(transformers, getattr(transformers, cls))
    inputs = tasks.task_inputs((task,), ids, model.config)
    outputs = model(**inputs)
    assert tasks.output_problems((task,), model, inputs, outputs) == []
    labels = tasks.labels_for((task,), model, inputs)
    assert labels, f"{task} has labels"
    assert torch.isfinite(model(**inputs, **labels).loss)


def test_a_wrong_shape_is_named(transformers, ids) -> None:
    model = tiny_bert(transformers, transformers.BertForSequenceClassification, num_labels=3)
    outputs = model(**ids)
    # A rule for 3 labels against an output cut to 2 columns.
    outputs.logits = outputs.logits[:, :2]
    (problem,) = tasks.output_problems(("sequence-classification",), model, ids, outputs)
    expected = "logits has shape (2, 2), expected (2, 3) (None: any)"
    assert problem == f"sequence-classification: {expected}"


def test_language_logits_cover_every_token(transformers, ids) -> None:
    model = tiny_bert(transformers, transformers.BertForMaskedLM)
    outputs = model(**ids)
    outputs.logits = outputs.logits[:, :5]
    (problem,) = tasks.output_problems(("masked-lm",), model, ids, outputs)
    assert "logits cover 5 positions for 8 tokens" in problem


def test_no_labels_where_the_forward_takes_none(torch, transformers, ids) -> None:
    model = tiny_bert(transformers, transformers.BertModel)
    assert tasks.labels_for(("sequence-classification",), model, ids) == {}


STEPS, VOCAB = 3, 5


def logits(torch, *rows: list[float]):
    return torch.tensor(rows, dtype=torch.float32)


def test_identical_runs_agree(torch) -> None:
    tokens, scores = torch.tensor([1, 2, 3]), torch.randn(STEPS, VOCAB)
    assert generation.disagreement(tokens, scores, tokens.clone(), scores.clone(), "x") is None


def test_logits_beyond_the_tolerance_are_a_disagreement_even_with_equal_tokens(torch) -> None:
    tokens, scores = torch.tensor([1, 2, 3]), torch.randn(STEPS, VOCAB)
    moved = scores.clone()
    moved[1, 4] += 0.5
    problem = generation.disagreement(tokens, scores, tokens, moved, "cache")
    assert problem.startswith("cache: the logits of step 1 differ by 0.5")


def test_a_near_tie_may_pick_another_token(torch) -> None:
    scores = logits(torch, [0, 1.0, 1.0 + 1e-6, 0, 0], [0] * VOCAB, [0] * VOCAB)
    other = scores.clone()
    other[0, 1] += 2e-6
    a, b = torch.tensor([2, 0, 0]), torch.tensor([1, 3, 3])
    assert generation.disagreement(a, scores, b, other, "x") is None


def test_another_token_without_a_tie_is_a_disagreement(torch) -> None:
    scores = logits(torch, [0, 1.0, 2.0, 0, 0], [0] * VOCAB, [0] * VOCAB)
    a, b = torch.tensor([2, 0, 0]), torch.tensor([1, 0, 0])
    problem = generation.disagreement(a, scores, b, scores.clone(), "x")
    assert "step 0 chose token 2 against 1 with a logit margin of 1" in problem


def test_greedy_generation_of_a_tiny_gpt2_with_and_without_the_cache(
    torch, transformers, ids
) -> None:
    config = transformers.GPT2Config(vocab_size=32, n_embd=8, n_layer=1, n_head=2, n_positions=32)
    model = transformers.GPT2LMHeadModel(config).eval()
    prompt = {"input_ids": ids["input_ids"], "attention_mask": torch.ones(2, 8, dtype=torch.long)}
    cached, cached_logits = generation.generate(model, prompt, "cpu", use_cache=True)
    plain, plain_logits = generation.generate(model, prompt, "cpu", use_cache=False)
    assert cached.shape == (2, generation.NEW_TOKENS)
    for item in range(2):
        assert (
            generation.disagreement(
                cached[item], cached_logits[:, item], plain[item], plain_logits[:, item], "x"
            )
            is None
        )
