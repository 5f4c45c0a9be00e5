"""Tiny models for every architecture: shrink a config, build, save, reload.

`tiny_config(model_type)` starts from the architecture's default configuration and
shrinks every size it knows about (widths, depths, heads, experts, vocabulary, image
size), recursing into sub-configurations, so that the model has at most a few million
parameters.  The shrinking keeps each model's constraints: one width for every hidden
size (so sub-models still agree), head counts that divide it, key/value heads that
divide the heads, special token ids moved inside the shrunk vocabulary, per-layer
lists cut to the new depth.  What a rule cannot guess is a registry row
(test/common/models/architectures.toml: `config_overrides`).

`build_tiny_model(model_type)` builds the AutoModel from that config, gives every
weight a value keyed by its name and shape (test/common/models/weights.py: independent of
the order in which `_init_weights` draws from the RNG), saves it with
`save_pretrained` (safetensors) and loads it back with `from_pretrained`: the
loading path real checkpoints take.

torch and transformers are imported lazily: collecting the gated battery must not
import them.
"""

from __future__ import annotations

import collections
import dataclasses
import pathlib
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

from test.common.models.registry import ArchitectureSpec, load_registry

#: One width for every hidden size, so that sub-models wired together still agree.
WIDTH = 32
FEED_FORWARD = 64
LAYERS = 2
HEADS = 4
HEAD_DIM = WIDTH // HEADS
VOCAB = 128
EXPERTS = 4
EXPERTS_PER_TOKEN = 2
SEED = 0
DEFAULT_MROPE_SECTION = (16, 24, 24)

