"""Synthetic inputs per modality for the architecture battery.

The input kind is read from the model itself (its `forward` signature and
`main_input_name`), so one recipe covers a whole family; a registry row's `inputs`
table can name the kind and its sizes where the guess is wrong:

    inputs = { kind = "text", sequence_length = 12 }

Kinds: text (token ids, plus decoder ids for encoder-decoders), text+image (dual
encoders such as CLIP), image, video (5-D clips), audio-features (spectrogram frames),
audio-values (raw waveform, optionally with a channel axis), time-series (past values
with the masks, time features and padding the model takes), text+video (token ids
and a 5-D clip: video grounding), embeddings (float vectors of shape (batch,
sequence_length, feature_size) under `input_name`: Perceiver's preprocessor-free
`inputs`).  `id_inputs`, `image_inputs` and `ones_inputs` add more token-id,
image-shaped and all-ones inputs beside the main one (OneFormer's task tokens, SegGPT's
prompt image and mask, their masks).  Token ids are drawn
from a range that avoids every special token id of the config, so an image or pad
token never appears by chance.

torch is imported lazily (only model tests call this module).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

SEQUENCE_LENGTH = 8
#: The shorter item of the padded batch has this many fewer tokens.
PADDING = 3
AUDIO_SAMPLES = 1600
AUDIO_FRAMES = 32
DEFAULT_IMAGE_SIZE = 64
SEED = 1234

CROSS_BATCH = ("logits_per_", "loss")

KINDS = (
    "text",
    "text+image",
    "image",
    "video",
    "audio-features",
    "audio-values",
    "time-series",
    "text+video",
    "embeddings",
)


@dataclasses.dataclass(frozen=True)
class InputRecipe:
    """How to make inputs for one model: the kind and its sizes."""

    kind: str
    sequence_length: int = SEQUENCE_LENGTH
    image_size: int = DEFAULT_IMAGE_SIZE
    #: Width of a non-square image (0: square, image_size wide); image_size is the height.
    image_width: int = 0
    channels: int = 3
    frames: int = AUDIO_FRAMES
    feature_size: int = 80
    #: Spectrogram layout: (batch, features, frames) when True, else (batch, frames, features).
    features_first: bool = True
    samples: int = AUDIO_SAMPLES
    #: Waveform channels: 0 gives (batch, samples), n gives (batch, n, samples) (codecs).
    audio_channels: int = 0
    #: Frames of a video clip: (batch, video_frames, channels, height, width).
    video_frames: int = 2
    #: The main input's argument name where the model does not use the kind's usual
    #: one (pixel_values_videos, input_values holding a spectrogram).
    input_name: str = ""
    #: Layout models: one box (x0, y0, x1, y1) in [0, 1000] per token, as `bbox`.
    bbox: bool = False
    #: Boxes as floats in [0, 1] (UDOP) instead of integers on the 0-1000 grid.
    bbox_normalized: bool = False
    #: Argument of a per-frame spectrogram mask (all frames real), where the model needs one.
    feature_mask_name: str = ""
    #: Time series: past steps (context plus the largest lag), channels (0 gives
    #: (batch, steps), n gives (batch, steps, n)), time features (negative: the model
    #: takes none), future steps of time features (0: none), the observed-mask argument,
    #: the padding-indicator argument (TimesFM: 0 marks a real step), a frequency id.
    context_length: int = 32
    series_channels: int = 0
    time_features: int = -1
    prediction_length: int = 0
    observed_mask_name: str = ""
    padding_name: str = ""
    frequency: bool = False
    vocab_size: int = 100
    low_token: int = 0
    accepts_mask: bool = False
    decoder_ids: bool = False
    #: More token-id inputs, by argument name: their lengths (OneFormer's task_inputs).
    id_inputs: Mapping[str, int] = dataclasses.field(default_factory=dict)
    #: More float inputs shaped like pixel_values, by argument name (SegGPT's prompts).
    image_inputs: tuple[str, ...] = ()
    #: All-ones integer inputs, by argument name: their lengths, 0 for shape (batch,)
    #: (the masks of `id_inputs`; OmDet-Turbo's one-class-per-image classes_structure).
    ones_inputs: Mapping[str, int] = dataclasses.field(default_factory=dict)
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def main_input(self) -> str:
        if self.input_name:
            return self.input_name
        return {
            "text": "input_ids",
            "text+image": "input_ids",
            "image": "pixel_values",
            "video": "pixel_values",
            "audio-features": "input_features",
            "audio-values": "input_values",
            "time-series": "past_values",
            "text+video": "input_ids",
            "embeddings": "inputs_embeds",
        }[self.kind]


def forward_parameters(model: Any) -> set[str]:
    return set(inspect.signature(model.forward).parameters)


def _sub(config: Any, *names: str) -> Any:
    for name in names:
        sub = getattr(config, name, None)
        if sub is not None:
            return sub
    return config


def _first_int(*values: Any, default: int) -> int:
    for value in values:
        if isinstance(value, (list, tuple)) and value:
            value = value[0]
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


def _special_token_ids(config: Any) -> set[int]:
    ids: set[int] = set()
    for name, value in vars(config).items():
        if not name.endswith(("_token_id", "_token_index", "_id", "_token_ids")):
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        ids.update(v for v in values if isinstance(v, int) and not isinstance(v, bool))
    return ids


def _token_range(config: Any) -> tuple[int, int]:
    """[low, high): ordinary token ids, above every small special id."""
    text = _sub(config, "text_config")
    vocab = _first_int(getattr(text, "vocab_size", None), default=100)
    specials = _special_token_ids(config) | _special_token_ids(text)
    low = 1 + max((i for i in specials if i < vocab // 2), default=-1)
    high = min((i for i in specials if i >= vocab // 2), default=vocab)
    return low, max(high, low + 2)


def _features_first(model: Any, feature_size: int) -> bool:
    """Whisper-like encoders start with a Conv1d over the mel bins (channels first);
    conformers start with a Conv2d or a Linear over (frames, features)."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Conv1d):
            return module.in_channels == feature_size
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            return False
    return True


