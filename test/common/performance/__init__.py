"""Measurement and baselines: timing, memory, the baseline file and the regression rule."""