#: Scalar config fields, by role: any default above the target is lowered to it.
SCALAR_TARGETS: dict[str, int] = {
    **dict.fromkeys(
        [
            "hidden_size",
            "d_model",
            "n_embd",
            "embed_dim",
            "hidden_dim",
            "dim",
            "embedding_size",
            "d_embed",
            "word_embed_proj_dim",
            "projection_dim",
            "text_embed_dim",
            "vision_embed_dim",
            "encoder_hidden_size",
            "decoder_hidden_size",
            "out_hidden_size",
            "text_hidden_size",
            "audio_hidden_size",
            "projector_hidden_size",
            "output_hidden_size",
            "encoder_hidden_dim",
            "pooler_output_size",
            "pooler_hidden_size",
            "image_text_hidden_size",
            "embedding_dim",
            "vision_output_dim",
            "hidden_size_global",
            "fusion_hidden_size",
            "projection_hidden_dim",
            "projection_size",
            "adapter_out_dim",
            "downsample_hidden_size",
            "attention_hidden_size",
            "memory_attention_hidden_size",
            "memory_encoder_hidden_size",
            "mask_feature_size",
            "speech_encoder_hidden_size",
            "unit_embed_dim",
            "kv_channels",
            "codevector_dim",
            "proj_codevector_dim",
            "classifier_proj_size",
            "xvector_output_dim",
            "feature_size",
            "fpn_hidden_size",
            "condition_dim",
            "emb_dim",
            "entity_emb_size",
            "d_latents",
            "mlp_hidden_size",
        ],
        WIDTH,
    ),
    **dict.fromkeys(
        [
            "intermediate_size",
            "ffn_dim",
            "encoder_ffn_dim",
            "decoder_ffn_dim",
            "d_ff",
            "n_inner",
            "moe_intermediate_size",
            "shared_expert_intermediate_size",
            "mlp_dim",
            "dim_feedforward",
            "decoder_intermediate_size",
            "d_inner",
            "ffn_hidden_size",
            "intermediate_size_mlp",
            "encoder_feedforward_dim",
            "dense_intermediate_size",
            "moe_hidden_size",
            "moe_shared_expert_intermediate_size",
            "shared_intermediate_size",
            "shared_experts_intermediate_size",
            "projection_intermediate_size",
            "speech_encoder_intermediate_size",
            "t2u_encoder_ffn_dim",
            "t2u_decoder_ffn_dim",
            "memory_fuser_intermediate_dim",
            "encoder_linear_units",
            "decoder_linear_units",
            "memory_attention_feed_forward_hidden_size",
            "iou_head_hidden_dim",
            "expert_ffn_hidden_size",
        ],
        FEED_FORWARD,
    ),
    **dict.fromkeys(
        [
            "num_hidden_layers",
            "num_layers",
            "n_layer",
            "n_layers",
            "encoder_layers",
            "decoder_layers",
            "num_decoder_layers",
            "num_encoder_layers",
            "decoder_num_hidden_layers",
            "depth",
            "conf_num_hidden_layers",
            "speech_encoder_layers",
            "t2u_encoder_layers",
            "t2u_decoder_layers",
            "memory_attention_num_layers",
            "memory_fuser_num_layers",
            "num_spatial_layers",
            "num_temporal_layers",
            "resampler_depth",
            "num_adapter_layers",
            "num_self_attends_per_block",
        ],
        LAYERS,
    ),
    **dict.fromkeys(
        [
            "num_attention_heads",
            "n_head",
            "n_heads",
            "encoder_attention_heads",
            "decoder_attention_heads",
            "num_heads",
            "decoder_num_attention_heads",
            "encoder_num_attention_heads",
            "attention_heads",
            "conf_num_attention_heads",
            "speech_encoder_attention_heads",
            "t2u_encoder_attention_heads",
            "t2u_decoder_attention_heads",
            "memory_attention_num_attention_heads",
            "swa_num_attention_heads",
            "linear_num_value_heads",
            "mamba_n_heads",
            "mamba_num_heads",
            "resampler_n_heads",
            "index_n_heads",
        ],
        HEADS,
    ),
    **dict.fromkeys(
        [
            "head_dim",
            "d_kv",
            "v_head_dim",
            "index_head_dim",
            "linear_key_head_dim",
            "linear_value_head_dim",
            "mamba_head_dim",
            "swa_head_dim",
            "resampler_head_dim",
            "attention_head_dim",
            "dim_head",
            "d_head",
            "linear_head_dim",
            "mamba_d_head",
        ],
        HEAD_DIM,
    ),
    "qk_rope_head_dim": HEAD_DIM // 2,
    "rotary_dim": HEAD_DIM // 2,
    "qk_nope_head_dim": HEAD_DIM // 2,
    "kv_lora_rank": 16,
    "q_lora_rank": 16,
    "linear_num_key_heads": 2,
    "swa_num_key_value_heads": 2,
    **dict.fromkeys(
        ["num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts"], EXPERTS
    ),
    **dict.fromkeys(
        ["num_experts_per_tok", "moe_topk", "moe_k", "num_experts_per_token"], EXPERTS_PER_TOKEN
    ),
    **dict.fromkeys(["n_group", "num_expert_group", "topk_group", "first_k_dense_replace"], 1),
    **dict.fromkeys(["n_shared_experts", "num_shared_experts", "moe_num_shared_experts"], 1),
    **dict.fromkeys(["vocab_size", "input_vocab_size", "output_vocab_size"], VOCAB),
    "max_window_layers": LAYERS,
    # Mamba-2 groups must divide the (shrunk) heads.
    "n_groups": 1,
    "mamba_n_groups": 1,
    "entity_vocab_size": VOCAB,
    "vocab_size_per_layer_input": VOCAB,
    "num_latents": 8,
    # Whisper-like encoders expect exactly twice this many spectrogram frames.
    "max_source_positions": 16,
    "num_nextn_predict_layers": 0,
    # SpecAugment masks spans this long in training; the tiny audio has few frames.
    "mask_time_length": 2,
}

#: Integer-list fields: depth lists become ones, width lists shrink keeping ratios,
#: head lists keep their ratios from 1.
DEPTH_LISTS = frozenset({"depths", "block_repeats", "num_layers", "layers"})
WIDTH_LISTS = frozenset(
    {"hidden_sizes", "embed_dims", "conv_dim", "tdnn_dim", "hidden_dims", "neck_hidden_sizes"}
)
HEAD_LISTS = frozenset({"num_heads", "num_attention_heads", "heads", "attention_heads"})
LIST_WIDTH_LIMIT = 64