def guess_kind(model: Any) -> str:
    parameters = forward_parameters(model)
    main = getattr(model, "main_input_name", "input_ids")
    if "past_values" in parameters:
        return "time-series"
    if main == "input_features" or (
        "input_features" in parameters and "input_ids" not in parameters
    ):
        return "audio-features"
    if main == "input_values" or ("input_values" in parameters and "input_ids" not in parameters):
        return "audio-values"
    if "pixel_values" in parameters and "input_ids" in parameters:
        # Vision-language models need image tokens matching the image: text-only by
        # default; dual encoders (CLIP-like) need both inputs.
        has_image_tokens = any(
            hasattr(model.config, name) for name in ("image_token_id", "image_token_index")
        )
        return "text" if has_image_tokens else "text+image"
    if "pixel_values" in parameters or main == "pixel_values":
        return "image"
    return "text"


def _series_guess(config: Any, parameters: set[str]) -> dict[str, Any]:
    """Time-series sizes from the config: lagged models (TimeSeriesTransformer,
    Informer, Autoformer) read `max(lags_sequence)` steps before the context."""
    lags = getattr(config, "lags_sequence", None) or [0]
    channels = _first_int(getattr(config, "num_input_channels", None), default=0)
    input_size = _first_int(getattr(config, "input_size", None), default=1)
    time_features = sum(
        _first_int(getattr(config, name, None), default=0)
        for name in ("num_time_features", "num_dynamic_real_features")
    )
    masks = [name for name in ("past_observed_mask", "observed_mask") if name in parameters]
    return {
        "context_length": _first_int(getattr(config, "context_length", None), default=32)
        + max(lags),
        "series_channels": channels or (input_size if input_size > 1 else 0),
        "time_features": time_features if "past_time_features" in parameters else -1,
        "prediction_length": _first_int(getattr(config, "prediction_length", None), default=0)
        if "future_time_features" in parameters
        else 0,
        "observed_mask_name": masks[0] if masks else "",
        "padding_name": "past_values_padding" if "past_values_padding" in parameters else "",
        "frequency": "freq" in parameters,
    }


