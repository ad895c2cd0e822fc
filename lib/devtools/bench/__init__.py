"""`make bench`: the API and the worker measured beside their baselines (python -m lib.devtools.bench)."""