def _attribute(config: Any, name: str) -> Any:
    """`getattr`, or None where a heterogeneous (per-layer) config refuses a global read."""
    try:
        return getattr(config, name, None)
    except Exception:  # AmbiguousGlobalPerLayerAttributeError: no global value to shrink
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shrunk_list(name: str, values: list[int]) -> list[int] | None:
    if not values or not all(_is_int(v) and v > 0 for v in values):
        return None
    if name in DEPTH_LISTS:
        return [1] * len(values)
    if name in WIDTH_LISTS:
        factor = max(1, max(values) // LIST_WIDTH_LIMIT)
        return [max(4, v // factor) for v in values]
    if name in HEAD_LISTS:
        return [max(1, v // values[0]) for v in values]
    return None


def _field_names(config_class: type) -> set[str]:
    if dataclasses.is_dataclass(config_class):
        return {field.name for field in dataclasses.fields(config_class)}
    import inspect

    return set(inspect.signature(config_class.__init__).parameters)


def _scalar_overrides(config: Any, fields: set[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name, target in SCALAR_TARGETS.items():
        value = _attribute(config, name)
        if name in fields and _is_int(value) and value > target:
            overrides[name] = target
    for name in fields:
        value = _attribute(config, name)
        if isinstance(value, (list, tuple)):
            shrunk = _shrunk_list(name, list(value))
            if shrunk is not None and shrunk != list(value):
                overrides[name] = shrunk
    return overrides


def _unset_head_dim(config: Any, fields: set[str], overrides: dict[str, Any]) -> None:
    """Some attention code reads `config.head_dim` even where the default is None
    (meaning hidden_size // heads): spell it out for the shrunk sizes."""
    shrunk = overrides.get("hidden_size") == WIDTH and overrides.get("num_attention_heads") == HEADS
    if shrunk and "head_dim" in fields and _attribute(config, "head_dim") is None:
        overrides["head_dim"] = HEAD_DIM


def _key_value_heads(config: Any, fields: set[str], overrides: dict[str, Any]) -> None:
    """Grouped-query attention stays grouped: key/value heads divide the heads."""
    for kv_name, heads_name in (
        ("num_key_value_heads", "num_attention_heads"),
        ("multi_query_group_num", "num_attention_heads"),
    ):
        kv, heads = _attribute(config, kv_name), _attribute(config, heads_name)
        if kv_name not in fields or not _is_int(kv) or not _is_int(heads):
            continue
        new_heads = overrides.get(heads_name, heads)
        overrides[kv_name] = new_heads if kv >= heads else max(1, new_heads // 2)


#: (expand, heads, head dim) of Mamba-2 mixers: heads x head dim = expand x hidden size.
MAMBA_FIELDS = (
    ("mamba_expand", "mamba_n_heads", "mamba_d_head"),
    ("mamba_expand", "mamba_num_heads", "mamba_head_dim"),
    ("expand", "num_heads", "head_dim"),
)


def _mamba_heads(config: Any, fields: set[str], overrides: dict[str, Any]) -> None:
    hidden = overrides.get("hidden_size")
    for expand_name, heads_name, head_dim_name in MAMBA_FIELDS:
        names = (expand_name, heads_name, head_dim_name)
        if hidden is None or not all(name in fields for name in names):
            continue
        expand = _attribute(config, expand_name)
        heads = overrides.get(heads_name, _attribute(config, heads_name))
        if _is_int(expand) and _is_int(heads) and heads > 0:
            overrides[head_dim_name] = max(1, expand * hidden // heads)


def _image_size(config: Any, fields: set[str], overrides: dict[str, Any]) -> None:
    size = _attribute(config, "image_size")
    if "image_size" not in fields or not _is_int(size):
        return
    patch = _attribute(config, "patch_size")
    target = max(32, 4 * patch) if _is_int(patch) else 64
    if size > target:
        overrides["image_size"] = target


def _per_layer_lists(config: Any, fields: set[str], overrides: dict[str, Any]) -> None:
    """Lists with one entry per layer are cut to the new depth, keeping one layer of
    each kind (a hybrid model keeps an attention layer and a linear/mamba layer): the
    depth grows to the number of kinds where needed."""
    for depth_name in ("num_hidden_layers", "num_layers", "encoder_layers", "decoder_layers"):
        depth, new_depth = _attribute(config, depth_name), overrides.get(depth_name)
        if not _is_int(depth) or new_depth is None:
            continue
        per_layer = {
            name: list(value)
            for name in fields
            if isinstance(value := overrides.get(name, _attribute(config, name)), (list, tuple))
            and len(value) == depth
        }
        kinds = [len({v for v in value if isinstance(v, str)}) for value in per_layer.values()]
        new_depth = max([new_depth, *kinds])
        overrides[depth_name] = new_depth
        for name, value in per_layer.items():
            overrides[name] = _cut_per_layer(value, new_depth)


def _cut_per_layer(values: list[Any], depth: int) -> list[Any]:
    kinds = list(dict.fromkeys(v for v in values if isinstance(v, str)))
    if len(kinds) < 2:
        return values[:depth]
    # One layer of each kind first (in order of appearance), then the pattern's start.
    chosen = [values.index(kind) for kind in kinds]
    chosen += [i for i in range(len(values)) if i not in chosen][: max(0, depth - len(chosen))]
    return [values[i] for i in sorted(chosen)]


def _token_ids(config: Any, fields: set[str], overrides: dict[str, Any], vocab: int | None) -> None:
    """Special token ids beyond the shrunk vocabulary move to its top, kept distinct.

    `vocab` is the config's own new vocabulary size or, for a composite config
    (image_token_id at the top, vocab_size in text_config), its text model's."""
    if vocab is None:
        return
    moved: dict[int, int] = {}

    def inside(token: int) -> int:
        if token < vocab:
            return token
        return moved.setdefault(token, vocab - 1 - len(moved))

    for name in sorted(fields):
        value = _attribute(config, name)
        if not (name.endswith(("_token_id", "_token_index", "_token_ids")) or name == "pad_id"):
            continue
        if _is_int(value):
            overrides[name] = inside(value)
        elif isinstance(value, (list, tuple)) and all(_is_int(v) for v in value):
            overrides[name] = [inside(v) for v in value]
    for name in ("suppress_tokens", "begin_suppress_tokens"):
        if name in fields and _attribute(config, name):
            overrides[name] = None


def _rope(config: Any, overrides: dict[str, Any]) -> None:
    """Multimodal RoPE sections must sum to half the (new) head dimension."""
    rope = _attribute(config, "rope_parameters")
    uses_mrope = "mrope_section" in getattr(type(config), "ignore_keys_at_rope_validation", ())
    if not isinstance(rope, Mapping) or not ("mrope_section" in rope or uses_mrope):
        return
    if not rope:
        # No RoPE parameters at all (CohereCompass keys them by layer type, from the
        # checkpoint): nothing to shrink; a row gives them.
        return
    factor = rope.get("partial_rotary_factor") or _attribute(config, "partial_rotary_factor") or 1
    half = int(overrides.get("head_dim", HEAD_DIM) * factor) // 2
    # Qwen2-VL's modeling code defaults to [16, 24, 24] when the config has none.
    sections = list(rope.get("mrope_section", DEFAULT_MROPE_SECTION))
    shrunk = [max(1, s * half // sum(sections)) for s in sections]
    shrunk[0] += half - sum(shrunk)
    overrides["rope_parameters"] = {**rope, "mrope_section": shrunk}


def _is_config(value: Any) -> bool:
    # By class name, not isinstance: the shrinking rules must not import transformers.
    names = ("PreTrainedConfig", "PretrainedConfig")
    return any(cls.__name__ in names for cls in type(value).__mro__)


def _sub_configs(config: Any) -> dict[str, Any]:
    return {name: value for name, value in vars(config).items() if _is_config(value)}


def _resnet_instead_of_timm(timm_config: Any) -> dict[str, Any]:
    """DETR-likes default to a timm backbone; timm needs torchvision, which has no
    build beside the pinned CPU torch, so they get transformers' own (tiny) ResNet."""
    from transformers import ResNetConfig

    indices = list(getattr(timm_config, "out_indices", None) or (1, 2, 3, 4))
    return {
        "model_type": "resnet",
        **shrink_overrides(ResNetConfig()),
        "out_indices": indices,
        "num_channels": getattr(timm_config, "num_channels", 3),
    }


def shrink_overrides(config: Any) -> dict[str, Any]:
    """Constructor arguments that turn `config` (a default config) into a tiny one."""
    fields = _field_names(type(config))
    overrides = _scalar_overrides(config, fields)
    _key_value_heads(config, fields, overrides)
    _unset_head_dim(config, fields, overrides)
    _image_size(config, fields, overrides)
    _mamba_heads(config, fields, overrides)
    _per_layer_lists(config, fields, overrides)
    _rope(config, overrides)
    for name, sub_config in _sub_configs(config).items():
        if name not in fields:
            continue
        if sub_config.model_type == "timm_backbone":
            overrides[name] = _resnet_instead_of_timm(sub_config)
        else:
            overrides[name] = {"model_type": sub_config.model_type, **shrink_overrides(sub_config)}
    text = overrides.get("text_config") or overrides.get("decoder") or {}
    _token_ids(config, fields, overrides, overrides.get("vocab_size", text.get("vocab_size")))
    return overrides


def merge_overrides(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, recursing into dicts (a sub-config's overrides)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_class(model_type: str) -> type:
    from transformers import CONFIG_MAPPING

    return CONFIG_MAPPING[model_type]


def tiny_config(model_type: str, **overrides: Any) -> Any:
    """The shrunk config of `model_type`: generic rules, then the registry row's
    `config_overrides`, then `overrides` (dict values merge into sub-configs)."""
    spec = spec_of(model_type)
    cls = config_class(model_type)
    arguments = shrink_overrides(cls())
    arguments = merge_overrides(arguments, spec.config_overrides)
    arguments = merge_overrides(arguments, overrides)
    return cls(**arguments)


def spec_of(model_type: str) -> ArchitectureSpec:
    """The architecture's row; a model type with task heads but no AutoModel class
    (trocr, upernet, vitpose, ...) gets an empty one."""
    registry = load_registry()
    if model_type in registry:
        return registry[model_type]
    from test.common.models.transformers_catalog import load_catalog

    if model_type not in load_catalog().config_classes:
        raise KeyError(f"{model_type!r} is not a model type of this transformers")
    return ArchitectureSpec(model_type, "other")


@dataclasses.dataclass
class TinyModel:
    """A tiny model loaded back from disk: `model` (eval mode), its `config`, the
    directory it was saved to (`path`), and how many parameters it has."""

    model_type: str
    model: Any
    config: Any
    path: pathlib.Path
    parameters: int


#: How many times each architecture was built in this process (a battery test checks
#: that it is built once per worker).
BUILD_COUNTS: collections.Counter[str] = collections.Counter()


def count_parameters(model: Any) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def model_class(class_name: str | None) -> Any:
    """transformers' class `class_name`, or AutoModel for None."""
    import transformers

    if class_name is None:
        return transformers.AutoModel
    return getattr(transformers, class_name)


def config_for_class(config: Any, cls: Any) -> Any:
    """The config `cls` takes: a text-only head (Qwen3_5ForCausalLM) of a composite
    model type is given the text sub-config, as transformers' auto classes do."""
    wanted = getattr(cls, "config_class", None)
    if wanted is None or isinstance(config, wanted):
        return config
    try:
        text = config.get_text_config()
    except ValueError:  # several text configs (MusicGen's text encoder and decoder)
        text = None
    if isinstance(text, wanted):
        return text
    # Otherwise the sub-config of that class (MusicgenForCausalLM takes the decoder's).
    subs = (getattr(config, name, None) for name in getattr(config, "sub_configs", {}))
    return next((sub for sub in subs if isinstance(sub, wanted)), config)


def _instantiate(cls: Any, config: Any) -> Any:
    if hasattr(cls, "from_config"):  # an auto class
        return cls.from_config(config)
    return cls._from_config(config)


def build_tiny_model(
    model_type: str,
    *,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
    save_dir: pathlib.Path | None = None,
    class_name: str | None = None,
    adjust: Callable[[Any], None] | None = None,
) -> TinyModel:
    """Build `model_type`'s AutoModel (or its head `class_name`) from its tiny config with
    keyed weights, save it with safetensors, load it back with `from_pretrained` and
    return it in eval mode on `device`.  `adjust` may change the config in place before
    the model is built (what a head needs).  Without `save_dir` the files go to a
    temporary directory that lives as long as the process needs it (deleted at exit)."""
    import torch

    from test.common.models.weights import assign_keyed_weights

    cls = model_class(class_name)
    config = config_for_class(tiny_config(model_type, **(overrides or {})), cls)
    if adjust is not None:
        adjust(config)
    torch.manual_seed(SEED)
    built = _instantiate(cls, config)
    # A second build under another seed tells drawn values from computed ones.
    torch.manual_seed(SEED + 1)
    twin = _instantiate(cls, config)
    assign_keyed_weights(built, twin)
    del twin
    if save_dir is None:
        save_dir = pathlib.Path(_scratch().name) / (class_name or model_type)
    built.save_pretrained(save_dir, safe_serialization=True)
    del built
    model = cls.from_pretrained(save_dir, use_safetensors=True).to(device).eval()
    BUILD_COUNTS[class_name or model_type] += 1
    return TinyModel(model_type, model, model.config, save_dir, count_parameters(model))


_SCRATCH: list[tempfile.TemporaryDirectory] = []


def _scratch() -> tempfile.TemporaryDirectory:
    if not _SCRATCH:
        _SCRATCH.append(tempfile.TemporaryDirectory(prefix="tiny-models-"))
    return _SCRATCH[0]
