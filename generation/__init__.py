"""Generation: the worker process and its backends (CPU style engine, diffusers)."""
