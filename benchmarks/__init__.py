"""Speed benchmarks: `python -m benchmarks.epoch` times one training epoch of each pipeline side by side."""