def recipe_for(model: Any, row_inputs: Mapping[str, Any] | None = None) -> InputRecipe:
    """The input recipe of `model`: guessed from the model, then the registry row."""
    row = dict(row_inputs or {})
    config = model.config
    vision = _sub(config, "vision_config")
    parameters = forward_parameters(model)
    low, high = _token_range(config)
    audio = _sub(config, "audio_config", "encoder_config")
    feature_size = _first_int(
        getattr(audio, "num_mel_bins", None),
        getattr(audio, "feature_size", None),
        getattr(audio, "input_feat_per_channel", None),
        default=80,
    )
    guessed = {
        "kind": guess_kind(model),
        "image_size": _first_int(getattr(vision, "image_size", None), default=DEFAULT_IMAGE_SIZE),
        "channels": _first_int(getattr(vision, "num_channels", None), default=3),
        "video_frames": _first_int(
            getattr(vision, "num_frames", None), getattr(vision, "frames_per_clip", None), default=2
        ),
        "feature_size": feature_size,
        "frames": 2 * _first_int(getattr(audio, "max_source_positions", None), default=16),
        "features_first": _features_first(model, feature_size),
        "vocab_size": high,
        "low_token": low,
        "accepts_mask": "attention_mask" in parameters,
        "decoder_ids": "decoder_input_ids" in parameters,
    }
    if (row.get("kind") or guessed["kind"]) == "time-series":
        guessed.update(_series_guess(config, parameters))
    fields = {field.name for field in dataclasses.fields(InputRecipe)}
    extra = {key: value for key, value in row.items() if key not in fields}
    # TOML arrays are lists; the frozen recipe keeps tuples.
    known = {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in row.items()
        if key in fields
    }
    return InputRecipe(**{**guessed, **known, "extra": extra})


def _generator(seed: int) -> Any:
    import torch

    return torch.Generator().manual_seed(seed)


def _token_ids(recipe: InputRecipe, batch: int, length: int, seed: int) -> Any:
    import torch

    return torch.randint(
        recipe.low_token, recipe.vocab_size, (batch, length), generator=_generator(seed)
    )


def _boxes(batch: int, length: int, generator: Any) -> Any:
    """Valid layout boxes: x0 <= x1 and y0 <= y1, on the 0-1000 grid of LayoutLM."""
    import torch

    corners = torch.randint(0, 1001, (batch, length, 2, 2), generator=generator)
    low, high = corners.min(dim=2).values, corners.max(dim=2).values
    return torch.cat([low, high], dim=-1)


def make_inputs(recipe: InputRecipe, batch: int = 2, *, seed: int = SEED) -> dict[str, Any]:
    """A batch of `batch` synthetic items (CPU tensors) for the recipe's kind."""
    import torch

    generator = _generator(seed)
    inputs: dict[str, Any] = {}
    if recipe.kind in ("text", "text+image", "text+video"):
        inputs["input_ids"] = _token_ids(recipe, batch, recipe.sequence_length, seed)
        if recipe.accepts_mask:
            inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        if recipe.bbox:
            boxes = _boxes(batch, recipe.sequence_length, generator)
            inputs["bbox"] = boxes / 1000 if recipe.bbox_normalized else boxes
    if recipe.kind in ("image", "text+image"):
        width = recipe.image_width or recipe.image_size
        shape = (batch, recipe.channels, recipe.image_size, width)
        inputs["pixel_values"] = torch.randn(shape, generator=generator)
    if recipe.kind in ("video", "text+video"):
        size = recipe.image_size
        shape = (batch, recipe.video_frames, recipe.channels, size, size)
        name = "pixel_values" if recipe.kind == "text+video" else recipe.main_input
        inputs[name] = torch.randn(shape, generator=generator)
    if recipe.kind == "audio-features":
        shape = (batch, recipe.feature_size, recipe.frames)
        if not recipe.features_first:
            shape = (batch, recipe.frames, recipe.feature_size)
        inputs[recipe.main_input] = torch.randn(shape, generator=generator)
        if recipe.feature_mask_name:
            inputs[recipe.feature_mask_name] = torch.ones((batch, recipe.frames), dtype=torch.long)
    if recipe.kind == "audio-values":
        channels = (recipe.audio_channels,) if recipe.audio_channels else ()
        shape = (batch, *channels, recipe.samples)
        inputs[recipe.main_input] = torch.randn(shape, generator=generator)
    if recipe.kind == "time-series":
        inputs.update(_series_inputs(recipe, batch, generator))
    if recipe.decoder_ids and recipe.kind != "text+image":
        inputs["decoder_input_ids"] = _token_ids(recipe, batch, recipe.sequence_length, seed + 1)
    inputs.update(_side_inputs(recipe, batch, seed, generator))
    return inputs


