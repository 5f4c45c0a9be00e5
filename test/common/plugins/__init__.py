"""pytest plugins: gating, the battery report, benchmarks and baselines, goldens,
model source, sharding, worker records."""
