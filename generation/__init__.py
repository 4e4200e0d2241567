"""Generation: the worker process, its backends, face handling and provenance."""
