"""Generation backends, all behind `generation.backends.base.Backend`."""