def _side_inputs(recipe: InputRecipe, batch: int, seed: int, generator: Any) -> dict[str, Any]:
    """Inputs beside the kind's own: float embeddings (the embeddings kind), more
    token ids (`id_inputs`), all-ones masks (`ones_inputs`) and more image-shaped
    tensors (`image_inputs`)."""
    import torch

    inputs: dict[str, Any] = {}
    if recipe.kind == "embeddings":
        shape = (batch, recipe.sequence_length, recipe.feature_size)
        inputs[recipe.main_input] = torch.randn(shape, generator=generator)
    for offset, (name, length) in enumerate(recipe.id_inputs.items(), start=2):
        inputs[name] = _token_ids(recipe, batch, length, seed + offset)
    for name, length in recipe.ones_inputs.items():
        inputs[name] = torch.ones((batch, length) if length else (batch,), dtype=torch.long)
    width = recipe.image_width or recipe.image_size
    for name in recipe.image_inputs:
        shape = (batch, recipe.channels, recipe.image_size, width)
        inputs[name] = torch.randn(shape, generator=generator)
    return inputs


def _series_inputs(recipe: InputRecipe, batch: int, generator: Any) -> dict[str, Any]:
    """past_values (with its observed mask and time features where the model takes
    them), and the future time features that seq2seq forecasters decode from."""
    import torch

    channels = (recipe.series_channels,) if recipe.series_channels else ()
    past = torch.randn((batch, recipe.context_length, *channels), generator=generator)
    inputs = {"past_values": past}
    if recipe.observed_mask_name:
        inputs[recipe.observed_mask_name] = torch.ones_like(past)
    if recipe.padding_name:
        inputs[recipe.padding_name] = torch.zeros(past.shape, dtype=torch.long)
    if recipe.frequency:
        inputs["freq"] = torch.zeros((batch, 1), dtype=torch.long)
    if recipe.time_features >= 0:
        features = recipe.time_features
        inputs["past_time_features"] = torch.randn(
            (batch, recipe.context_length, features), generator=generator
        )
        if recipe.prediction_length:
            inputs["future_time_features"] = torch.randn(
                (batch, recipe.prediction_length, features), generator=generator
            )
    return inputs


def padded_text_batch(recipe: InputRecipe, *, seed: int = SEED) -> tuple[dict, list[dict], int]:
    """Two texts of different lengths, right-padded into one batch with an attention
    mask, and each text alone.  Returns (batch, singles, padding of item 1)."""
    import torch

    batch = make_inputs(recipe, 2, seed=seed)
    padding = PADDING if recipe.accepts_mask and recipe.kind == "text" else 0
    if padding:
        batch["attention_mask"][1, -padding:] = 0
        batch["input_ids"][1, -padding:] = recipe.low_token
    singles = []
    for index in range(2):
        single = {key: value[index : index + 1].clone() for key, value in batch.items()}
        if padding and index == 1:
            for key in ("input_ids", "attention_mask", "bbox"):
                if key in single:
                    single[key] = single[key][:, :-padding]
        singles.append(single)
    del torch
    return batch, singles, padding


def bad_inputs(recipe: InputRecipe) -> dict[str, dict[str, Any]]:
    """Malformed variants of a valid batch: wrong rank, empty, and for id inputs wrong dtype."""
    import torch

    good = make_inputs(recipe, 2)
    main = recipe.main_input
    tensor = good[main]
    empty_shape = list(tensor.shape)
    empty_shape[-1] = 0
    variants = {
        "wrong rank": {**good, main: tensor[0]},
        "empty": {**good, main: torch.empty(empty_shape, dtype=tensor.dtype)},
    }
    # Float token ids are malformed.  Integer pixel or audio values are not:
    # vision and audio models deliberately cast them to their weights' dtype (a
    # uint8 image is a valid input), so only id inputs get a wrong-dtype variant.
    if not tensor.is_floating_point():
        variants["wrong dtype"] = {**good, main: tensor.float()}
    for variant in variants.values():
        variant.pop("attention_mask", None)
    return variants


def to_device(inputs: Mapping[str, Any], device: str, dtype: Any = None) -> dict[str, Any]:
    """Inputs moved to `device`; floating tensors cast to `dtype` when given."""
    moved = {}
    for key, value in inputs.items():
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        moved[key] = value.to(device)
    return moved


def primary_output(outputs: Any) -> Any:
    """The first tensor of a model's outputs (last_hidden_state, logits, ...)."""
    import torch

    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping):
        # Cross-batch similarity matrices (CLIP's logits_per_image) mix the items.
        values = [v for k, v in outputs.items() if not str(k).startswith(CROSS_BATCH)]
    else:
        values = list(outputs)
    for value in values:
        if isinstance(value, torch.Tensor) and value.numel() > 0:
            return value
        if isinstance(value, (Mapping, tuple, list)) and not isinstance(value, str):
            found = primary_output(value)
            if found is not None:
                return found
    return None
