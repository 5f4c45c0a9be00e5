"""Synthetic inputs per modality for the architecture battery.

The input kind is read from the model itself (its `forward` signature and
`main_input_name`), so one recipe covers a whole family; a registry row's `inputs`
table can name the kind and its sizes where the guess is wrong:

    inputs = { kind = "text", sequence_length = 12 }

Kinds: text (token ids, plus decoder ids for encoder-decoders), text+image (dual
encoders such as CLIP), image, video (5-D clips), audio-features (spectrogram frames),
audio-values (raw waveform, optionally with a channel axis), time-series (past values
with the masks, time features and padding the model takes), packed-patches (Qwen2-VL-like
vision towers: every image's patch rows concatenated into one tensor, with one
(t, h, w) row per image in a `grid_thw` argument), tensors (only the named tensors of the
row's `tensors` table: Q-Former queries, RL states), latents (the continuous
(batch, size, steps) states a codec decoder or a post-encoder head takes, sized from
the config).  Audio models that also read text or a spectrogram of the same audio
(CLAP, codecs with a semantic branch) get those beside their main input; text+video (token
ids and a 5-D clip: video grounding).  Token ids are drawn
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

#: Output names of cross-batch similarity matrices (CLIP's logits_per_image, PE-Audio's
#: logits_audio_text) and the loss over them: they mix the items, so never the primary output.
CROSS_BATCH = ("logits_per_", "logits_audio_", "logits_video_", "loss")

KINDS = (
    "text",
    "text+image",
    "image",
    "video",
    "audio-features",
    "audio-values",
    "time-series",
    "packed-patches",
    "tensors",
    "latents",
    "text+video",
)
#: Packed patches: the images of a batch, as (t, h, w) patch grids, used in turn.  Two
#: different sizes, so that splitting the packed output by image is really tested; the
#: sides are even, as towers merge 2 x 2 patches.
PACKED_GRIDS = ((1, 4, 4), (1, 4, 6))
PACKED_LAYOUTS = ("rows", "strip")
#: What a `tensors` entry may draw: token ids, other integers, floats.
TENSOR_DTYPES = ("ids", "long", "float")


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
    #: The mask marks padding (True) rather than real frames: an all-False bool mask (Gemma3n).
    feature_mask_padding: bool = False
    #: Argument of a spectrogram of the same audio beside a waveform (codecs whose semantic
    #: branch reads mel features: NeuCodec, Xcodec2), sized by feature_size and frames.
    spectrogram_name: str = ""
    #: Token ids (and their mask) beside an audio or latent main input (CLAP, CLVP, PE-Audio).
    with_text: bool = False
    #: Token ids with a codebook axis, (batch, length, codebooks): audio-token language
    #: models read a text stream and codec streams per step (Kyutai STT's input_ids, Dia's
    #: decoder_input_ids).  0: plain (batch, length) ids.
    codebooks: int = 0
    decoder_codebooks: int = 0
    #: Encoder-decoders over continuous states (SpeechT5Model, which has no prenets): a
    #: second latents tensor as decoder_<main input>.
    decoder_states: bool = False
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
    #: Token the padded batch pads with (-1: low_token).  A row sets the tokenizer's pad
    #: id where the model reads padded tokens' embeddings beyond the mask (MobileBERT's
    #: trigram input, zero only for its padding_idx).
    pad_token: int = -1
    accepts_mask: bool = False
    decoder_ids: bool = False
    #: Packed patches: the images' (t, h, w) grids, the grid argument (image_grid_thw in
    #: Inkling2), one patch row's shape (guessed channels x temporal x patch x patch, flat;
    #: Kimi-K2.5 takes (3, 14, 14)), a per-image `merge_sizes` tensor of this value where
    #: the model takes one (VideoLLaMA3), and the output axis holding the images' rows
    #: (1 where the output keeps a batch axis of one).
    grids: tuple[tuple[int, int, int], ...] = PACKED_GRIDS
    grid_name: str = "grid_thw"
    patch_shape: tuple[int, ...] = ()
    merge_sizes: int = 0
    packed_axis: int = 0
    #: How the patches are packed: "rows" stacks them, (patches, *patch_shape); "strip"
    #: lays them side by side in one image row, (1, channels, patch, patches x patch), with
    #: an (h, w) grid per image (NaViT packing, MiniCPM-V's target_sizes); patch_shape is
    #: then (channels, patch, patch).
    packed_layout: str = "rows"
    #: The output the checks compare, by name (a dotted path into nested outputs, then
    #: its first tensor): "" takes the first tensor that is not a cross-batch one.
    output: str = ""
    #: The output packs the items one after another along `packed_axis` (Pixtral's one
    #: sequence of every image's patches), as packed patches do, with batched inputs.
    packed_output: bool = False
    #: Float inputs that stay float32 when the model runs in a reduced precision: positions
    #: the model turns into bucket indices (UDOP's normalized boxes), not activations;
    #: rounding them would compare the two precisions on different inputs.
    float32_inputs: tuple[str, ...] = ()
    # Multimodal inputs beyond one image beside one text (see the block after make_inputs).
    #: text+image: this many image placeholders open every text, one per image feature
    #: the model scatters into it: `image_token_id` (the config's image token), or
    #: ordinary tokens where an `image_embeds_position_mask` companion marks them.
    image_tokens: int = 0
    image_token_id: int = -1
    #: text+image: pixels of shape (batch, image_stack, channels, height, width), for
    #: video clips (X-CLIP) or several images per text (IDEFICS); 0 gives 4-D images.
    image_stack: int = 0
    #: text+image: the pixels' argument where it is not pixel_values (pixel_values_videos).
    pixel_name: str = ""
    #: Patchified images (NaFlex, SigLIP-2, Gemma 4): (rows, columns) of patches; the
    #: pixels become (batch, rows x columns, channels x patch_size x patch_size).
    patch_grid: tuple[int, ...] = ()
    patch_size: int = 16
    #: Arguments built beside the main input, by name: keys of COMPANIONS.
    companions: tuple[str, ...] = ()
    #: Named inputs beyond the kind's own, {name: {shape, dtype, low, high}} (see
    #: `named_tensor`): LXMERT's region features, ViT-MAE's masking noise.  Kind
    #: "tensors" feeds only these; its main input is `input_name` or the first of them.
    tensors: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    @property
    def main_input(self) -> str:
        if self.input_name:
            return self.input_name
        if self.kind == "tensors":
            return next(iter(self.tensors))
        return {
            "text": "input_ids",
            "text+image": "input_ids",
            "image": "pixel_values",
            "video": "pixel_values",
            "audio-features": "input_features",
            "audio-values": "input_values",
            "time-series": "past_values",
            "packed-patches": "pixel_values",
            "latents": "latents",
            "text+video": "input_ids",
        }[self.kind]


#: What a registry row's `inputs` table may set (checked when the registry loads).
RECIPE_FIELDS = frozenset(field.name for field in dataclasses.fields(InputRecipe))


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
    if "input_ids" not in parameters and any(p.endswith("grid_thw") for p in parameters):
        return "packed-patches"
    if main == "latents":
        return "latents"
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


def _latents_guess(config: Any) -> dict[str, Any]:
    """Latents are channels first, one channel per unit of the config's latent width
    (`latent_dim` where the model has one, else its hidden size)."""
    size = _first_int(
        getattr(config, "latent_dim", None), getattr(config, "hidden_size", None), default=32
    )
    return {"feature_size": size, "features_first": True}


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
    if (row.get("kind") or guessed["kind"]) == "packed-patches":
        guessed.update(_packed_guess(config, parameters))
    guessed.update(_multimodal_guess(config, vision, parameters))
    if (row.get("kind") or guessed["kind"]) == "latents":
        guessed.update(_latents_guess(config))
    unknown_fields = set(row) - RECIPE_FIELDS
    if unknown_fields:
        raise ValueError(
            f"unknown input recipe fields {sorted(unknown_fields)}; known: {sorted(RECIPE_FIELDS)}"
        )
    # TOML arrays are lists; the frozen recipe keeps tuples.
    known = {key: tuple(value) if isinstance(value, list) else value for key, value in row.items()}
    if known.get("packed_layout", "rows") not in PACKED_LAYOUTS:
        raise ValueError(
            f"unknown packed_layout {known['packed_layout']!r}; known: {PACKED_LAYOUTS}"
        )
    unknown = set(known.get("companions", ())) - set(COMPANIONS)
    if unknown:
        raise ValueError(f"unknown companion inputs {sorted(unknown)}; known: {sorted(COMPANIONS)}")
    return InputRecipe(**{**guessed, **known})


def _generator(seed: int) -> Any:
    import torch

    return torch.Generator().manual_seed(seed)


def _token_ids(recipe: InputRecipe, batch: int, length: int, seed: int, codebooks: int = 0) -> Any:
    import torch

    shape = (batch, length, codebooks) if codebooks else (batch, length)
    return torch.randint(recipe.low_token, recipe.vocab_size, shape, generator=_generator(seed))


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
        inputs["input_ids"] = _token_ids(
            recipe, batch, recipe.sequence_length, seed, recipe.codebooks
        )
        if recipe.accepts_mask:
            inputs["attention_mask"] = torch.ones((batch, recipe.sequence_length), dtype=torch.long)
        if recipe.bbox:
            boxes = _boxes(batch, recipe.sequence_length, generator)
            inputs["bbox"] = boxes / 1000 if recipe.bbox_normalized else boxes
    if recipe.kind == "text+image" and recipe.image_tokens:
        inputs = _with_image_tokens(recipe, inputs)
    if recipe.kind in ("image", "text+image"):
        name = recipe.main_input if recipe.kind == "image" else recipe.pixel_name or "pixel_values"
        inputs[name] = _pixels(recipe, batch, generator)
    if recipe.kind in ("video", "text+video"):
        size = recipe.image_size
        shape = (batch, recipe.video_frames, recipe.channels, size, size)
        name = "pixel_values" if recipe.kind == "text+video" else recipe.main_input
        inputs[name] = torch.randn(shape, generator=generator)
    if recipe.kind in ("audio-features", "latents"):
        inputs[recipe.main_input] = _spectrogram(recipe, batch, generator)
        if recipe.decoder_states:
            inputs[f"decoder_{recipe.main_input}"] = _spectrogram(recipe, batch, generator)
        if recipe.feature_mask_name:
            inputs[recipe.feature_mask_name] = _feature_mask(recipe, batch)
    if recipe.kind == "audio-values":
        channels = (recipe.audio_channels,) if recipe.audio_channels else ()
        shape = (batch, *channels, recipe.samples)
        inputs[recipe.main_input] = torch.randn(shape, generator=generator)
        if recipe.spectrogram_name:
            plain = dataclasses.replace(recipe, audio_channels=0)
            inputs[recipe.spectrogram_name] = _spectrogram(plain, batch, generator)
            if recipe.feature_mask_name:
                inputs[recipe.feature_mask_name] = _feature_mask(recipe, batch)
    if recipe.with_text and recipe.kind not in ("text", "text+image"):
        inputs["input_ids"] = _token_ids(recipe, batch, recipe.sequence_length, seed)
        if recipe.accepts_mask:
            inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    if recipe.kind == "time-series":
        inputs.update(_series_inputs(recipe, batch, generator))
    if recipe.kind == "packed-patches":
        inputs.update(_packed_inputs(recipe, batch, generator))
    if recipe.decoder_ids and recipe.kind not in ("text+image", "text+video"):
        inputs["decoder_input_ids"] = _token_ids(
            recipe, batch, recipe.sequence_length, seed + 1, recipe.decoder_codebooks
        )
    for name in recipe.companions:
        inputs[name] = COMPANIONS[name](recipe, inputs, batch, seed)
    for index, (name, spec) in enumerate(recipe.tensors.items()):
        inputs[name] = named_tensor(spec, batch, seed + 2 + index, recipe)
    return inputs


def _spectrogram(recipe: InputRecipe, batch: int, generator: Any) -> Any:
    """(batch, features, frames), or (batch, frames, features) when not features_first;
    audio_channels > 0 puts a channel axis after the batch (CLAP's (batch, 1, frames, mels))."""
    import torch

    shape = (recipe.feature_size, recipe.frames)
    if not recipe.features_first:
        shape = (recipe.frames, recipe.feature_size)
    channels = (recipe.audio_channels,) if recipe.audio_channels else ()
    return torch.randn((batch, *channels, *shape), generator=generator)


def _feature_mask(recipe: InputRecipe, batch: int) -> Any:
    """Every frame real: ones, or all-False where the mask marks padding."""
    import torch

    if recipe.feature_mask_padding:
        return torch.zeros((batch, recipe.frames), dtype=torch.bool)
    return torch.ones((batch, recipe.frames), dtype=torch.long)


# -- Multimodal inputs: image tokens in the text, stacked or patchified pixels, and
# companion arguments (Q-Former ids, image position masks, patch shapes and positions).


def _multimodal_guess(config: Any, vision: Any, parameters: set[str]) -> dict[str, Any]:
    """The image token and patch size from the config; Q-Former ids (InstructBLIP)
    wherever the forward takes them.  Read from the instance (`vars`): a per-layer
    (heterogeneous) config refuses some global reads, and none of these is per layer."""
    own, seen = vars(config), vars(vision)
    guessed: dict[str, Any] = {
        "image_token_id": _first_int(
            own.get("image_token_id"), own.get("image_token_index"), default=-1
        ),
        "patch_size": _first_int(seen.get("patch_size"), default=16),
    }
    guessed["companions"] = tuple(name for name in ("qformer_input_ids",) if name in parameters)
    return guessed


def _with_image_tokens(recipe: InputRecipe, inputs: dict[str, Any]) -> dict[str, Any]:
    """`image_tokens` placeholders before every text (its mask grows with it)."""
    import torch

    ids = inputs["input_ids"]
    token = recipe.image_token_id if recipe.image_token_id >= 0 else recipe.low_token
    placeholders = torch.full((ids.shape[0], recipe.image_tokens), token, dtype=ids.dtype)
    grown = {**inputs, "input_ids": torch.cat([placeholders, ids], dim=1)}
    if "attention_mask" in inputs:
        grown["attention_mask"] = torch.ones_like(grown["input_ids"])
    return grown


def _pixels(recipe: InputRecipe, batch: int, generator: Any) -> Any:
    import torch

    if recipe.patch_grid:
        rows, columns = recipe.patch_grid
        patch = recipe.channels * recipe.patch_size**2
        return torch.randn((batch, rows * columns, patch), generator=generator)
    width = recipe.image_width or recipe.image_size
    stack = (recipe.image_stack,) if recipe.image_stack else ()
    shape = (batch, *stack, recipe.channels, recipe.image_size, width)
    return torch.randn(shape, generator=generator)


def _patch_mask(recipe: InputRecipe, inputs: dict[str, Any], batch: int, seed: int) -> Any:
    """Every patch is real: (batch, patches) ones."""
    import torch

    rows, columns = recipe.patch_grid
    return torch.ones((batch, rows * columns), dtype=torch.long)


def _spatial_shapes(recipe: InputRecipe, inputs: dict[str, Any], batch: int, seed: int) -> Any:
    """(rows, columns) of patches per image, as SigLIP-2 resizes its position grid."""
    import torch

    return torch.tensor([list(recipe.patch_grid)] * batch, dtype=torch.long)


def _patch_positions(recipe: InputRecipe, inputs: dict[str, Any], batch: int, seed: int) -> Any:
    """(x, y) of every patch, row by row, as Gemma 4's image processor lays them out."""
    import torch

    rows, columns = recipe.patch_grid
    index = torch.arange(rows * columns)
    positions = torch.stack([index % columns, index // columns], dim=-1)
    return positions.expand(batch, -1, -1).clone()


def _qformer_ids(recipe: InputRecipe, inputs: dict[str, Any], batch: int, seed: int) -> Any:
    """The instruction as the Q-Former reads it (its own ids, beside the LM's)."""
    return _token_ids(recipe, batch, recipe.sequence_length, seed + 2)


def _image_position_mask(recipe: InputRecipe, inputs: dict[str, Any], batch: int, seed: int) -> Any:
    """Kosmos-2: 1 where the image features go (the leading placeholders)."""
    import torch

    mask = torch.zeros_like(inputs["input_ids"])
    mask[:, : recipe.image_tokens] = 1
    return mask


def _image_attention_mask(
    recipe: InputRecipe, inputs: dict[str, Any], batch: int, seed: int
) -> Any:
    """IDEFICS: (batch, text length, images): every token sees every image of its item."""
    import torch

    length = inputs["input_ids"].shape[1]
    return torch.ones((batch, length, max(recipe.image_stack, 1)), dtype=torch.long)


def _prompt_and_canvas_mask(
    recipe: InputRecipe, inputs: dict[str, Any], batch: int, seed: int
) -> Any:
    """Diffusion Gemma's decoder mask: the prompt's attention mask, then the canvas
    (`decoder_input_ids`) all real, as its generate() pads the mask with the canvas."""
    import torch

    mask = inputs["attention_mask"]
    canvas = torch.ones((batch, inputs["decoder_input_ids"].shape[1]), dtype=mask.dtype)
    return torch.cat([mask, canvas], dim=1)


def _canvas_positions(recipe: InputRecipe, inputs: dict[str, Any], batch: int, seed: int) -> Any:
    """Positions of the canvas, right after each item's real prompt tokens (its
    generate() starts them at the prompt's length)."""
    import torch

    lengths = inputs["attention_mask"].sum(dim=1, keepdim=True)
    return lengths + torch.arange(inputs["decoder_input_ids"].shape[1])


#: Companions computed from the attention mask: rebuilt once a batch is padded.
FROM_MASK = ("decoder_attention_mask", "decoder_position_ids")

#: Companion arguments: name -> builder(recipe, inputs so far, batch, seed).
COMPANIONS: dict[str, Any] = {
    "qformer_input_ids": _qformer_ids,
    "image_embeds_position_mask": _image_position_mask,
    "image_attention_mask": _image_attention_mask,
    "pixel_attention_mask": _patch_mask,
    "spatial_shapes": _spatial_shapes,
    "pixel_position_ids": _patch_positions,
    "decoder_attention_mask": _prompt_and_canvas_mask,
    "decoder_position_ids": _canvas_positions,
}


def named_tensor(
    spec: Mapping[str, Any], batch: int, seed: int, recipe: InputRecipe | None = None
) -> Any:
    """One input of a recipe's `tensors` table: `shape` is one item's (the batch comes
    first); `fill` gives a constant (masks of ones); `dtype` "ids" draws token ids as the
    text kinds do (the recipe's range, no special token), "long" draws integers in
    [low, high), "float" (the default) draws uniformly in [low, high) where `high` is
    given, else from a standard normal."""
    import torch

    shape = (batch, *spec["shape"])
    generator = _generator(seed)
    dtype = spec.get("dtype", "float")
    if dtype not in TENSOR_DTYPES:
        raise ValueError(f"unknown tensor dtype {dtype!r}; known: {TENSOR_DTYPES}")
    if "fill" in spec:
        kind = torch.float32 if dtype == "float" else torch.long
        return torch.full(shape, spec["fill"], dtype=kind)
    if dtype == "ids":
        recipe = recipe or InputRecipe("tensors")
        return torch.randint(recipe.low_token, recipe.vocab_size, shape, generator=generator)
    if dtype == "long":
        return torch.randint(spec.get("low", 0), spec["high"], shape, generator=generator)
    if "high" in spec:
        low = spec.get("low", 0.0)
        return low + (spec["high"] - low) * torch.rand(shape, generator=generator)
    return torch.randn(shape, generator=generator)


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
        # Float, like the values: TimesFM's own preprocessing builds it in their dtype
        # (a long one turns `1.0 - padding` float32 inside a bfloat16 model).
        inputs[recipe.padding_name] = torch.zeros_like(past)
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
    if recipe.kind == "packed-patches":
        return batch, packed_singles(recipe, batch), 0
    padding = PADDING if recipe.accepts_mask and recipe.kind == "text" else 0
    if padding:
        batch["attention_mask"][1, -padding:] = 0
        batch["input_ids"][1, -padding:] = (
            recipe.pad_token if recipe.pad_token >= 0 else recipe.low_token
        )
    singles = []
    for index in range(2):
        single = {key: value[index : index + 1].clone() for key, value in batch.items()}
        if padding and index == 1:
            for key in ("input_ids", "attention_mask", "bbox"):
                if key in single:
                    single[key] = single[key][:, :-padding]
        singles.append(single)
    for inputs, size in ((batch, 2), *((single, 1) for single in singles)):
        for name in set(recipe.companions) & set(FROM_MASK):
            inputs[name] = COMPANIONS[name](recipe, inputs, size, seed)
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
    if recipe.kind == "packed-patches":
        variants.update(_packed_bad_inputs(recipe, good))
    for variant in variants.values():
        variant.pop("attention_mask", None)
    return variants


def _packed_guess(config: Any, parameters: set[str]) -> dict[str, Any]:
    """Packed-patch sizes from the vision config: the main input (`hidden_states` in
    Qwen2-VL-likes, else `pixel_values`), the grid argument, one patch row flattened
    (channels x temporal patch x patch x patch) and the merge size where it is an input."""
    channels = _first_int(
        getattr(config, "in_channels", None), getattr(config, "num_channels", None), default=3
    )
    temporal = _first_int(
        getattr(config, "temporal_patch_size", None),
        getattr(config, "patch_temporal", None),
        default=1,
    )
    patch = _first_int(getattr(config, "patch_size", None), default=14)
    merge = _first_int(
        getattr(config, "spatial_merge_size", None), getattr(config, "merge_size", None), default=1
    )
    grids = sorted(p for p in parameters if p.endswith("grid_thw"))
    return {
        "input_name": "hidden_states" if "hidden_states" in parameters else "pixel_values",
        "grid_name": grids[0] if grids else "grid_thw",
        "patch_shape": (channels * temporal * patch * patch,),
        "merge_sizes": merge if "merge_sizes" in parameters else 0,
    }


def _packed_grids(recipe: InputRecipe, images: int) -> list[tuple[int, int, int]]:
    return [tuple(recipe.grids[index % len(recipe.grids)]) for index in range(images)]


def _packed_inputs(recipe: InputRecipe, images: int, generator: Any) -> dict[str, Any]:
    """`images` images as one tensor of patch rows, t x h x w rows each, in order."""
    import torch

    grids = _packed_grids(recipe, images)
    rows = sum(t * h * w for t, h, w in grids)
    inputs = {
        recipe.main_input: torch.randn((rows, *recipe.patch_shape), generator=generator),
        recipe.grid_name: torch.tensor(grids, dtype=torch.long),
    }
    if recipe.packed_layout == "strip":
        # Patch i is the i-th patch-wide column of one (channels, patch, ...) image row.
        channels, height, width = recipe.patch_shape
        strip = inputs[recipe.main_input].permute(1, 2, 0, 3)
        inputs[recipe.main_input] = strip.reshape(1, channels, height, rows * width)
        inputs[recipe.grid_name] = inputs[recipe.grid_name][:, 1:]
    if recipe.merge_sizes:
        inputs["merge_sizes"] = torch.full((images,), recipe.merge_sizes, dtype=torch.long)
    return inputs


def packed_singles(recipe: InputRecipe, batch: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each image of a packed batch alone: its own patch rows and its row of every
    per-image tensor (grid, merge sizes)."""
    grid = batch[recipe.grid_name]
    sizes = [int(size) for size in grid.prod(dim=-1)]
    if recipe.packed_layout == "strip":
        width = recipe.patch_shape[-1]
        rows = batch[recipe.main_input].split([size * width for size in sizes], dim=-1)
    else:
        rows = batch[recipe.main_input].split(sizes)
    singles = []
    for index, patches in enumerate(rows):
        single = {key: value[index : index + 1].clone() for key, value in batch.items()}
        single[recipe.main_input] = patches.clone()
        singles.append(single)
    return singles


def item_singles(recipe: InputRecipe, batch: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each item of a batch alone: its packed patches, else its row of every input."""
    if recipe.kind == "packed-patches":
        return packed_singles(recipe, batch)
    first = next(iter(batch.values()))
    return [
        {key: value[i : i + 1].clone() for key, value in batch.items()} for i in range(len(first))
    ]


def packs_items(recipe: InputRecipe) -> bool:
    """Whether the output holds the items as runs along `packed_axis`, not as rows."""
    return recipe.kind == "packed-patches" or recipe.packed_output


def batch_items(recipe: InputRecipe, batched: Any, alone: list[Any]) -> list[Any]:
    """The part of a batch's output that belongs to each item, given each item's output
    alone.  Items are rows of a batch axis, except in a packed output (packed patches,
    `packed_output`): there an item's part is its run of rows along `packed_axis` (its
    patches, merged patches or frames), as long as its output alone, and the runs must
    cover the whole packed output."""
    if not packs_items(recipe):
        return [batched[index : index + 1] for index in range(len(alone))]
    axis = recipe.packed_axis
    sizes = [output.shape[axis] for output in alone]
    packed = batched.shape[axis] if batched.ndim > axis else None
    assert packed == sum(sizes), (
        f"packed output of shape {tuple(batched.shape)} does not hold the images' "
        f"{sizes} rows (axis {axis}) that they give alone"
    )
    return list(batched.split(sizes, dim=axis))


def _packed_bad_inputs(recipe: InputRecipe, good: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A grid that does not match the patches: it claims twice the last image's rows."""
    grid = good[recipe.grid_name].clone()
    grid[-1, 1] *= 2
    return {"grid mismatch": {**good, recipe.grid_name: grid}}


def to_device(
    inputs: Mapping[str, Any], device: str, dtype: Any = None, keep: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Inputs moved to `device`; floating tensors cast to `dtype` when given, but those
    named in `keep`.  Lists of tables (a detector's labels) are moved item by item;
    values that are not tensors (flags) are passed as they are."""
    moved = {}
    for key, value in inputs.items():
        if isinstance(value, list):
            value = [to_device(entry, device, dtype, keep) for entry in value]
        elif hasattr(value, "is_floating_point"):
            if dtype is not None and value.is_floating_point() and key not in keep:
                value = value.to(dtype)
            value = value.to(device)
        moved[key] = value
    return moved


def primary_output(outputs: Any, name: str = "") -> Any:
    """The first tensor of a model's outputs (last_hidden_state, logits, ...), or of
    the output `name` (a dotted path: `language_model_outputs`, `a.b`) where given."""
    import torch

    for part in name.split(".") if name else ():
        found = outputs.get(part) if isinstance(outputs, Mapping) else getattr(outputs, part, None)
        if found is None:
            raise KeyError(f"the model returned no output {name!r}: {type(outputs).__name__}")
        outputs = found
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
