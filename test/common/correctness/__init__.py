"""What pins a model's function: golden outputs, and the faults injected to test the
suite itself."""
