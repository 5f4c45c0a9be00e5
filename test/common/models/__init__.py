"""Building models: the architecture registry (derived from transformers), tiny
configs and keyed weights, input recipes, preprocessing, real checkpoints, and the
priority models."""
